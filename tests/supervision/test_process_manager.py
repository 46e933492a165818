"""ProcessManager against real dummy subprocesses: identity, trees, escalation, orphans."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from ttservice.jobs import JobStatus, Runner, Segment, TranscribeOptions
from ttservice.supervision.process_manager import ProcessManager
from ttservice.supervision.waiting import Interrupt, wait_readable

from ..conftest import DUMMY, gone, group_members, make_settings, wait_for


@pytest.fixture
def pm(store, settings):
    manager = ProcessManager(store, settings)
    yield manager
    manager.shutdown(stop_jobs=True, wait=0)


def start_dummy(pm, make_job, mode="sleep"):
    job_id = make_job()
    assert pm.start_job(job_id, cmd=[sys.executable, str(DUMMY), mode])
    job = pm.store.get_job(job_id)
    wait_for(lambda: "ready" in "".join(pm.get_logs(job_id)), 20, what="dummy ready")
    return job_id, job.process_id


def test_register_records_pid_identity_and_log(pm, make_job, settings):
    job_id, pid = start_dummy(pm, make_job)
    job = pm.store.get_job(job_id)
    assert job.status is JobStatus.PROCESSING
    assert pid is not None and psutil.Process(pid).create_time() == pytest.approx(job.process_create_time)
    assert job.log_file_path == str(settings.log_dir / f"job_{job_id}.log")
    assert os.getpgid(pid) == pid  # its own session and group


def test_status_reports_metrics_over_the_tree(pm, make_job):
    job_id, pid = start_dummy(pm, make_job, "grandchild")
    wait_for(lambda: len(psutil.Process(pid).children()) == 1, 10, what="grandchild")
    status = pm.get_process_status(job_id)
    assert status.alive and status.pid == pid
    assert status.processes == 2
    assert status.rss_bytes > 5 * 2**20  # two Python interpreters
    assert status.elapsed is not None and status.elapsed >= 0
    assert status.heartbeat_age is not None


def test_get_logs_returns_tail(pm, make_job):
    job_id, _ = start_dummy(pm, make_job, "chatty")
    assert pm.get_logs(job_id, lines=3) == ["line 998", "line 999", "ready"]


def test_kill_cooperative_process(pm, make_job):
    job_id, pid = start_dummy(pm, make_job)
    assert pm.kill_process(job_id)
    job = pm.store.get_job(job_id)
    assert job.status is JobStatus.CANCELLED and job.error == "Stopped by the user."
    assert job.exit_code == -signal.SIGTERM
    assert gone(pid) and group_members(pid) == []
    assert not pm.kill_process(job_id)  # nothing left to stop


def test_kill_escalates_to_sigkill_when_term_is_ignored(pm, make_job, settings):
    job_id, pid = start_dummy(pm, make_job, "ignore-term")
    started = time.monotonic()
    assert pm.kill_process(job_id)
    assert time.monotonic() - started >= settings.kill_grace  # TERM, the grace, then KILL
    assert pm.store.get_job(job_id).exit_code == -signal.SIGKILL
    assert gone(pid)


def test_kill_takes_grandchildren_that_ignore_term(pm, make_job):
    job_id, pid = start_dummy(pm, make_job, "grandchild")
    grandchild = wait_for(lambda: psutil.Process(pid).children(), 10, what="grandchild")[0]
    assert pm.kill_process(job_id)
    assert gone(pid) and gone(grandchild.pid)
    assert group_members(pid) == []


def test_kill_from_another_manager(pm, make_job, store, settings):
    """The CLI in another shell stops a job a service started."""
    job_id, pid = start_dummy(pm, make_job)
    other = ProcessManager(store, settings)
    assert other.kill_process(job_id)
    assert store.get_job(job_id).status is JobStatus.CANCELLED
    wait_for(lambda: gone(pid), 5, what="process gone")


def test_a_stop_keeps_its_reason_whichever_manager_records_the_end(pm, make_job, store, settings):
    """The API stops a job; the service, whose child it was, sees the exit first (or not)."""
    pm.start()  # the service's monitor: it records the end of its own children as they exit
    job_id, pid = start_dummy(pm, make_job)
    reason = "Stopped because its API client disconnected."
    assert ProcessManager(store, settings).kill_process(job_id, reason=reason)
    job = wait_for(lambda: (j := store.get_job(job_id)).finished and j, 10, what="the job's end")
    assert job.status is JobStatus.CANCELLED and job.error == reason
    assert gone(pid)


def test_kill_queued_job_just_cancels(pm, make_job, store):
    job_id = make_job()
    assert pm.kill_process(job_id)
    assert store.get_job(job_id).status is JobStatus.CANCELLED


def test_pid_reuse_is_never_signalled(pm, make_job, store):
    """A job row pointing at a PID now owned by a stranger: finalised, stranger untouched."""
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        job_id = make_job()
        store.claim(job_id, 5)
        real_start = psutil.Process(stranger.pid).create_time()
        store.register_process(job_id, stranger.pid, real_start - 100.0, None)  # the job's "own" start
        assert pm.kill_process(job_id)  # stopping it cancels the row ...
        assert stranger.poll() is None  # ... without a signal to the stranger
        job2 = make_job()
        store.claim(job2, 5)
        store.register_process(job2, stranger.pid, real_start - 100.0, None)
        result = pm.cleanup_orphaned_processes()
        assert [j for j, _ in result.finalized] == [job2]
        assert "reused" in store.get_job(job2).error
        assert store.get_job(job2).status is JobStatus.FAILED
        assert result.killed == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_orphan_timeout_uses_injected_clock(pm, make_job, store, settings):
    job_id, pid = start_dummy(pm, make_job)  # a dummy never heartbeats
    assert pm.cleanup_orphaned_processes().finalized == []
    later = time.time() + settings.orphan_timeout + 1
    result = pm.cleanup_orphaned_processes(now=later)
    assert result.killed == [job_id] and [j for j, _ in result.finalized] == [job_id]
    job = store.get_job(job_id)
    assert job.status is JobStatus.FAILED and "no heartbeat" in job.error
    assert gone(pid)


def test_dead_process_is_finalised_without_signals(store, settings, make_job):
    """A manager that did not start the job finds its process gone and says so."""
    starter = ProcessManager(store, settings)
    job_id, pid = start_dummy(starter, make_job)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: gone(pid), 5, what="dead")
    sweeper = ProcessManager(store, settings)
    result = sweeper.cleanup_orphaned_processes()
    assert [j for j, _ in result.finalized] == [job_id] and result.killed == []
    assert store.get_job(job_id).status is JobStatus.FAILED
    starter.shutdown(wait=0)


def test_untracked_stale_row_is_finalised(pm, make_job, store, settings):
    job_id = make_job()
    store.claim(job_id, 5, now=time.time() - settings.orphan_timeout - 10)
    result = pm.cleanup_orphaned_processes()
    assert [j for j, _ in result.finalized] == [job_id]
    assert "no process is tracked" in store.get_job(job_id).error


def test_monitor_records_an_exit_nobody_asked_for(pm, make_job, store):
    """How soon is bench item 2's (2.4 ms with a pidfd); here, that it is recorded as it was."""
    pm.start()
    job_id, pid = start_dummy(pm, make_job)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: store.get_job(job_id).finished, 60, 0.05, what="exit noticed")
    job = store.get_job(job_id)
    assert job.status is JobStatus.FAILED and job.exit_code == -signal.SIGKILL
    assert job.error == "The worker process was killed by SIGKILL."


def later(seconds, action):
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def test_wait_for_exit_wakes_when_the_worker_exits(pm, make_job):
    job_id, pid = start_dummy(pm, make_job)
    later(0.3, lambda: os.kill(pid, signal.SIGKILL))
    started = time.monotonic()
    assert pm.wait_for_exit(job_id, 60, Interrupt()) is True
    assert time.monotonic() - started < 30  # woken by the exit, not by the timeout


def test_wait_for_exit_wakes_when_interrupted(pm, make_job):
    job_id, _ = start_dummy(pm, make_job)
    interrupt = Interrupt()
    later(0.3, interrupt.set)
    started = time.monotonic()
    assert pm.wait_for_exit(job_id, 60, interrupt) is False
    assert time.monotonic() - started < 30
    assert pm.store.get_job(job_id).status is JobStatus.PROCESSING


def test_interrupt_set_before_anyone_waits_still_wakes_the_waiter():
    interrupt = Interrupt()
    interrupt.set()
    started = time.monotonic()
    assert wait_readable([interrupt.fileno()], 60)
    assert time.monotonic() - started < 30
    interrupt.clear()
    assert not wait_readable([interrupt.fileno()], 0)


def test_monitor_wait_returns_when_stopped_before_it_waits(pm):
    pm.monitor.wake.set()  # shutdown asked while the monitor was busy: its next wait must not sleep
    started = time.monotonic()
    pm.monitor.wait_for_event(60)
    assert time.monotonic() - started < 30


def test_exit_code_of_failed_worker_is_recorded(pm, make_job, store):
    pm.start()
    job_id = make_job()
    pm.start_job(job_id, cmd=[sys.executable, str(DUMMY), "exit3"])
    wait_for(lambda: store.get_job(job_id).finished, 10, what="exit noticed")
    job = store.get_job(job_id)
    assert job.exit_code == 3 and "exited with code 3" in job.error


@pytest.mark.parametrize(
    "runner, status", [(Runner.SERVICE, JobStatus.QUEUED), (Runner.FOREGROUND, JobStatus.INTERRUPTED)]
)
def test_a_worker_that_lost_its_database_leaves_its_job_to_continue_not_failed(
    pm, make_job, store, runner, status
):
    """A worker that could not write a heartbeat for half the orphan timeout stops itself (exit 4):
    its job was not at fault, so it is queued to continue from its last segment (a command's job,
    which nobody else runs, is interrupted, for `ttservice resume`)."""
    pm.start()
    job_id = make_job(runner)
    pm.start_job(job_id, cmd=[sys.executable, str(DUMMY), "exit4"])
    assert store.add_segments(job_id, [Segment(0, 2.5, "kept")], 2.5, 0.1, attempt=1)
    job = wait_for(lambda: (j := store.get_job(job_id)).status is not JobStatus.PROCESSING and j, 10)
    assert (job.status, job.exit_code) == (status, 4)
    assert store.resume_point(job_id) == 2.5 and [s.text for s in store.segments(job_id)] == ["kept"]
    if status is JobStatus.QUEUED:
        assert job.resumed_from == 2.5
    else:
        assert (
            job.error
            == "The job was interrupted: its worker could not reach the database and stopped itself."
        )


def test_dispatch_respects_max_concurrent_jobs(store, make_job):
    from ..conftest import make_settings as ms

    settings = ms(store.db_path.parent, max_concurrent_jobs=2)
    pm = ProcessManager(store, settings)
    pm.worker_command = lambda job_id, attempt: [sys.executable, str(DUMMY), "sleep"]
    try:
        ids = [make_job(Runner.SERVICE) for _ in range(3)]
        make_job(Runner.FOREGROUND)  # another CLI's job is not ours to start
        assert pm.dispatch() == ids[:2]
        assert store.get_job(ids[2]).status is JobStatus.QUEUED
        pm.kill_process(ids[0])
        assert pm.dispatch() == [ids[2]]
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_tracking_switch_off_keeps_pid_out_of_database(store, tmp_path, make_job):
    settings = make_settings(store.db_path.parent, use_process_tracking=False)
    pm = ProcessManager(store, settings)
    try:
        job_id, pid = start_dummy(pm, make_job)
        assert pid is None
        assert pm.get_process_status(job_id).alive  # still ours to watch and stop
        assert pm.kill_process(job_id)
        assert store.get_job(job_id).status is JobStatus.CANCELLED
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_a_running_manager_looks_for_orphans_every_half_timeout_and_housekeeps_at_its_interval(tmp_path):
    from ttservice.jobs import open_store

    settings = make_settings(tmp_path / "data", orphan_timeout=2.0, cleanup_interval=3600.0)
    store = open_store(settings)
    manager = ProcessManager(store, settings)
    old_log = settings.log_dir / "job_999.log"
    old_log.write_text("from long ago\n")
    os.utime(old_log, (time.time() - 30 * 86400,) * 2)
    manager.start()
    try:
        wait_for(lambda: not old_log.exists(), 20, what="the housekeeping at start")
        old_log.write_text("from long ago\n")  # aged after the first housekeeping
        os.utime(old_log, (time.time() - 30 * 86400,) * 2)
        job_id = store.create_job("jfk.wav", None, TranscribeOptions(), Runner.SERVICE)
        store.claim(job_id, 5)  # processing, with no process and no heartbeat: silent after 2 s
        job = wait_for(lambda: store.get_job(job_id).finished_at and store.get_job(job_id), 30)
        assert job.status is JobStatus.FAILED and "no heartbeat for" in job.error
        assert old_log.exists()  # the next housekeeping is an hour away
    finally:
        manager.shutdown(stop_jobs=True, wait=0)
        store.close()


def niceness(pid: int) -> set[int]:
    """The niceness of each of the process's threads, read from /proc (a niceness is each thread's).

    A thread may end between the listing and the read (CI once lost one that way): it has no
    niceness left to check.
    """
    found = set()
    for task in (Path("/proc") / str(pid) / "task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        found.add(int(fields[16]))  # field 19 of stat; fields[0] is field 3
    return found


@pytest.mark.model
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
@pytest.mark.parametrize("nice", [None, 3])
def test_workers_run_at_a_lower_cpu_priority(tmp_path, long_speech, nice):
    from ttservice.jobs import open_store

    values = {} if nice is None else {"worker_nice": nice}
    settings = make_settings(tmp_path / "data", **values)
    store = open_store(settings)
    manager = ProcessManager(store, settings)
    try:
        job_id = store.create_job(long_speech.name, str(long_speech), TranscribeOptions(), Runner.SERVICE)
        assert manager.start_job(job_id)
        wait_for(lambda: store.segments(job_id), 120, what="the worker transcribing")
        pid = store.get_job(job_id).process_id
        expected = 10 if nice is None else nice  # TTSERVICE_WORKER_NICE's default, or the setting
        assert niceness(pid) == {expected}  # every thread: the model's too
        autogroup = Path(
            f"/proc/{pid}/autogroup"
        )  # its session's share of the CPU, where there are autogroups
        if autogroup.exists():
            assert autogroup.read_text().split()[-1] == str(expected)
        assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # the manager's own is untouched
    finally:
        manager.shutdown(stop_jobs=True, wait=0)
        store.close()


def test_a_worker_imports_httpx_only_to_fetch_an_agents_media():
    """httpx is a tenth of a second of a worker's start; only an agent's workers use it."""
    code = "import sys, ttservice.supervision.worker; print('httpx' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
