"""ProcessManager: start, track, watch, stop and sweep transcription workers.

The only module that spawns or signals processes (through `proctree`; its warm
worker through `warm`). It sleeps on `waiting`'s pidfds and pipes. Any
process can use it on any job: the web service that started a worker, or a CLI
in another shell asked to stop it. Decisions read the database, so two managers
agree; status changes are conditional transitions, so they never fight.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psutil

from . import logs, proctree
from .config import SETTINGS, WORKER_PARENT_ENV, Settings
from .jobs import Job, JobStatus, Runner
from .store import QueueBell, Store
from .waiting import Interrupt, pidfd_of, wait_readable
from .warm import WarmWorker

log = logging.getLogger(__name__)

# Seconds between the service's looks for queued jobs (a stat of the database files) and
# for exited workers, where pidfds or the store's queue bell are missing. With them, an
# exit or a newly queued job wakes the monitor at once, and it wakes once a second otherwise.
MONITOR_POLL = 0.1
EXIT_POLL = 0.02  # seconds between checks of a worker's exit where pidfds are missing
LEASE_LAPSE = 30.0  # a "stop if I leave the page" job is stopped this long after its page went away
LEASE_CHECK = 1.0  # seconds between looks for lapsed leases
DISPATCH_CHECK = 1.0  # seconds after which queued jobs are looked for even if nothing seemed to change
UPLOAD_TIMEOUT = 600.0  # an upload whose file is not saved after this long failed (the app died)


@dataclass
class ProcessStatus:
    job_id: int
    status: JobStatus
    alive: bool
    pid: int | None
    cpu_percent: float = 0.0
    rss_bytes: int = 0
    processes: int = 0
    elapsed: float | None = None
    heartbeat_age: float | None = None
    progress: float = 0.0
    stalled: bool = False
    note: str | None = None

    @property
    def memory_mb(self) -> float:
        return self.rss_bytes / (1024 * 1024)


@dataclass
class SweepResult:
    finalized: list[tuple[int, str]] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    logs_removed: int = 0

    def to_dict(self) -> dict:
        return {
            "finalized": [{"id": i, "reason": r} for i, r in self.finalized],
            "killed": self.killed,
            "logs_removed": self.logs_removed,
        }


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker: ours, with this manager's settings made explicit."""
    env = dict(os.environ)
    for setting in SETTINGS:
        value = getattr(settings, setting.name)
        env[setting.env] = str(int(value) if isinstance(value, bool) else value)
    return env


class ProcessManager:
    def __init__(
        self,
        store: Store | None = None,
        settings: Settings | None = None,
        runner: Runner = Runner.SERVICE,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.store = store or Store.from_settings(self.settings)
        self.runner = runner
        self._lock = threading.RLock()
        self._children: dict[int, subprocess.Popen] = {}
        # Opened at spawn, before anything can reap the child and free its PID for reuse.
        self._pidfds: dict[int, int] = {}
        # Live workers of service jobs started by an earlier service process (it crashed):
        # not our children, so watched by identity instead of by wait().
        self._adopted: dict[int, psutil.Process] = {}
        self._metric_procs: dict[int, list[psutil.Process]] = {}
        self.warm = WarmWorker(self.settings, worker_env(self.settings))  # kept by a dispatching monitor
        self._stop = Interrupt()  # also wakes the monitor when a child is added
        self._thread: threading.Thread | None = None
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)

    # --- starting -----------------------------------------------------------

    def worker_command(self, job_id: int) -> list[str]:
        return [sys.executable, "-m", "ttservice.worker", str(job_id)]

    def start_job(self, job_id: int, cmd: Sequence[str] | None = None) -> bool:
        """Claim a queued job if a slot is free and start its worker; False if no slot.

        The service's warm worker takes the job if there is one; otherwise (or with
        `cmd`) a new worker process is started.
        """
        if not self.store.claim(job_id, self.settings.max_concurrent_jobs):
            return False
        process = self.warm.hand(job_id) if cmd is None else None
        self.warm.hold_off()
        cmd = list(cmd or self.worker_command(job_id))
        if process is None:
            env = worker_env(self.settings)
            if self.runner is Runner.FOREGROUND:
                env[WORKER_PARENT_ENV] = str(os.getpid())  # the worker ends with this command
            try:
                process = proctree.spawn(cmd, logs.job_log_path(self.settings.log_dir, job_id), env)
            except OSError as error:
                self.store.transition(
                    job_id, JobStatus.FAILED, error_message=f"The worker could not be started: {error}."
                )
                return True
        self.register_process(job_id, process, cmd)
        return True

    def register_process(self, job_id: int, process: subprocess.Popen, cmd: Sequence[str]) -> None:
        """Record the process of a job (PID, create time, log path) and watch it."""
        log_path = str(logs.job_log_path(self.settings.log_dir, job_id))
        pidfd = pidfd_of(process.pid)
        with self._lock:
            self._children[job_id] = process
            if pidfd is not None:
                self._pidfds[job_id] = pidfd
        self._stop.ring()  # the monitor waits on the new pidfd from now on
        if self.settings.use_process_tracking:
            started = proctree.create_time(process.pid)
            self.store.register_process(job_id, process.pid, started, log_path)
        else:
            self.store.register_process(job_id, None, None, log_path)
        log.info("job %s: started pid %s: %s", job_id, process.pid, " ".join(cmd))

    def wait_for_exit(self, job_id: int, timeout: float, interrupt: threading.Event) -> bool:
        """Wait up to `timeout` s for the worker we started for `job_id` to exit; True if it has.

        Returns as soon as the worker exits, or `interrupt` is set (at once for an
        `Interrupt`, within `timeout` for a plain Event). Without a child of ours it just waits.
        """
        with self._lock:
            child = self._children.get(job_id)
            pidfd = self._pidfds.get(job_id)
            pidfd = os.dup(pidfd) if pidfd is not None else None  # ours even if the child is forgotten
        if child is None:
            interrupt.wait(timeout)
            return False
        if pidfd is not None:
            try:
                wake = [interrupt.fileno()] if isinstance(interrupt, Interrupt) else []
                wait_readable([pidfd, *wake], timeout)
            finally:
                os.close(pidfd)
            return child.poll() is not None
        deadline = time.monotonic() + timeout
        while child.poll() is None:
            if interrupt.wait(EXIT_POLL) or time.monotonic() >= deadline:
                return False
        return True

    def dispatch(self) -> list[int]:
        """Start queued jobs of this manager's runner while slots are free."""
        started = []
        while (job_id := self.store.next_queued(self.runner)) is not None:
            if not self.start_job(job_id):
                break
            started.append(job_id)
        return started

    # --- looking ------------------------------------------------------------

    def _identify(self, job: Job) -> tuple[psutil.Process | None, str | None]:
        """The job's live worker, checked by (pid, create time), or None and why not."""
        if job.process_id is not None and job.process_create_time is not None:
            return proctree.find(proctree.Identity(job.process_id, job.process_create_time))
        with self._lock:
            child = self._children.get(job.id)
        if child is not None and child.poll() is None:
            # Untracked (USE_PROCESS_TRACKING=0) but our own unreaped child: its PID is ours.
            return psutil.Process(child.pid), None
        return None, "no process is tracked for it"

    def get_process_status(self, job_id: int, now: float | None = None) -> ProcessStatus:
        now = now or time.time()
        job = self.store.get_job(job_id)
        status = ProcessStatus(
            job_id=job.id,
            status=job.status,
            alive=False,
            pid=job.process_id,
            progress=job.progress,
            heartbeat_age=(now - job.last_heartbeat)
            if isinstance(job.last_heartbeat, (int, float))
            else None,
        )
        if job.started_at:
            status.elapsed = (job.finished_at or now) - job.started_at
        if job.status is not JobStatus.PROCESSING:
            with self._lock:
                self._metric_procs.pop(job_id, None)
        else:
            status.stalled = job.stalled(self.settings.stall_timeout, now)
            proc, status.note = self._identify(job)
            if proc is not None:
                status.alive = True
                procs = self._metric_tree(job.id, proc)
                status.cpu_percent, status.rss_bytes = proctree.metrics(procs)
                status.processes = len(procs)
        return status

    def _metric_tree(self, job_id: int, leader: psutil.Process) -> list[psutil.Process]:
        """Keep psutil objects between calls so cpu_percent measures the interval since the last."""
        fresh = proctree.tree(leader)
        with self._lock:
            cached = self._metric_procs.get(job_id)
            if cached is not None:
                known = {p: p for p in cached}
                procs = [known.get(p, p) for p in fresh]
                self._metric_procs[job_id] = procs
                return procs
        proctree.metrics(fresh)  # the first look primes the CPU counters
        time.sleep(0.1)
        with self._lock:
            self._metric_procs[job_id] = fresh
        return fresh

    def get_logs(self, job_id: int, lines: int = 200) -> list[str]:
        job = self.store.get_job(job_id)
        path = job.log_file_path or logs.job_log_path(self.settings.log_dir, job_id)
        return logs.tail(path, lines)

    # --- stopping -----------------------------------------------------------

    def _reap(self) -> None:
        with self._lock:
            for process in self._children.values():
                process.poll()

    def kill_process(
        self,
        job_id: int,
        reason: str = "Stopped by the user.",
        final: JobStatus = JobStatus.CANCELLED,
    ) -> bool:
        """Stop a job's whole process tree and mark it `final`. False if it had finished."""
        job = self.store.get_job(job_id)
        if job.status is JobStatus.QUEUED:
            return self.store.transition(job_id, JobStatus.CANCELLED, error_message=reason)
        if job.status is not JobStatus.PROCESSING:
            return False
        self.store.request_stop(job_id)
        proc, _ = self._identify(job)
        exit_code = None
        if proc is not None:
            log.info("job %s: stopping pid %s", job_id, proc.pid)
            proctree.kill_tree(proc, self.settings.kill_grace, self._reap)
        with self._lock:
            process = self._forget_child(job_id)
            self._adopted.pop(job_id, None)
        if process is not None:
            try:
                exit_code = process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if exit_code is not None:
            self.store.record_exit(job_id, exit_code)
        self.store.transition(job_id, final, error_message=reason)
        return True

    def _finalize_dead(self, job: Job, reason: str, exit_code: int | None = None) -> bool:
        """Record the end of a job whose process is gone: cancelled if a stop was asked."""
        if exit_code is not None:
            self.store.record_exit(job.id, exit_code)
        current = self.store.get_job(job.id)
        if current.stop_requested_at is not None:
            return self.store.transition(job.id, JobStatus.CANCELLED, error_message="Stopped by the user.")
        sentence = reason[0].upper() + reason[1:].rstrip(".") + "."
        return self.store.transition(job.id, JobStatus.FAILED, error_message=sentence)

    def _forget_child(self, job_id: int) -> subprocess.Popen | None:
        """Stop watching a child (the caller holds the lock); return it."""
        pidfd = self._pidfds.pop(job_id, None)
        if pidfd is not None:
            os.close(pidfd)
        self._metric_procs.pop(job_id, None)
        return self._children.pop(job_id, None)

    def _collect_exited(self) -> None:
        with self._lock:
            exited = [(j, p) for j, p in self._children.items() if p.poll() is not None]
            for job_id, _ in exited:
                self._forget_child(job_id)
            ended = [j for j, p in self._adopted.items() if not proctree.is_alive(p)]
            for job_id in ended:
                del self._adopted[job_id]
        for job_id, process in exited:
            job = self.store.get_job(job_id)
            self.store.record_exit(job_id, process.returncode)
            if job.status is JobStatus.PROCESSING:
                self._finalize_dead(job, proctree.describe_exit(process.returncode), process.returncode)
            log.info("job %s: worker exited with %s", job_id, process.returncode)
        for job_id in ended:
            job = self.store.get_job(job_id)
            if job.status is JobStatus.PROCESSING:
                self._finalize_dead(
                    job, f"its worker process {job.process_id} ended without recording a result"
                )
            log.info("job %s: adopted worker %s ended", job_id, job.process_id)

    def adopt(self) -> list[int]:
        """Watch the live workers of service jobs that an earlier service started; return their ids.

        A service job still `processing` with no process recorded was claimed by a
        service that died before starting it, so it is finalised now: only the
        service starts service jobs, and this one did not.
        """
        adopted = []
        for job in self.store.active_jobs():
            if job.runner is not Runner.SERVICE:
                continue
            with self._lock:
                if job.id in self._children or job.id in self._adopted:
                    continue
            proc, _ = self._identify(job)
            if proc is not None:
                with self._lock:
                    self._adopted[job.id] = proc
                adopted.append(job.id)
                log.info("job %s: adopted running worker %s", job.id, proc.pid)
            elif job.process_id is None and self.settings.use_process_tracking:
                self._finalize_dead(job, "TTService stopped before its worker was started")
        return adopted

    def cleanup_orphaned_processes(self, now: float | None = None) -> SweepResult:
        """Finalise jobs whose process is gone; kill and finalise those silent too long; fail
        uploads whose file was never saved."""
        now = now or time.time()
        timeout = self.settings.orphan_timeout
        result = SweepResult()
        with self._lock:
            ours = set(self._children)
        for job in self.store.active_jobs():
            last = job.last_heartbeat if isinstance(job.last_heartbeat, (int, float)) else None
            quiet_for = now - (last or job.started_at or 0)
            silent = quiet_for > timeout
            proc, why = self._identify(job)
            if proc is None and job.process_id is None and not silent:
                continue  # untracked (tracking off, or just claimed) but heartbeating
            if proc is None and job.id in ours:
                continue  # our own child that just exited: _collect_exited records its code
            if proc is not None:
                if not silent:
                    continue
                proctree.kill_tree(proc, self.settings.kill_grace, self._reap)
                result.killed.append(job.id)
                why = f"no heartbeat for {quiet_for:.0f} s, so its worker was stopped"
            elif job.process_id is None:
                why = f"no heartbeat for {quiet_for:.0f} s and no process is tracked"
            if self._finalize_dead(job, f"The job was orphaned: {why}"):
                result.finalized.append((job.id, why))
        for job_id in self.store.unfinished_uploads(now - UPLOAD_TIMEOUT):
            reason = "The upload did not finish; upload the file again."
            if self.store.transition(job_id, JobStatus.FAILED, error_message=reason):
                result.finalized.append((job_id, "its upload did not finish"))
        self.store.ensure_reserve()  # room freed since a disk-full failure: put the ballast back
        keep = {logs.job_log_path(self.settings.log_dir, j.id) for j in self.store.active_jobs()}
        result.logs_removed = len(
            logs.purge_old_logs(self.settings.log_dir, self.settings.log_retention_days, keep, now)
        )
        return result

    def stop_lapsed_leases(self, now: float | None = None) -> list[int]:
        """Stop jobs whose "stop if I leave the page" page has been gone for LEASE_LAPSE s."""
        stopped = []
        for job_id in self.store.lapsed_leases(LEASE_LAPSE, now):
            if self.kill_process(job_id, reason="Stopped because its page was left."):
                stopped.append(job_id)
        return stopped

    # --- the monitoring thread ----------------------------------------------

    def start(self, dispatch: bool = False) -> None:
        """Watch started children (and, with dispatch, start queued jobs) in a thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._monitor_loop, args=(dispatch,), name="ttservice-monitor", daemon=True
        )
        self._thread.start()

    def _monitor_loop(self, dispatch: bool) -> None:
        bell = self.store.listen_for_queued() if dispatch else None
        try:
            self._monitor(dispatch, bell)
        finally:
            if bell is not None:
                bell.close()

    def _monitor(self, dispatch: bool, bell: QueueBell | None) -> None:
        next_sweep = next_lease_check = next_dispatch = 0.0  # all once at start
        seen: tuple | None = None
        while not self._stop.is_set():
            try:
                self._collect_exited()
                now = time.monotonic()
                if now >= next_sweep:
                    if dispatch:  # the service: take over what a crashed service left running
                        self.adopt()
                    result = self.cleanup_orphaned_processes()
                    for job_id, why in result.finalized:
                        log.warning("job %s: %s", job_id, why)
                    next_sweep = now + self.settings.cleanup_interval
                if dispatch and now >= next_lease_check:
                    self.stop_lapsed_leases()
                    next_lease_check = now + LEASE_CHECK
                # Queries cost more than the rest of the loop: look for queued jobs only when a
                # slot is free and the database has changed (or a second has passed, to be sure).
                if (
                    dispatch
                    and self._slot_free()
                    and ((mark := self.store.change_mark()) != seen or now >= next_dispatch)
                ):
                    seen, next_dispatch = mark, now + DISPATCH_CHECK
                    self.dispatch()
                if dispatch and self.settings.warm_worker:
                    self.warm.keep(self._slot_free())
            except Exception:  # a monitor that dies silently would be worse than a logged error
                log.exception("process monitor iteration failed")
            if not dispatch:
                timeout = next_sweep - time.monotonic()
            elif bell is None:
                timeout = MONITOR_POLL
            else:  # the next task due; a look for queued jobs only while a slot is free
                due = min(next_sweep, next_lease_check)
                timeout = (min(due, next_dispatch) if self._slot_free() else due) - time.monotonic()
            self._wait_for_event(timeout, bell)

    def _wait_for_event(self, timeout: float, bell: QueueBell | None = None) -> None:
        """Sleep until a child exits, a child is added, a job is queued, shutdown, or `timeout` s pass."""
        self._stop.drain()
        if bell is not None:
            bell.drain()
        if self._stop.is_set():  # set before the drain took its byte
            return
        with self._lock:
            fds = list(self._pidfds.values())
            unwatched = len(self._children) > len(fds) or self._adopted
        if unwatched:  # no pidfd for some: look again soon
            timeout = min(timeout, MONITOR_POLL)
        wait_readable([self._stop.fileno(), *fds, *([bell.fileno()] if bell else [])], timeout)

    def _slot_free(self) -> bool:
        """False when this manager's own workers already fill every slot."""
        with self._lock:
            return len(self._children) + len(self._adopted) < self.settings.max_concurrent_jobs

    def shutdown(self, stop_jobs: bool = False, wait: float = 10.0) -> None:
        """Stop the monitor and leave no child behind.

        With stop_jobs every running job is stopped now; otherwise children get
        `wait` seconds to finish (a worker that has just marked its job finished
        is exiting) before they are stopped too.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.warm.stop()
        if not stop_jobs:
            deadline = time.monotonic() + wait
            while self._children and time.monotonic() < deadline:
                self._collect_exited()
                with self._lock:
                    fds = list(self._pidfds.values())
                    unwatched = len(self._children) > len(fds)
                if self._children:
                    wait_readable(fds, proctree.POLL if unwatched else deadline - time.monotonic())
        with self._lock:
            job_ids = [*self._children, *self._adopted]
        for job_id in job_ids:
            self.kill_process(
                job_id, reason="Interrupted because TTService was shut down.", final=JobStatus.INTERRUPTED
            )
        self._collect_exited()
