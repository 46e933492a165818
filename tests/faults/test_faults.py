"""Fault injection with real processes and the real model; each case ends with `invariants.check()`."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from ttservice import actions, platform
from ttservice.jobs import JobStatus, Runner, Store, TranscribeOptions, open_store
from ttservice.supervision.process_manager import ProcessManager

from ..conftest import (
    JFK_TXT,
    JFK_WAV,
    gone,
    memory_cgroup,
    start_transcribe,
    tmpfs,
    ttservice,
    wait_for,
    wer,
    words,
)
from ..media import bad_inputs
from .conftest import Invariants, heartbeat_moves, wait_segments, wait_status

STUBBORN = Path(__file__).parents[1] / "helpers" / "stubborn_worker.py"


@pytest.fixture(params=["faster-whisper", "whisper.cpp"])
def engine(request) -> str:
    """Every fault once with each engine: supervision must not depend on which one runs."""
    return request.param


def submit(store: Store, settings, media: Path) -> int:
    return actions.submit_file(store, settings, media, TranscribeOptions.from_settings(settings))


def dead_identity() -> tuple[int, float]:
    """The pid and create time of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(process.pid).create_time()
    process.wait()
    return process.pid, started


def fake_processing_row(store: Store, pid: int | None, create_time: float | None, heartbeat: float) -> int:
    """A row as a crashed manager would leave it: processing, with this process recorded.

    Made as an upload (no running service starts one) and handed over once claimed, so that
    the service under test, woken by the queue bell, cannot claim it first.
    """
    job_id = store.create_job(JFK_WAV.name, None, TranscribeOptions(), Runner.UPLOAD)
    assert store.claim(job_id, max_concurrent=100)
    store.hand_upload_to_service(job_id, str(JFK_WAV))
    if pid is not None:
        store.register_process(job_id, pid, create_time, None)
    store.heartbeat(job_id, now=heartbeat)
    return job_id


def test_sigkill_worker(service, invariants, fault_settings, long_speech):
    service()
    store = invariants.store
    job_id = submit(store, fault_settings, long_speech)
    wait_segments(store, job_id)
    invariants.remember(job_id)
    pid = store.get_job(job_id).process_id
    invariants.fault("SIGKILL worker")
    os.kill(pid, signal.SIGKILL)
    job = wait_status(store, job_id, JobStatus.FAILED, timeout=30)
    assert "killed by SIGKILL" in job.error
    invariants.check()
    partial = ttservice(fault_settings, "export", str(job_id))
    assert partial.returncode == 0 and store.segments(job_id)[0].text in partial.stdout


def test_a_worker_the_kernel_kills_for_memory_fails_saying_so(
    service, invariants, fault_settings, long_speech
):
    service()
    store = invariants.store
    with memory_cgroup(8) as procs:  # what the worker takes once moved in may not pass 8 MB
        job_id = submit(store, fault_settings, long_speech)
        pid = wait_for(lambda: store.get_job(job_id).process_id, 30, what="the job's worker")
        invariants.fault("worker out of memory")
        procs.write_text(str(pid))  # as it starts: each engine still has its model to load
        job = wait_status(store, job_id, [JobStatus.FAILED, JobStatus.COMPLETED], timeout=60)
    assert job.status is JobStatus.FAILED and job.exit_code == -signal.SIGKILL
    if platform.oom_kills() is None:  # a Mac, or Linux in portable mode: the kill is all there is to tell
        assert job.error == "The worker process was killed by SIGKILL."
    else:
        assert job.error == (
            "The system ran out of memory and killed the worker process;"
            " close other programs or choose a smaller model."
        )
    invariants.check()
    resumed = ttservice(fault_settings, "resume", str(job_id))  # it continues after its last segment
    assert resumed.returncode == 0, resumed.stderr


def test_sigkill_service_then_restart(service, invariants, fault_settings, ten_minute_speech):
    # No periodic sweep, so only the adoption can notice an adopted worker's end in time.
    settings = replace(fault_settings, cleanup_interval=3600.0, orphan_timeout=300.0)
    store = invariants.store
    first = service(settings)
    a, b = (submit(store, settings, ten_minute_speech) for _ in range(2))
    for job_id in (a, b):
        wait_segments(store, job_id)
        invariants.remember(job_id)
    pid_a, pid_b = (store.get_job(j).process_id for j in (a, b))
    never_started = fake_processing_row(store, None, None, heartbeat=store.get_job(a).last_heartbeat)

    invariants.fault("SIGKILL service")
    first.signal(signal.SIGKILL)
    first.wait(10)
    for job_id in (a, b):  # the workers live on in their own sessions and keep writing
        heartbeat_moves(store, job_id)
        assert store.get_job(job_id).status is JobStatus.PROCESSING

    second = service(settings)
    log = second.log
    wait_for(lambda: f"job {a}: adopted" in log.read_text() and f"job {b}: adopted" in log.read_text(), 30)
    job = wait_status(store, never_started, JobStatus.FAILED, timeout=10)
    assert "stopped before its worker was started" in job.error

    invariants.fault("SIGKILL adopted worker")
    os.kill(pid_a, signal.SIGKILL)
    job = wait_status(store, a, JobStatus.FAILED, timeout=10)
    assert f"worker process {pid_a} ended without recording a result" in job.error

    invariants.fault("stop adopted worker from the CLI")
    done = ttservice(settings, "stop", str(b))
    assert done.returncode == 0, done.stderr
    assert store.get_job(b).status is JobStatus.CANCELLED and gone(pid_b)
    invariants.check()


def test_sigterm_service_interrupts_and_resume_continues(
    service, invariants, fault_settings, long_speech, references
):
    reference = references(fault_settings.engine, fault_settings.beam_size)
    store = invariants.store
    svc = service()
    a, b = (submit(store, fault_settings, long_speech) for _ in range(2))
    wait_segments(store, a, 2)
    wait_segments(store, b, 1)
    invariants.fault("SIGTERM service")
    svc.signal(signal.SIGTERM)
    assert svc.wait(30) == 0
    for job_id in (a, b):
        job = store.get_job(job_id)
        assert job.status is JobStatus.INTERRUPTED and "shut down" in job.error
        assert gone(job.process_id)
        invariants.remember(job_id)
    invariants.check()

    kept = store.segments(a)
    done = ttservice(fault_settings, "resume", str(a))
    assert done.returncode == 0, done.stderr
    assert store.get_job(a).status is JobStatus.COMPLETED
    segments = store.segments(a)
    assert segments[: len(kept)] == kept  # the saved part is untouched
    seam = segments[len(kept) - 1 : len(kept) + 1]
    assert seam[1].start >= seam[0].end - 0.01, seam  # continues after the last saved segment
    assert wer(reference, done.stdout) <= 0.02, (reference, done.stdout)
    invariants.check()


def test_sigkill_foreground_cli(invariants, fault_settings, long_speech):
    cli, store, job = start_transcribe(fault_settings, long_speech)
    job_id = job.id
    try:
        invariants.remember(job_id)
        pid = store.get_job(job_id).process_id
        invariants.fault("SIGKILL foreground CLI")
        cli.kill()
        cli.wait()
        # PR_SET_PDEATHSIG makes this immediate; two heartbeat intervals is the promise.
        wait_for(lambda: gone(pid), 10, what="the worker to end with its CLI")
        job = store.get_job(job_id)
        assert job.status is JobStatus.INTERRUPTED, job
        assert f"the ttservice command that ran it (pid {cli.pid}) ended" in job.error
        invariants.check()
    finally:
        cli.kill()


@pytest.mark.parametrize("watcher", ["service", "foreground CLI"])
def test_sigstop_worker(service, invariants, fault_settings, long_speech, watcher):
    store = invariants.store
    cli = None
    if watcher == "service":
        service()
        job_id = submit(store, fault_settings, long_speech)
        wait_segments(store, job_id)
    else:
        cli, _, job = start_transcribe(fault_settings, long_speech)
        job_id = job.id
    invariants.remember(job_id)
    pid = store.get_job(job_id).process_id
    invariants.fault(f"SIGSTOP worker ({watcher} watching)")
    os.kill(pid, signal.SIGSTOP)
    job = wait_status(store, job_id, JobStatus.FAILED, timeout=60)
    assert "no heartbeat for" in job.error and "its worker was stopped" in job.error
    assert gone(pid)
    if cli is not None:
        _, stderr = cli.communicate(timeout=30)
        assert cli.returncode == 1 and "no heartbeat" in stderr
    invariants.check()


def test_worker_child_that_ignores_sigterm(invariants, fault_settings, long_speech):
    store = invariants.store
    pm = ProcessManager(store, fault_settings, runner=Runner.SERVICE)
    pm.start()
    try:
        job_id = submit(store, fault_settings, long_speech)
        assert pm.start_job(job_id, cmd=[sys.executable, str(STUBBORN), str(job_id)])
        wait_segments(store, job_id)
        invariants.remember(job_id)
        invariants.fault("worker child ignores SIGTERM")
        done = ttservice(fault_settings, "stop", str(job_id))
        assert done.returncode == 0, done.stderr
        assert store.get_job(job_id).status is JobStatus.CANCELLED
        invariants.check()
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_pid_reused_by_a_stranger(invariants, fault_settings, stranger):
    store = invariants.store
    now = time.time()
    # The stranger holds the recorded PID, but it started at another time: it is not the worker.
    fresh = fake_processing_row(store, stranger.pid, stranger.create_time - 100, heartbeat=now)
    silent = fake_processing_row(store, stranger.pid, stranger.create_time - 100, heartbeat=now - 3600)
    invariants.fault("PID reuse by a stranger process")
    done = ttservice(fault_settings, "stop", str(fresh))
    assert done.returncode == 0 and store.get_job(fresh).status is JobStatus.CANCELLED
    done = ttservice(fault_settings, "cleanup")
    assert done.returncode == 0
    job = store.get_job(silent)
    assert job.status is JobStatus.FAILED and "the PID was reused" in job.error
    invariants.check()


def test_fake_stale_rows_are_finalised_when_the_service_starts(service, invariants):
    store = invariants.store
    pid, started = dead_identity()
    stale = fake_processing_row(store, pid, started, heartbeat=started)
    invariants.fault("fake stale row")
    service()
    job = wait_status(store, stale, JobStatus.FAILED, timeout=15)
    assert f"its worker process {pid} is gone" in job.error
    invariants.check()


def test_three_concurrent_jobs_one_killed(service, invariants, fault_settings, long_speech):
    store = invariants.store
    service()
    short1, long_, short2 = (submit(store, fault_settings, m) for m in (JFK_WAV, long_speech, JFK_WAV))
    wait_for(lambda: all(store.get_job(j).process_id for j in (short1, long_, short2)), 60)
    invariants.fault("one of three concurrent jobs killed")
    os.killpg(store.get_job(long_).process_id, signal.SIGKILL)
    assert wait_status(store, long_, JobStatus.FAILED, timeout=30).error
    expected = words(JFK_TXT.read_text())
    for job_id in (short1, short2):
        wait_status(store, job_id, JobStatus.COMPLETED, timeout=120)
        assert words(" ".join(s.text for s in store.segments(job_id))) == expected
    invariants.check()


def test_contention_soak(service, invariants, fault_settings, short_speech):
    """Six workers heartbeating 20 times a second and committing segments while readers poll."""
    settings = replace(fault_settings, max_concurrent_jobs=6, heartbeat_interval=0.05, orphan_timeout=30.0)
    store = invariants.store
    service(settings)
    jobs = [submit(store, settings, short_speech) for _ in range(6)]
    errors: list[str] = []
    reads = [0]
    done = threading.Event()

    def reader() -> None:
        own = open_store(settings)
        pm = ProcessManager(own, settings)
        while not done.is_set():
            try:
                own.list_jobs(limit=50, search="mill")
                own.page_of_jobs()[0]
                own.stats()
                for job_id in jobs:
                    pm.get_process_status(job_id)
                    own.segments(job_id)
                    pm.get_logs(job_id, 50)
                own.renew_lease(jobs[0])  # a page's write, as the History page makes
                reads[0] += 1
            except Exception as error:  # any error at all is a finding here
                errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    invariants.fault("contention soak")
    try:
        while not all(store.get_job(j).finished for j in jobs):
            for command in (["jobs", "--json"], ["show", str(jobs[-1]), "--json"]):
                cli = ttservice(settings, *command)
                if cli.returncode != 0:
                    errors.append(cli.stderr)
            time.sleep(0.5)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert reads[0] > 10
    for job_id in jobs:
        job = store.get_job(job_id)
        assert job.status is JobStatus.COMPLETED, job.error
        log = "\n".join(ProcessManager(store, settings).get_logs(job_id, 10_000))
        assert "locked" not in log.lower()
    invariants.check()


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MB tmpfs (needs root); the test is skipped where mounting is not allowed."""
    with tmpfs(tmp_path / "small-disk", "40m") as mount:
        yield mount


def fill(path: Path) -> None:
    """Write until the file system has no space left."""
    block = b"\0" * 2**20
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as error:
            assert error.errno == errno.ENOSPC
    with open(path, "ab", buffering=0) as f:  # the last partial block too
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def test_disk_full(service, stranger, small_disk, fault_settings, long_speech):
    settings = replace(fault_settings, data_dir=small_disk / "data")
    invariants = Invariants(settings, stranger)
    store = invariants.store
    svc = service(settings)
    job_id = submit(store, settings, long_speech)
    wait_segments(store, job_id, 2)
    invariants.remember(job_id)
    invariants.fault("disk full")
    filler = small_disk / "filler"
    fill(filler)
    job = wait_status(store, job_id, JobStatus.FAILED, timeout=60)
    assert "The disk is full" in job.error, job.error
    assert svc.process.poll() is None, "the service must keep running"
    with sqlite3.connect(settings.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    invariants.check()
    filler.unlink()  # with room again the same service runs the next job
    after = submit(store, settings, JFK_WAV)
    wait_status(store, after, JobStatus.COMPLETED, timeout=120)
    invariants.check()


def test_every_bad_input_through_the_service(service, invariants, fault_settings, tmp_path):
    store = invariants.store
    service()
    cases = bad_inputs(tmp_path, JFK_WAV)
    cases["too large"] = (JFK_WAV, "over the limit")
    for name, (path, message) in cases.items():
        invariants.fault(f"bad input: {name}")
        limits = replace(fault_settings, max_upload_mb=0.1) if name == "too large" else fault_settings
        job_id = submit(store, limits, path)
        job = wait_status(store, job_id, JobStatus.FAILED, timeout=60)
        assert message in job.error, (name, job.error)
        assert "Traceback" not in job.error and job.error.count(".") >= 1
    good = submit(store, fault_settings, JFK_WAV)
    wait_status(store, good, JobStatus.COMPLETED, timeout=120)
    invariants.check()
