"""The real worker and the real model on real audio, supervised end to end."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from ttservice.jobs import JobStatus, Runner, TranscribeOptions
from ttservice.supervision.foreground import run_transcription
from ttservice.supervision.process_manager import ProcessManager

from .conftest import JFK_TXT, JFK_WAV, SHARED, env_for, gone, group_members, make_settings, wait_for, words

pytestmark = pytest.mark.model


def test_jfk_gives_the_words_of_the_reference(store, settings):
    job = run_transcription(JFK_WAV, TranscribeOptions(), settings=settings, store=store)
    assert job.status is JobStatus.COMPLETED, job.error
    text = " ".join(s.text for s in store.segments(job.id))
    assert words(text) == words(JFK_TXT.read_text())
    assert job.exit_code == 0 and job.progress == 1.0
    assert job.duration == pytest.approx(11.0, abs=0.1)
    assert job.process_id is not None and gone(job.process_id)
    log = "\n".join(ProcessManager(store, settings).get_logs(job.id))
    assert "Processing chunk 1/1" in log and "x realtime" in log


def test_tracking_switch_off_still_transcribes(tmp_path):
    settings = make_settings(tmp_path / "data", use_process_tracking=False)
    job = run_transcription(JFK_WAV, settings=settings)
    assert job.status is JobStatus.COMPLETED and job.process_id is None


def test_word_timestamps_and_fixed_language(store, settings):
    options = TranscribeOptions(language="en", word_timestamps=True)
    job = run_transcription(JFK_WAV, options, settings=settings, store=store)
    segments = store.segments(job.id)
    assert segments[0].words and segments[0].words[0]["word"].strip().lower() == "and"
    assert job.detected_language == "en"


def test_only_a_job_someone_may_follow_decodes_its_first_clip_alone(store, settings, tmp_path):
    """`ttservice transcribe` prints its transcript once it is whole: its first batch is as full
    as the others. A service's job may be followed in History: its first clip goes alone, so
    that the first text comes after one clip."""
    from faster_whisper.audio import decode_audio

    from .speech import write_wav

    # Two real recordings, 41 s: two clips of speech. (Not jfk.wav four times over: a clip of one
    # phrase said again and again compresses too well, so every temperature of the fallback is
    # tried on it and its words are sampled, not decoded.)
    mit = decode_audio(str(SHARED / "data" / "multilingual.mp3"), sampling_rate=16000)[: 16000 * 29]
    jfk = decode_audio(str(JFK_WAV), sampling_rate=16000)
    media = write_wav(tmp_path / "mit-jfk.wav", np.concatenate([mit, np.zeros(16000, np.float32), jfk]))
    options = TranscribeOptions(batch_size=8)
    pm = ProcessManager(store, settings)
    foreground = run_transcription(media, options, settings=settings, store=store)
    pm.start()
    service = store.create_job(media.name, str(media), options, Runner.SERVICE)
    assert pm.start_job(service)
    wait_for(lambda: store.get_job(service).status is JobStatus.COMPLETED, 120, what="the service's job")
    pm.shutdown()
    first = {}
    for job_id in (foreground.id, service):
        batches = [line for line in pm.get_logs(job_id) if " clip" in line and "Decoding 0:" in line]
        first[job_id] = batches[0].rsplit(", ", 1)[-1]
    assert first == {foreground.id: "2 clips at once", service: "1 clip"}
    said = [words(" ".join(s.text for s in store.segments(job_id))) for job_id in (foreground.id, service)]
    assert said[0] == said[1]  # the words, not their marks: a clip beside another may end a phrase elsewhere


def _running_service_job(store, settings, media, **options):
    pm = ProcessManager(store, settings)
    pm.start()
    job_id = store.create_job(media.name, str(media), TranscribeOptions(**options), Runner.SERVICE)
    assert pm.start_job(job_id)
    wait_for(lambda: store.segments(job_id), 120, what="first segment")
    return pm, job_id, store.get_job(job_id).process_id


def test_sigkill_of_running_worker_is_failed_within_seconds(store, settings, long_speech):
    pm, job_id, pid = _running_service_job(store, settings, long_speech)
    try:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: store.get_job(job_id).finished, 5, 0.05, what="failed status")
        job = store.get_job(job_id)
        assert job.status is JobStatus.FAILED and "SIGKILL" in job.error
        assert gone(pid) and group_members(pid) == []
        assert store.segments(job_id), "the partial transcript is kept"
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_stop_from_cli_cancels_and_empties_group(store, settings, long_speech):
    pm, job_id, pid = _running_service_job(store, settings, long_speech)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ttservice", "stop", str(job_id)],
            env=env_for(settings),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert store.get_job(job_id).status is JobStatus.CANCELLED
        wait_for(lambda: gone(pid), 5, what="worker gone")
        assert group_members(pid) == []
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_three_concurrent_jobs_kill_one_others_complete(tmp_path, minute_speech):
    settings = make_settings(tmp_path / "data", max_concurrent_jobs=3)
    pm = ProcessManager(settings=settings)
    store = pm.store
    pm.start(dispatch=True)
    try:
        ids = [
            store.create_job(
                f"m{i}.wav", str(minute_speech), TranscribeOptions(cpu_threads=1), Runner.SERVICE
            )
            for i in range(3)
        ]
        wait_for(lambda: all(store.get_job(i).process_id for i in ids), 30, what="three workers")
        victim = store.get_job(ids[1]).process_id
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: all(store.get_job(i).finished for i in ids), 240, 0.5, what="all finished")
        statuses = [store.get_job(i).status for i in ids]
        assert statuses == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED]
        assert words(" ".join(s.text for s in store.segments(ids[0])))[:4] == ["the", "history", "of", "the"]
        for i in ids:  # a worker exits just after committing its job's end
            wait_for(lambda i=i: gone(store.get_job(i).process_id), 10, what="worker exited")
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_orphan_cleanup_while_a_job_processes(store, settings, long_speech):
    """A stale fake row is finalised; the live, heartbeating job is left alone."""
    pm, job_id, pid = _running_service_job(store, settings, long_speech)
    try:
        fake = store.create_job("ghost.wav", "/nowhere/ghost.wav", TranscribeOptions())
        store.claim(fake, 10, now=time.time() - 3600)
        store.register_process(fake, 999_999_9, 1.0, None)
        time.sleep(settings.heartbeat_interval * 2)
        result = pm.cleanup_orphaned_processes()
        assert [j for j, _ in result.finalized] == [fake]
        assert store.get_job(job_id).status is JobStatus.PROCESSING
        # the same job, silent past the timeout on the injected clock, is stopped
        result = pm.cleanup_orphaned_processes(now=time.time() + settings.orphan_timeout + 5)
        assert result.killed == [job_id]
        assert store.get_job(job_id).status is JobStatus.FAILED
        assert gone(pid)
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_worker_abandons_a_job_finished_elsewhere(store, settings, long_speech):
    """If the row is finalised behind its back, the worker stops at its next heartbeat."""
    pm, job_id, pid = _running_service_job(store, settings, long_speech)
    try:
        store.transition(job_id, JobStatus.FAILED, error_message="finalised elsewhere")
        wait_for(lambda: gone(pid), 10, what="worker exits")
        assert store.get_job(job_id).error == "finalised elsewhere"
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_a_command_that_fails_under_its_job_leaves_it_interrupted_not_stopped_by_the_user(
    store, settings, long_speech
):
    """The command waiting for its job fails (here: its database read, as when the server stays
    away): nobody stopped the job, so it is interrupted (to resume), with the command's reason."""
    from ttservice.exceptions import StoreError, StoreUnavailable

    seen = []

    def away(job):
        if store.segments(job.id):
            seen.append(job.process_id)
            raise StoreUnavailable("store.unreachable", where="PostgreSQL at db", error="connection refused")

    one_thread = replace(settings, cpu_threads=1)  # batches one after another: the job outlasts a look
    with pytest.raises(StoreError):
        run_transcription(long_speech, settings=one_thread, store=store, on_update=away)
    job = store.get_job(store.list_jobs(limit=1)[0].id)
    assert job.status is JobStatus.INTERRUPTED and job.resumable
    assert job.error == (
        "Stopped because the command running it failed:"
        " the database (PostgreSQL at db) could not be reached: connection refused."
    )
    assert job.error_detail.code == "job.stopped_command_failed"
    assert seen and gone(seen[0]) and group_members(seen[0]) == []
