"""`ttservice serve` and `submit`: one manager, dispatch without a browser, clean shutdown."""

import ctypes
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time

import psutil
import pytest

from ttservice import actions
from ttservice.config import STANDBY, STANDBY_READY
from ttservice.jobs import JobStatus, Runner, TranscribeOptions, open_store
from ttservice.supervision.process_manager import LEASE_LAPSE, ProcessManager
from ttservice.supervision.warm import DELAY as STANDBY_DELAY

from ..conftest import (
    DUMMY,
    JFK_WAV,
    env_for,
    gone,
    group_members,
    headless_service,
    make_settings,
    ttservice,
    wait_for,
)
from ..e2e.conftest import free_port, wait_healthy


def test_sanitized_upload_names_stay_in_the_data_dir(settings, store):
    assert actions.sanitize_filename("../../etc/passwd") == "passwd"
    assert actions.sanitize_filename("ประชุม ครั้งที่ 1.m4a") == "ประชุม ครั้งที่ 1.m4a"
    assert actions.sanitize_filename("a;rm -rf $HOME`.wav") == "a_rm -rf _HOME_.wav"
    assert actions.sanitize_filename("..") == "upload"
    job_id = actions.submit_upload(store, settings, "../../evil.wav", b"RIFF", TranscribeOptions())
    job = store.get_job(job_id)
    assert job.media_path == str(settings.upload_dir / hashlib.sha256(b"RIFF").hexdigest() / "evil.wav")


def test_upload_over_the_limit_is_refused_before_writing(tmp_path):
    from ..conftest import make_settings

    settings = make_settings(tmp_path / "data", max_upload_mb=0.001)
    store = open_store(settings)
    job_id = actions.submit_upload(store, settings, "big.wav", b"x" * 5000, TranscribeOptions())
    job = store.get_job(job_id)
    assert job.status is JobStatus.FAILED and "over the limit" in job.error
    assert not settings.upload_dir.exists() or not any(settings.upload_dir.rglob("*.wav"))


@pytest.mark.parametrize(
    "runner, reason",
    [(Runner.SERVICE, "page was left"), (Runner.API, "the API request waiting for it went away")],
)
def test_lapsed_lease_stops_the_job(store, settings, make_job, runner, reason):
    pm = ProcessManager(store, settings)
    job_id = make_job(runner)
    pm.start_job(job_id, cmd=[sys.executable, str(DUMMY), "sleep"])
    pid = store.get_job(job_id).process_id
    try:
        store.renew_lease(job_id)
        assert pm.stop_lapsed_leases() == []
        assert pm.stop_lapsed_leases(now=time.time() + LEASE_LAPSE + 1) == [job_id]
        job = store.get_job(job_id)
        assert job.status is JobStatus.CANCELLED and reason in job.error
        assert gone(pid)
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_submit_without_service_waits_queued(settings):
    done = ttservice(settings, "submit", str(JFK_WAV), "--json")
    assert done.returncode == 0
    job_id = json.loads(done.stdout)["id"]
    assert "No TTService is running" in done.stderr
    assert open_store(settings).get_job(job_id).status is JobStatus.QUEUED
    bad = ttservice(settings, "submit", "/nowhere.wav")
    assert bad.returncode == 2 and "does not exist" in bad.stderr


@pytest.mark.model
def test_service_runs_jobs_without_a_browser_and_stops_cleanly(settings, long_speech):
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "ttservice", "serve", "--port", str(port), "--no-api"],
        env=env_for(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        second = ttservice(settings, "serve", "--port", str(free_port()), "--no-api", timeout=30)
        assert second.returncode == 1 and "already running" in second.stderr
        store = open_store(settings)
        quick = json.loads(ttservice(settings, "submit", str(JFK_WAV), "--json").stdout)["id"]
        wait_for(lambda: store.get_job(quick).status is JobStatus.COMPLETED, 120, what="jfk done")
        long_id = json.loads(ttservice(settings, "submit", str(long_speech), "--json").stdout)["id"]
        wait_for(lambda: store.segments(long_id), 120, what="long job running")
        pid = store.get_job(long_id).process_id
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        assert serve.returncode == 0
        job = store.get_job(long_id)
        assert job.status is JobStatus.INTERRUPTED and "shut down" in job.error
        assert gone(pid) and group_members(pid) == []
        assert group_members(serve.pid) == []
    finally:
        if serve.poll() is None:
            serve.kill()


def warm_worker_of(service_pid: int) -> psutil.Process | None:
    for child in psutil.Process(service_pid).children():
        try:
            if STANDBY in child.cmdline():
                return child
        except psutil.Error:
            continue
    return None


@pytest.mark.model
def test_warm_worker_takes_the_next_job_and_goes_with_its_service(settings):
    serve = headless_service(settings)
    ready = settings.log_dir / "standby.log"
    try:
        warm = wait_for(lambda: warm_worker_of(serve.pid), 60, what="a warm worker")
        wait_for(lambda: ready.exists() and STANDBY_READY in ready.read_text(), 120, what="it is ready")
        store = open_store(settings)
        job_id = actions.submit_file(store, settings, JFK_WAV, TranscribeOptions.from_settings(settings))
        wait_for(lambda: store.get_job(job_id).finished, 120, what="the job done")
        job = store.get_job(job_id)
        assert job.status is JobStatus.COMPLETED and job.process_id == warm.pid
        assert "ask not what your country can do for you" in " ".join(s.text for s in store.segments(job_id))
        assert "loaded model" in "\n".join(ProcessManager(store, settings).get_logs(job_id))
        # the next one comes STANDBY_DELAY s after a job starts; a SIGKILLed service takes it along
        after = wait_for(lambda: warm_worker_of(serve.pid), STANDBY_DELAY + 60, what="the next warm worker")
        serve.kill()
        serve.wait(timeout=30)
        wait_for(lambda: gone(after.pid), 30, what="the warm worker gone with its service")
    finally:
        if serve.poll() is None:
            serve.kill()


def test_without_warm_worker_the_service_keeps_none(tmp_path):
    from ..conftest import make_settings

    settings = make_settings(tmp_path / "data", warm_worker=False)
    pm = ProcessManager(open_store(settings), settings)
    pm.start(dispatch=True)
    try:
        wait_for(lambda: pm.monitor.turns >= 3, 30, what="the monitor's first turns")
        assert warm_worker_of(os.getpid()) is None  # with the setting on, the first turn starts one
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_service_shutdown_ends_its_warm_worker(settings):
    pm = ProcessManager(open_store(settings), settings)
    pm.start(dispatch=True)
    try:
        warm = wait_for(lambda: warm_worker_of(os.getpid()), 60, what="a warm worker")
    finally:
        pm.shutdown(stop_jobs=True, wait=0)
    assert gone(warm.pid)


def test_sweep_fails_an_upload_whose_file_was_never_saved(store, settings):
    from ttservice.supervision.process_manager import UPLOAD_TIMEOUT

    long_ago = time.time() - UPLOAD_TIMEOUT - 5
    stale = store.create_job("a.wav", None, TranscribeOptions(), Runner.UPLOAD, now=long_ago)
    fresh = store.create_job("b.wav", None, TranscribeOptions(), Runner.UPLOAD)
    result = ProcessManager(store, settings).cleanup_orphaned_processes()
    assert [j for j, _ in result.finalized] == [stale]
    failed = store.get_job(stale)
    assert failed.status is JobStatus.FAILED and "upload did not finish" in failed.error
    assert store.get_job(fresh).status is JobStatus.QUEUED


SYS_TGKILL_X86_64 = 234


@pytest.mark.skipif(platform.machine() != "x86_64", reason="tgkill's syscall number is x86_64's")
def test_service_stops_on_a_sigterm_that_lands_on_another_thread(settings):
    """The kernel may hand a process signal to any thread; the sleeping main loop must still wake."""
    serve = headless_service(settings)
    try:
        proc = psutil.Process(serve.pid)
        others = wait_for(lambda: [t.id for t in proc.threads() if t.id != serve.pid], 30, what="threads")
        time.sleep(0.5)  # the main loop is asleep by now
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(SYS_TGKILL_X86_64, serve.pid, others[0], signal.SIGTERM) == 0
        assert serve.wait(timeout=30) == 0
    finally:
        if serve.poll() is None:
            serve.kill()


def test_an_idle_warm_worker_ends_and_gives_its_memory_back(tmp_path):
    from ..conftest import make_settings

    settings = make_settings(tmp_path / "data", warm_idle_seconds=3.0)
    pm = ProcessManager(open_store(settings), settings)
    pm.start(dispatch=True)
    try:
        warm = wait_for(lambda: warm_worker_of(os.getpid()), 60, what="a warm worker")
        wait_for(lambda: gone(warm.pid), 30, what="the idle warm worker to end")
        ended = pm.monitor.turns
        wait_for(lambda: pm.monitor.turns >= ended + 3, 30, what="the monitor's next turns")
        assert warm_worker_of(os.getpid()) is None  # none until a job starts: the demand
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_the_warm_worker_says_it_is_ready_on_its_pipe(settings):
    from ttservice.supervision.process_manager import worker_env
    from ttservice.supervision.warm import WarmWorker

    settings.log_dir.mkdir(parents=True)
    warm, process = WarmWorker(settings, worker_env(settings)), None
    try:
        assert not warm.ready()  # none yet
        warm.keep(slot_free=True)
        wait_for(warm.ready, 120, what="the warm worker loaded its model")
        assert STANDBY_READY in warm.log_path.read_text()  # and its log says so, for a reader
        process = warm.hand(1, 1)
        assert process is not None and not warm.ready()  # handed a job: no warm worker waits
    finally:
        warm.stop()
        if process is not None:
            process.kill()
            process.wait()


def test_a_warm_worker_handed_a_job_before_it_was_ready_takes_it(settings, store, make_job):
    from ttservice.supervision.process_manager import worker_env
    from ttservice.supervision.warm import WarmWorker

    settings.log_dir.mkdir(parents=True, exist_ok=True)
    warm = WarmWorker(settings, worker_env(settings))
    job_id = make_job()
    attempt = store.claim(job_id, 1)
    warm.keep(slot_free=True)
    process = warm.hand(job_id, attempt)  # at once: it is still loading, and nobody reads its pipe
    assert process is not None
    try:
        job = wait_for(lambda: (j := store.get_job(job_id)).finished and j, 120, what="the job's end")
        assert job.status is JobStatus.COMPLETED, job.error
    finally:
        process.kill()
        process.wait()
    assert "BrokenPipeError" not in warm.log_path.read_text()


@pytest.mark.model
def test_two_running_jobs_share_the_cores(settings, long_speech):
    """Each job's model loads with the cores divided between the jobs running then (never below
    one); TTSERVICE_CPU_THREADS, when set, is every job's."""
    from ttservice.transcription import device

    cores = os.cpu_count() or 1
    assert device.cpu_threads(1) == cores and device.cpu_threads(2) == max(1, cores // 2)
    assert device.cpu_threads(4 * cores) == 1 and device.cpu_threads(0) == cores
    serve = headless_service(settings)
    store = open_store(settings)
    try:
        options = TranscribeOptions.from_settings(settings)
        jobs = [actions.submit_file(store, settings, long_speech, options) for _ in range(2)]
        wait_for(lambda: all(store.get_job(j).finished for j in jobs), 300, what="both jobs done")
        pm = ProcessManager(store, settings)
        threads = []
        for job_id in jobs:
            assert store.get_job(job_id).status is JobStatus.COMPLETED
            line = next(line for line in pm.get_logs(job_id) if "CPU threads" in line)
            threads.append(int(line.split(" with ")[1].split()[0]))
        started = sorted(jobs, key=lambda j: store.get_job(j).started_at)
        assert threads[jobs.index(started[1])] == max(1, cores // 2)  # it started beside the first
        assert set(threads) <= {cores, max(1, cores // 2)}
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    one = make_settings(settings.data_dir, cpu_threads=1)
    run = ttservice(one, "transcribe", str(JFK_WAV))
    assert run.returncode == 0, run.stderr
    job = open_store(one).list_jobs()[0]
    assert any("with 1 CPU threads" in line for line in ProcessManager(store, one).get_logs(job.id))
