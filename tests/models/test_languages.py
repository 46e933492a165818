"""Honest language and task, with a real multilingual model (Whisper base) and the bundled tiny.en."""

import dataclasses
import json
import subprocess

import pytest

from ttservice.jobs import JobStatus

from ..conftest import JFK_TXT, JFK_WAV, ttservice
from ..conftest import words as words_of

pytestmark = pytest.mark.model

THAI = "สวัสดีครับ ยินดีต้อนรับ"  # espeak-ng's Thai is too poor for detection and words: assert the script


def thai_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum("\u0e00" <= c <= "\u0e7f" for c in letters) / max(len(letters), 1)


@pytest.fixture(scope="module")
def thai_speech(tmp_path_factory):
    path = tmp_path_factory.mktemp("thai") / "thai.wav"
    subprocess.run(["espeak-ng", "-v", "th", "-s", "150", "-w", str(path), THAI], check=True)
    return path


def test_auto_detect_finds_english_with_its_probability(settings, store, base_model_dir):
    run = ttservice(settings, "transcribe", str(JFK_WAV), "--model", str(base_model_dir))
    assert run.returncode == 0, run.stderr
    assert words_of(run.stdout) == words_of(JFK_TXT.read_text())
    job = store.list_jobs()[0]
    assert job.detected_language == "en" and 0.5 < job.language_probability <= 1.0
    shown = ttservice(settings, "show", str(job.id))
    assert "detected_language: en" in shown.stdout and "language_probability: 0." in shown.stdout


def test_thai_with_a_multilingual_model_comes_out_in_thai_script(
    settings, store, base_model_dir, thai_speech
):
    run = ttservice(
        settings, "transcribe", str(thai_speech), "--model", str(base_model_dir), "--language", "th"
    )
    assert run.returncode == 0, run.stderr
    # mostly Thai letters (Whisper may add a stray English word to synthetic speech, as here once: "you")
    assert thai_share(run.stdout) > 0.5 and sum("\u0e00" <= c <= "\u0e7f" for c in run.stdout) >= 5, (
        run.stdout
    )
    job = store.list_jobs()[0]
    assert job.options.language == "th" and job.language_probability is None  # given, not detected


def test_the_translate_task_runs(settings, store, base_model_dir, thai_speech):
    model = str(base_model_dir)
    run = ttservice(
        settings, "transcribe", str(thai_speech), "--model", model, "-l", "th", "--task", "translate"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() and thai_share(run.stdout) < 0.5, run.stdout  # into English, not Thai
    assert store.list_jobs()[0].options.task == "translate"


@pytest.mark.parametrize(
    "args, sentence",
    [
        (
            ["--language", "th"],
            "The model tiny.en is English-only, so it cannot transcribe Thai; choose a multilingual",
        ),
        (
            ["--task", "translate"],
            "The model tiny.en is English-only, so it cannot translate; choose a multilingual",
        ),
        (["--language", "xx"], "'xx' is not a language Whisper knows"),
    ],
)
def test_what_a_model_cannot_do_is_refused_before_any_job(settings, store, args, sentence):
    for command in ("transcribe", "submit"):
        run = ttservice(settings, command, str(JFK_WAV), "--model", "tiny.en", *args)
        assert run.returncode == 2 and sentence in run.stderr and "Traceback" not in run.stderr
    assert store.page_of_jobs()[0] == 0


def test_an_english_only_model_whose_name_cannot_tell_is_refused_by_the_worker(
    hub, settings, store, tiny_en_dir
):
    from ..hub_server import Repo

    hub.repos["someone/whisper-tiny-ct2"] = Repo("someone/whisper-tiny-ct2", tiny_en_dir)
    run = ttservice(settings, "transcribe", str(JFK_WAV), "--model", "someone/whisper-tiny-ct2", "-l", "th")
    assert run.returncode == 2, run.stderr
    job = store.list_jobs()[0]
    assert job.status is JobStatus.FAILED and store.segments(job.id) == []
    assert "someone/whisper-tiny-ct2 is English-only, so it cannot transcribe Thai" in job.error
    again = ttservice(settings, "submit", str(JFK_WAV), "--model", "someone/whisper-tiny-ct2", "-l", "th")
    assert again.returncode == 2 and "is English-only" in again.stderr  # now on disk: refused at once


def test_thai_words_are_words_and_thai_subtitles_break_between_them(
    settings, store, base_model_dir, thai_speech
):
    from ttservice.transcription.subtitles import width
    from ttservice.words import split_words

    run = ttservice(
        settings, "transcribe", str(thai_speech), "--model", str(base_model_dir), "-l", "th",
        "--word-timestamps", "--format", "json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    segments = json.loads(run.stdout)["segments"]
    thai = [s for s in segments if thai_share(s["text"]) > 0.5]
    assert thai, run.stdout
    for segment in thai:
        words = segment["words"]
        joined = "".join(w["word"] for w in words)
        assert joined.strip() == segment["text"].strip()
        # the segmenter's words, not Whisper's tokens (which are often single letters or marks)
        assert [w.strip() for w in split_words(joined) if w.strip()] == [w["word"].strip() for w in words]
        assert all(
            a["start"] <= a["end"] <= b["start"] + 1e-6 for a, b in zip(words, words[1:], strict=False)
        )
    job = store.list_jobs()[0]
    narrow = dataclasses.replace(settings, subtitle_line_chars=8, subtitle_lines=1)
    srt = ttservice(narrow, "export", str(job.id), "--format", "srt")
    assert srt.returncode == 0, srt.stderr
    words = {w.strip() for s in thai for w in split_words(s["text"].strip())}
    lines = [line for block in srt.stdout.strip().split("\n\n") for line in block.splitlines()[2:]]
    assert len(lines) > len(thai)  # 8 characters a line: the Thai text was broken, between words
    assert all(width(line) <= 8 or line in words for line in lines), lines
    assert "".join(lines).replace(" ", "") == "".join(s["text"] for s in segments).replace(" ", "")


@pytest.fixture(scope="module")
def thai_lines(tmp_path_factory):
    """Four lines of everyday Thai (the shared sample), read by espeak-ng: about 25 s."""
    from ..conftest import SHARED

    text = "\n".join((SHARED / "data" / "thai-sample.txt").read_text(encoding="utf-8").splitlines()[:4])
    path = tmp_path_factory.mktemp("thai-lines") / "thai-lines.wav"
    subprocess.run(["espeak-ng", "-v", "th", "-w", str(path), text], check=True)
    return path


@pytest.mark.parametrize("batch_size", [8, 0], ids=["batched", "sequential"])
def test_an_english_only_model_claims_no_detection_and_warns_on_other_speech(
    settings, web_env, thai_lines, batch_size
):
    """tiny.en with no language: nothing says it detected English; Thai speech completes with a
    warning that it may not be English; real English (jfk.wav) with none."""
    from ..conftest import make_settings
    from ..conftest import run_page as run

    mode = make_settings(settings.data_dir, batch_size=batch_size)
    for media in (thai_lines, JFK_WAV):
        assert ttservice(mode, "transcribe", str(media)).returncode == 0
    thai, english = (json.loads(ttservice(mode, "show", str(n), "--json").stdout) for n in (1, 2))
    for job in (thai, english):
        assert job["status"] == "completed" and job["english_only_model"] is True
        assert job["detected_language"] == "en" and job["language_probability"] is None
    assert [code["code"] for code in thai["warning_codes"]] == ["language.maybe_not_english"]
    assert thai["warnings"][0].startswith("This may not be English speech")
    assert "For Thai, the Thai fine-tune th-" in thai["warnings"][0]  # the one that fits here, named
    assert english["warnings"] == []
    page = run("history.py", job=1)  # the web app reads the same data dir
    assert "English (this model knows only English)" in page.markdown[0].value
    assert page.warning[0].value.startswith("This may not be English speech")
