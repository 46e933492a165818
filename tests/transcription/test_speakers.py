"""Who said what: speaker turns laid on the transcript (no model), and the diarizer for real on
a dialogue of two voices, through `ttservice transcribe --speakers`."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ttservice.exceptions import RequestError
from ttservice.jobs import JobStatus, Segment
from ttservice.transcription import speakers
from ttservice.transcription.speakers import Turn, split

from ..conftest import JFK_WAV, env_for, ttservice
from ..speech import dialogue


def words(*timed):
    return [{"start": s, "end": e, "word": w, "probability": 0.9} for s, e, w in timed]


TURNS = [Turn(0.0, 3.0, "SPEAKER_1"), Turn(3.2, 6.0, "SPEAKER_2")]


def test_a_segment_is_cut_where_its_words_change_speaker():
    said = words((0.0, 1.0, " Good"), (1.0, 2.0, " morning"), (2.0, 2.9, " all."), (3.3, 4.0, " Danke"),
                 (4.0, 5.0, " schön"), (5.0, 5.5, " Anna."))  # fmt: skip
    first, second = split(
        Segment(0.0, 5.5, "Good morning all. Danke schön Anna.", said, tokens=[1], window=0.0), TURNS
    )
    assert (first.start, first.end, first.text, first.speaker) == (0.0, 2.9, "Good morning all.", "SPEAKER_1")
    assert (second.start, second.end, second.text, second.speaker) == (
        3.3,
        5.5,
        "Danke schön Anna.",
        "SPEAKER_2",
    )
    assert [w["word"] for w in second.words] == [" Danke", " schön", " Anna."]
    assert second.tokens == [1] and first.tokens is None  # a resume continues after the last piece


def test_a_stray_word_stays_with_its_turn_and_a_segment_without_words_goes_whole():
    said = words((0.0, 1.0, " one"), (1.0, 2.0, " two"), (3.4, 3.5, " three"), (2.0, 2.9, " four"))
    [whole] = split(Segment(0.0, 3.5, "one two three four", said), TURNS)
    assert whole.speaker == "SPEAKER_1" and whole.text == "one two three four"
    [plain] = split(Segment(2.5, 5.0, "mostly the second"), TURNS)
    assert plain.speaker == "SPEAKER_2"  # 0.5 s with the first, 1.8 s with the second
    [kept] = split(Segment(0.0, 5.5, "a person's text", said, edited=True), TURNS)
    assert kept.text == "a person's text"  # never cut
    # one word of the first speaker, then a run of the second's: the word joins the run
    opening = words((2.5, 2.9, " So"), (3.3, 4.0, " Danke"), (4.0, 5.0, " schön"), (5.0, 5.5, " Anna."))
    [joined] = split(Segment(2.5, 5.5, "So Danke schön Anna.", opening), TURNS)
    assert joined.speaker == "SPEAKER_2" and joined.text == "So Danke schön Anna."


def test_speakers_are_checked_before_any_job(monkeypatch):
    assert speakers.checked(None) is None and speakers.checked("off") is None
    assert speakers.checked(" AUTO ") == "auto" and speakers.checked("03") == "3"
    with pytest.raises(RequestError, match="is not a number of speakers"):
        speakers.checked("many")
    with pytest.raises(RequestError, match="is not a number of speakers"):
        speakers.checked("50")
    monkeypatch.setattr(speakers, "installed", lambda: False)
    with pytest.raises(RequestError, match=r"needs the diarizer, which is not installed: run .*\[speakers\]"):
        speakers.checked("auto")


def test_a_diarizer_built_for_another_processor_is_refused_and_spares_the_job(monkeypatch, tmp_path):
    """senko's wheel on PyPI dies of SIGILL on processors without AVX-512 (this one's, in CI,
    until setup.sh built it from source): a probe that dies so is a sentence at submit and a
    warning beside a job's transcript, never a killed worker."""
    import tempfile
    from pathlib import Path

    from ttservice.messages import Message

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the probe's answers kept apart
    monkeypatch.setattr(speakers, "PROBE", "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    assert not speakers.runs_here()
    with pytest.raises(RequestError, match="compiled for another processor and cannot run on this one"):
        speakers.checked("auto")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("tried again"))
    assert not speakers.runs_here()  # remembered
    warning = speakers.label_job(None, 7, Path("meeting.wav"), "auto")
    assert warning == Message("speakers.wrong_processor_job", job_id=7)


def test_the_installed_diarizer_runs_on_this_processor(monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert speakers.runs_here()
    assert [p.read_text() for p in tmp_path.glob("ttservice-senko-*")] == ["runs"]


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory):
    work = tmp_path_factory.mktemp("dialogue")
    return dialogue(work / "dialogue.wav", work)


@pytest.mark.model
def test_a_dialogue_of_two_voices_comes_out_labelled_and_named(settings, store, base_model_dir, two_voices):
    path, truth = two_voices
    done = ttservice(settings, "transcribe", str(path), "--model", str(base_model_dir), "--speakers", "auto",
                     "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    segments = json.loads(done.stdout)["segments"]
    assert {s["speaker"] for s in segments} == {"SPEAKER_1", "SPEAKER_2"}

    def truly(segment):
        middle = (segment["start"] + segment["end"]) / 2
        return next((who for start, end, who in truth if start - 0.5 <= middle <= end + 0.5), None)

    # the diarizer's labels match who really spoke, segment by segment
    pairs = {(s["speaker"], truly(s)) for s in segments}
    assert pairs == {("SPEAKER_1", "A"), ("SPEAKER_2", "B")}, pairs
    job_id = store.list_jobs(limit=1)[0].id
    assert store.get_job(job_id).options.speakers == "auto" and store.get_job(job_id).warnings == []
    listed = json.loads(ttservice(settings, "speakers", str(job_id), "--json").stdout)
    assert [s["label"] for s in listed] == ["SPEAKER_1", "SPEAKER_2"] and all(
        s["talk_seconds"] > 5 for s in listed
    )
    renamed = ttservice(
        settings, "speakers", str(job_id), "--rename", "SPEAKER_1=Anna", "--rename", "SPEAKER_2=Bernd"
    )
    assert renamed.returncode == 0, renamed.stderr
    txt = ttservice(settings, "export", str(job_id), "--format", "txt").stdout
    assert txt.startswith("Anna: ") and "\n\nBernd: " in txt
    # a speaker a person set stays when the job is labelled again (with the number told)
    assert ttservice(settings, "edit", str(job_id), "0", "--speaker", "Chair").returncode == 0
    again = ttservice(settings, "speakers", str(job_id), "--label", "--num", "2")
    assert again.returncode == 0, again.stderr
    first, *rest = store.segments(job_id)
    assert first.speaker == "Chair" and {s.speaker for s in rest} == {"Anna", "Bernd"}


def test_the_number_of_speakers_told_is_the_number_found(two_voices):
    """Told how many speak, the diarizer finds that many: one voice for two told as one, two
    for two (senko's clustering wraps the spectral one, which is where the number goes)."""
    path, _ = two_voices
    samples = speakers.decoded(path)
    assert {t.speaker for t in speakers.diarize(samples, "1")} == {"SPEAKER_1"}
    assert {t.speaker for t in speakers.diarize(samples, "2")} == {"SPEAKER_1", "SPEAKER_2"}


def test_clusters_are_merged_down_to_the_number_told():
    """Long audio's clusters (UMAP+HDBSCAN's, which take no number) become at most the number
    told: the two most alike voices merge."""
    rng = np.random.default_rng(1)
    voices = rng.normal(size=(3, 192))
    voices[2] = voices[1] + rng.normal(scale=0.3, size=192)  # the third voice much like the second
    x = np.concatenate([v + rng.normal(scale=0.1, size=(40, 192)) for v in voices])
    truth = np.repeat([0, 1, 2], 40)
    merged = speakers.at_most(truth.copy(), x, 2)
    assert len(set(merged)) == 2 and set(merged[:40]).isdisjoint(merged[40:])
    assert len(set(merged[40:])) == 1  # the two alike voices became one
    assert len(set(speakers.at_most(truth.copy(), x, 1))) == 1
    assert list(speakers.at_most(truth.copy(), x, 3)) == list(truth)  # the number or fewer: unchanged
    assert list(speakers.at_most(truth.copy(), x, 4)) == list(truth)


def test_a_real_call_of_two_speakers_is_labelled():
    """Real speech: a 30-s call between two people (pyannote.audio's sample, with its turns).
    Measured here: 85 % of speech time labelled right (bench item 21 has more real recordings)."""
    from bench.speakers import right_share, rttm

    from ..conftest import speakers_sample

    try:
        path = speakers_sample()
    except RuntimeError as error:
        pytest.fail(str(error))
    truth, samples = rttm(path.with_suffix(".rttm"), "sample"), speakers.decoded(path)
    for told in ("auto", "2"):
        turns = [(t.start, t.end, t.speaker) for t in speakers.diarize(samples, told)]
        assert len({t[2] for t in turns}) == 2
        assert right_share(truth, turns) >= 0.8


@pytest.mark.model
def test_a_labelling_failure_keeps_the_transcript_and_says_how_to_try_again(settings, store, tmp_path):
    broken = tmp_path / "broken" / "senko"
    broken.mkdir(parents=True)
    failing = "class Diarizer:\n    def __init__(self, **kwargs):\n        raise RuntimeError('{}')\n"
    (broken / "__init__.py").write_text(failing.format("CAM++ weights unreadable"))
    env = env_for(settings) | {"PYTHONPATH": str(broken.parent)}  # a diarizer that fails, at the edge
    run = subprocess.run([sys.executable, "-m", "ttservice", "transcribe", str(JFK_WAV), "--speakers", "2"],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "ask not what your country can do for you" in run.stdout
    job = store.list_jobs(limit=1)[0]
    assert job.status is JobStatus.COMPLETED
    [warning] = json.loads(ttservice(settings, "show", str(job.id), "--json").stdout)["warnings"]
    assert warning.startswith("The transcript is complete, but its speakers could not be labelled")
    assert f"ttservice speakers {job.id} --label" in warning and "CAM++ weights unreadable" in warning


def test_speakers_asked_of_a_running_job_are_refused(settings, store, make_job):
    job_id = make_job()
    run = ttservice(settings, "speakers", str(job_id), "--label")
    assert (
        run.returncode == 2
        and f"Job {job_id} is queued; its speakers can be labelled once it has ended." in run.stderr
    )


@pytest.mark.model
def test_labelling_a_finished_job_is_a_supervised_run_that_stops_and_resumes(settings, store):
    """`speakers --label` runs in a worker like any job: stopped while it labels, the job is
    cancelled with its transcript whole and no process left; resumed, it labels without
    transcribing again."""
    from ..conftest import gone, wait_for

    done = ttservice(settings, "transcribe", str(JFK_WAV))
    assert done.returncode == 0, done.stderr
    job_id = store.list_jobs(limit=1)[0].id
    before = [(s.start, s.end, s.text) for s in store.segments(job_id)]
    label = [sys.executable, "-m", "ttservice", "speakers", str(job_id), "--label", "--num", "1"]
    cli = subprocess.Popen(
        label, env=env_for(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        job = wait_for(
            lambda: (j := store.get_job(job_id)).labelling and j.process_id and j, what="labelling"
        )
        stopped = ttservice(settings, "stop", str(job_id))
        assert stopped.returncode == 0, stopped.stderr
        _, err = cli.communicate(timeout=60)
    finally:
        cli.kill()
    assert cli.returncode == 130 and "its transcript is kept whole" in err
    assert store.get_job(job_id).status is JobStatus.CANCELLED and gone(job.process_id)
    assert [(s.start, s.end, s.text) for s in store.segments(job_id)] == before
    resumed = ttservice(settings, "resume", str(job_id))
    assert resumed.returncode == 0, resumed.stderr
    assert store.get_job(job_id).status is JobStatus.COMPLETED
    assert {s.speaker for s in store.segments(job_id)} == {"SPEAKER_1"}
    assert [(s.start, s.end, s.text) for s in store.segments(job_id)] == before
    assert "only its speakers are labelled" in ttservice(settings, "logs", str(job_id)).stdout
