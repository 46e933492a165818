"""A model's memory, known before a job starts; the limit jobs share; the peak each job took."""

import json
from dataclasses import replace

import numpy as np
import pytest

from ttservice import actions
from ttservice.jobs import JobStatus, TranscribeOptions, open_store
from ttservice.models import memory

from ..conftest import JFK_WAV, headless_service, make_settings, stop_process, ttservice, wait_for


def test_a_models_shape_is_read_from_its_model_bin(tiny_en_dir, base_model_dir):
    tiny, base = memory.shape_of(tiny_en_dir), memory.shape_of(base_model_dir)
    assert (round(tiny.params), tiny.width, tiny.decoder_layers) == (38, 384, 4)
    assert (round(base.params), base.width, base.decoder_layers) == (73, 512, 6)
    assert memory.shape_of(tiny_en_dir / "no such folder") is None
    # before a download, by its name: Whisper's published shapes
    assert memory.shape_by_name("large-v3") == memory.SHAPES["large"]
    assert memory.shape_by_name("Systran/faster-distil-whisper-medium.en") == memory.SHAPES["distil-medium"]
    assert memory.shape_by_name("mobiuslabsgmbh/faster-whisper-large-v3-turbo") == memory.SHAPES["turbo"]
    assert memory.shape_by_name("someone/my-whisper") is None


def test_a_cpu_jobs_estimate_counts_the_clips_its_threads_decode_at_once():
    one_thread = TranscribeOptions(model="base", batch_size=8, cpu_threads=1)
    assert memory.job_estimate_mb(one_thread) == memory.job_estimate_mb(replace(one_thread, batch_size=2))
    assert memory.job_estimate_mb(one_thread) < memory.job_estimate_mb(replace(one_thread, cpu_threads=4))
    on_cuda = replace(one_thread, device="cuda")  # a GPU decodes the whole batch at once
    assert memory.job_estimate_mb(on_cuda) == memory.job_estimate_mb(replace(on_cuda, cpu_threads=4))


def test_the_estimate_grows_with_the_batch_the_weights_and_the_model():
    tiny, large = memory.SHAPES["tiny"], memory.SHAPES["large"]
    assert memory.estimate_mb(tiny, "int8", 0) == memory.estimate_mb(tiny, "int8", 1)  # one clip either way
    assert memory.estimate_mb(tiny, "int8", 8) > memory.estimate_mb(tiny, "int8", 0)
    assert memory.estimate_mb(tiny, "float32", 0) > memory.estimate_mb(tiny, "int8", 0)
    assert memory.estimate_mb(tiny, "int8", 0, beam_size=5) > memory.estimate_mb(tiny, "int8", 0)
    assert memory.estimate_mb(large, "int8", 8) > 4 * memory.estimate_mb(tiny, "int8", 8)


def test_beams_cost_a_job_the_same_whatever_its_batch():
    """Measured: base's four extra beams took 92 MB more sequential and 180 MB more batched by 8,
    not eight times as much (bench item 18 and a doubted dialogue, docs/performance.md)."""
    base = memory.SHAPES["base"]

    def beams(batch: int) -> float:
        return memory.estimate_mb(base, "int8", batch, beam_size=5) - memory.estimate_mb(base, "int8", batch)

    assert 180 <= beams(8) <= beams(0) + 20  # rounding to 10 MB, twice


def test_a_job_on_whisper_cpp_is_estimated_for_its_engine(tiny_en_dir, tmp_path):
    """float16 weights, one clip at a time (the batch plays no part); a ggml file's shape comes
    from its header."""
    from ttservice.models import ggml

    on_cpp = TranscribeOptions(model="base", engine="whisper.cpp", batch_size=8)
    needs = memory.job_estimate_mb(on_cpp)
    assert needs == memory.job_estimate_mb(replace(on_cpp, batch_size=0))
    assert needs < memory.job_estimate_mb(replace(on_cpp, engine="faster-whisper"))
    assert memory.job_estimate_mb(replace(on_cpp, model="large-v3")) > 5 * needs
    path = tmp_path / "ggml-tiny.en.bin"
    ggml.write(tiny_en_dir, path)
    shape = memory.shape_of(path)
    assert (round(shape.params), shape.width, shape.decoder_layers) == (39, 384, 4)
    assert memory.job_estimate_mb(TranscribeOptions(model=str(path))) == memory.whispercpp_estimate_mb(shape)


def test_every_model_has_its_memory_and_one_general_and_one_thai_model_at_most_are_recommended(settings):
    run = ttservice(settings, "models", "list", "--json")
    assert run.returncode == 0, run.stderr
    models = {m["name"]: m for m in json.loads(run.stdout)}
    known = [m for m in models.values() if m["repo_id"]]
    assert all(m["memory_mb"] and m["memory_mb"] > memory.RUNTIME_MB for m in known)
    assert all(m["download_mb"] for m in known if not m["installed"])
    assert models["large-v3"]["memory_mb"] > models["base"]["memory_mb"] > models["tiny.en"]["memory_mb"]
    recommended = [m for m in models.values() if m["recommended"]]
    assert sum(m["languages"] == ["th"] for m in recommended) <= 1 and len(recommended) <= 2
    tight = make_settings(settings.data_dir, memory_limit_mb=models["base"]["memory_mb"] + 1)
    fitting = [m for m in json.loads(ttservice(tight, "models", "list", "--json").stdout) if m["recommended"]]
    assert [m["multilingual"] for m in fitting] == [True]  # no Thai fine-tune fits under it
    assert fitting[0]["memory_mb"] <= tight.memory_limit_mb  # nothing larger than the limit allows
    thai = make_settings(settings.data_dir, memory_limit_mb=models["th-medium-distil"]["memory_mb"] + 1)
    fitting = [m for m in json.loads(ttservice(thai, "models", "list", "--json").stdout) if m["recommended"]]
    assert "th-medium-distil" in [m["name"] for m in fitting]  # the one Thai fine-tune that fits


def test_a_model_that_never_fits_is_refused_at_submit_and_leaves_no_job(settings):
    tight = make_settings(settings.data_dir, memory_limit_mb=200)
    run = ttservice(tight, "submit", str(JFK_WAV))
    assert run.returncode == 2
    assert "needs about" in run.stderr and "memory limit of 0.2 GB" in run.stderr
    assert "Traceback" not in run.stderr
    assert open_store(tight).list_jobs() == []


def test_the_estimate_grows_with_the_media_and_labelling_needs_its_own_room():
    """The samples a job holds grow with its media; labelling speakers, after the transcript
    with the model freed, needs the diarizer's room, or the transcript's when that is larger."""
    tiny = TranscribeOptions(model="tiny.en", batch_size=8, compute_type="int8")
    hour, minute, unknown = (memory.job_estimate_mb(tiny, s) for s in (3600, 60, None))
    assert hour > minute >= unknown
    labelled = replace(tiny, speakers="2")
    assert memory.job_estimate_mb(labelled, 3600) == memory.labelling_mb(60) > memory.labelling_mb(5)
    large = replace(labelled, model="large-v3", compute_type="float32")
    assert memory.job_estimate_mb(large, 600) == memory.job_estimate_mb(replace(large, speakers=None), 600)


def test_a_meeting_too_long_to_label_under_the_limit_is_refused_or_fails_and_says_why(settings, tmp_path):
    """Refused at submit when the media's length is known then; a job queued before its length
    was (an upload) fails when it would start, rather than waiting for ever."""
    from ttservice.supervision import ProcessManager

    from ..speech import write_wav

    meeting = write_wav(tmp_path / "meeting.wav", np.zeros(8000 * 40 * 60, np.float32), rate=8000)
    labelled = TranscribeOptions.from_settings(settings, speakers="2")
    limit = memory.labelling_mb(40) - 100
    assert memory.job_estimate_mb(replace(labelled, speakers=None), 40 * 60) < limit  # the transcript fits
    tight = make_settings(settings.data_dir, memory_limit_mb=limit)
    run = ttservice(tight, "submit", str(meeting), "--speakers", "2")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    said = "Transcribing 40 minutes of audio with tiny.en and labelling its speakers needs about"
    assert said in run.stderr
    store = open_store(tight)
    assert store.list_jobs() == []
    job_id = store.create_job("meeting.wav", str(meeting), labelled)
    assert ProcessManager(store, tight).dispatch() == []
    job = store.get_job(job_id)
    assert job.status is JobStatus.FAILED and job.exit_code == 2
    assert job.error_detail.code == "memory.never_fits_speakers"
    assert "or transcribe it without speakers" in job.error


def test_a_batch_that_does_not_fit_becomes_sequential_and_says_so(settings):
    options = TranscribeOptions.from_settings(settings, batch_size=8)
    sequential = memory.job_estimate_mb(replace(options, batch_size=0), memory.file_seconds(JFK_WAV))
    tight = make_settings(settings.data_dir, memory_limit_mb=sequential, batch_size=8)
    run = ttservice(tight, "transcribe", str(JFK_WAV))
    assert run.returncode == 0, run.stderr
    job = json.loads(ttservice(tight, "show", "1", "--json").stdout)
    assert job["options"]["batch_size"] == 0 and job["status"] == "completed"
    assert "ask not what your country" in job["text"].lower()
    assert job["warnings"] == [
        f"Decoding {options.batch_size} clips at a time does not fit in the memory limit of"
        f" {sequential / 1024:.1f} GB: this job decodes one window at a time."
    ]
    assert job["warning_codes"][0]["code"] == "memory.batch_reduced"
    assert "does not fit in the memory limit" in (settings.log_dir / "job_1.log").read_text()
    assert 100 < job["peak_memory_mb"] < 4 * sequential  # measured by the worker as it ended


def test_beams_that_do_not_fit_even_one_window_at_a_time_become_one_and_the_job_says_so(settings):
    options = TranscribeOptions.from_settings(settings, batch_size=8, beam_size=5)
    seconds = memory.file_seconds(JFK_WAV)
    sequential = replace(options, batch_size=0)
    greedy = memory.job_estimate_mb(replace(sequential, beam_size=1), seconds)
    assert options.beam_size == 5 and greedy < memory.job_estimate_mb(sequential, seconds)
    between = make_settings(settings.data_dir, memory_limit_mb=memory.job_estimate_mb(sequential, seconds))
    assert memory.fit(options, between, seconds).options == sequential  # the batch goes before the beams
    tight = make_settings(settings.data_dir, memory_limit_mb=greedy, batch_size=8, beam_size=5)
    run = ttservice(tight, "transcribe", str(JFK_WAV))
    assert run.returncode == 0, run.stderr
    job = json.loads(ttservice(tight, "show", "1", "--json").stdout)
    assert (job["options"]["batch_size"], job["options"]["beam_size"], job["status"]) == (0, 1, "completed")
    assert "ask not what your country" in job["text"].lower()
    assert job["warnings"] == [
        f"Decoding with 5 beams does not fit in the memory limit of {greedy / 1024:.1f} GB even one"
        " window at a time: this job decodes one window at a time with one beam, which may get a few"
        " more words wrong."
    ]
    assert job["warning_codes"][0]["code"] == "memory.beams_reduced"


@pytest.mark.model
def test_two_jobs_of_which_one_fits_never_run_together_and_both_complete(settings, long_speech):
    one = memory.job_estimate_mb(TranscribeOptions.from_settings(settings))
    tight = make_settings(settings.data_dir, memory_limit_mb=one * 1.5)
    serve = headless_service(tight)
    store = open_store(tight)
    try:
        options = TranscribeOptions.from_settings(tight)
        first, second = (actions.submit_file(store, tight, m, options) for m in (long_speech, JFK_WAV))
        together = []

        def both_done() -> bool:
            jobs = [store.get_job(first), store.get_job(second)]
            together.append(all(j.status is JobStatus.PROCESSING for j in jobs))
            if jobs[0].status is JobStatus.PROCESSING and jobs[1].status is JobStatus.QUEUED:
                shown = json.loads(ttservice(tight, "show", str(second), "--json").stdout)
                # (the first can finish while `show` runs: the second then waits for nothing)
                if shown["status"] == "queued" and store.get_job(first).status is JobStatus.PROCESSING:
                    assert shown["waiting_for"] == "memory"
                    assert shown["waiting_reason"].startswith("Waiting for memory: tiny.en needs about")
                    together.append("said why")
            return all(j.finished for j in jobs)

        wait_for(both_done, 240, interval=0.05, what="both jobs done")
        assert [store.get_job(j).status for j in (first, second)] == [JobStatus.COMPLETED] * 2
        assert not any(t is True for t in together)  # never both running
        assert "said why" in together
    finally:
        stop_process(serve)
