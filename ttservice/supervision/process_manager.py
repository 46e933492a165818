"""ProcessManager: start, track, watch, stop and sweep transcription workers.

The only code that spawns or signals workers (through `proctree`; its warm
worker through `warm`). Any process can use it on any job: the web service that
started a worker, or a CLI in another shell asked to stop it. Decisions read the
database, so two managers agree; status changes are conditional transitions, so
they never fight. What it watches is kept in `children`; its thread is `monitor`.
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

from .. import __version__, platform
from ..config import MEDIA_FROM_ENV, SETTINGS, WORKER_PARENT_ENV, Settings
from ..jobs import SERVICE_RUNNERS, HostId, Job, JobStatus, Runner, Store, logs, open_store
from ..messages import Message, Said
from . import proctree
from .children import Children
from .downloads import ModelDownloads
from .lifeline import EXIT_CUT_OFF
from .monitor import Monitor
from .waiting import Interrupt, wait_readable
from .warm import WarmWorker

log = logging.getLogger(__name__)

EXIT_POLL = 0.02  # seconds between checks of a worker's exit where no exit descriptor can be had
LEASE_LAPSE = 30.0  # a "stop if I leave the page" job is stopped this long after its page went away
LEFT = {Runner.API: "why.request_gone"}  # else: "why.page_left"
STOPPED_BY_USER = Message("job.stopped_by_user")
UPLOAD_TIMEOUT = 600.0  # an upload whose file is not saved after this long failed (the app died)
WORKER_MODULE = "ttservice.supervision.worker"


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
    note: Message | None = None  # why it is not seen running here
    gpu_bytes: int | None = None  # on CUDA, where nvidia-smi can tell
    elsewhere: str | None = None  # the machine it runs on, when another: its processes are seen there

    @property
    def memory_mb(self) -> float:
        return self.rss_bytes / (1024 * 1024)


@dataclass
class SweepResult:
    finalized: list[tuple[int, Message]] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    logs_removed: int = 0
    downloads: list[tuple[int, Message]] = field(default_factory=list)  # model downloads finished

    def to_dict(self) -> dict:
        return {
            "finalized": [{"id": i, "reason": str(r), "code": r.code} for i, r in self.finalized],
            "killed": self.killed,
            "logs_removed": self.logs_removed,
            "downloads": [{"id": i, "reason": str(r), "code": r.code} for i, r in self.downloads],
        }


def worker_env(settings: Settings, secrets: bool = False) -> dict[str, str]:
    """The environment of a worker: ours, with this manager's settings made explicit (the API
    keys only with `secrets`: a worker has no use for them)."""
    hidden = {s.env for s in SETTINGS if s.secret and not secrets}
    return {k: v for k, v in os.environ.items() if k not in hidden} | settings.environment(secrets)


class ProcessManager:
    def __init__(
        self,
        store: Store | None = None,
        settings: Settings | None = None,
        runner: Runner = Runner.SERVICE,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.store = store or open_store(self.settings)
        self.runner = runner
        self.runners = SERVICE_RUNNERS if runner is Runner.SERVICE else frozenset({runner})  # it starts
        # The jobs it starts are recorded as this machine's: only a manager of the same
        # machine and boot looks for their processes or signals them.
        self.host = HostId(self.settings.host_name or platform.node_name(), platform.boot_id())
        self.registered = False  # among the machines that run queued jobs (`register_host`)
        self.media_from: str | None = None  # an agent's: the API its workers fetch their media from
        self.children = Children()
        self.warm = WarmWorker(self.settings, worker_env(self.settings))  # kept by a dispatching monitor
        self.monitor = Monitor(self)
        self.downloads = ModelDownloads(self)
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)

    # --- starting -----------------------------------------------------------

    def worker_env(self) -> dict[str, str]:
        return worker_env(self.settings)

    def worker_command(self, job_id: int, attempt: int) -> list[str]:
        return [sys.executable, "-m", WORKER_MODULE, str(job_id), str(attempt)]

    def register_host(self) -> None:
        """Record this machine among those that run jobs (`ttservice hosts`, Statistics)."""
        self.store.register_host(self.host, self.settings.max_concurrent_jobs, __version__)
        self.registered = True

    def start_job(self, job_id: int, cmd: Sequence[str] | None = None) -> bool:
        """Claim a queued job if a slot is free on this machine and start its worker; False if no slot.

        The service's warm worker takes the job if there is one; otherwise (or with
        `cmd`) a new worker process is started.
        """
        attempt = self.store.claim(job_id, self.settings.max_concurrent_jobs, host=self.host)
        if attempt is None:
            return False
        process = self.warm.hand(job_id, attempt) if cmd is None else None
        self.warm.hold_off()
        cmd = list(cmd or self.worker_command(job_id, attempt))
        if process is None:
            env = worker_env(self.settings)
            if self.runner is Runner.FOREGROUND:
                env[WORKER_PARENT_ENV] = str(os.getpid())  # the worker ends with this command
            if self.media_from:
                env[MEDIA_FROM_ENV] = self.media_from
            try:
                process = proctree.spawn(cmd, logs.job_log_path(self.settings.log_dir, job_id), env)
            except OSError as error:
                self.store.transition(
                    job_id,
                    JobStatus.FAILED,
                    attempt=attempt,
                    error_message=Message("job.worker_not_started", error=str(error)),
                )
                return True
        self.register_process(job_id, process, cmd, attempt)
        return True

    def register_process(
        self, job_id: int, process: subprocess.Popen, cmd: Sequence[str], attempt: int | None = None
    ) -> None:
        """Record the process of a job's `attempt` (PID, create time, log path) and watch it."""
        log_path = str(logs.job_log_path(self.settings.log_dir, job_id))
        self.children.add(job_id, process, attempt)
        self.monitor.wake.ring()  # the monitor waits on the new exit descriptor from now on
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
        child = self.children.child(job_id)
        if child is None:
            interrupt.wait(timeout)
            return False
        fd = self.children.exit_fd(job_id)  # ours even if the child is forgotten meanwhile
        if fd is not None:
            try:
                wake = [interrupt.fileno()] if isinstance(interrupt, Interrupt) else []
                wait_readable([fd, *wake], timeout)
            finally:
                os.close(fd)
            return child.poll() is not None
        deadline = time.monotonic() + timeout
        while child.poll() is None:
            if interrupt.wait(EXIT_POLL) or time.monotonic() >= deadline:
                return False
        return True

    def dispatch(self) -> list[int]:
        """Start queued jobs of this manager's runner, oldest first, while slots are free.

        A job whose model is not downloaded yet stays queued (its download is started
        if none runs) and the jobs behind it go ahead.
        """
        started: list[int] = []
        downloading: set[str] = set()  # models whose download runs: all their jobs wait
        for job_id in self.store.queued_jobs(self.runners):
            job = self.store.get_job(job_id)
            if job.options.model in downloading:
                continue
            if not self.downloads.ready_for(job):  # it waits for its download, or it failed
                if self.store.get_job(job_id).status is JobStatus.QUEUED:
                    downloading.add(job.options.model)
                continue
            if not self.start_job(job_id):
                break
            started.append(job_id)
        return started

    def slot_free(self) -> bool:
        """False when this manager's own workers already fill every slot."""
        return len(self.children) < self.settings.max_concurrent_jobs

    # --- looking ------------------------------------------------------------

    def elsewhere(self, job: Job) -> bool:
        """Whether the job's latest attempt was claimed by another machine: its processes are
        that machine's to look at and to stop."""
        return job.host is not None and job.host != self.host.name

    def _identify(self, job: Job) -> tuple[psutil.Process | None, Message | None]:
        """The job's live worker on this machine, checked by (pid, create time), or None and why not."""
        if self.elsewhere(job):
            return None, Message("why.runs_elsewhere", host=job.host)
        if job.host_boot_id is not None and job.host_boot_id != self.host.boot_id:
            return None, Message("why.machine_restarted")  # every process of then is gone
        if job.process_id is not None and job.process_create_time is not None:
            return proctree.find(proctree.Identity(job.process_id, job.process_create_time))
        # Untracked (USE_PROCESS_TRACKING=0) but our own unreaped child: its PID is ours.
        child = self.children.live_child(job.id)
        return (child, None) if child is not None else (None, Message("why.untracked"))

    def get_process_status(self, job_id: int, now: float | None = None) -> ProcessStatus:
        now = now or self.store.clock()
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
            self.children.drop_metrics(job_id)
        else:
            status.stalled = job.stalled(self.settings.stall_timeout, now)
            if self.elsewhere(job):
                status.elsewhere = job.host
            proc, status.note = self._identify(job)
            if proc is not None:
                status.alive = True
                procs = self.children.metric_tree(job.id, proc)
                status.cpu_percent, status.rss_bytes = proctree.metrics(procs)
                status.processes = len(procs)
                if job.options.device != "cpu":
                    status.gpu_bytes = proctree.gpu_memory([p.pid for p in procs])
        return status

    def get_logs(self, job_id: int, lines: int = 200) -> list[str]:
        """The last `lines` lines of the job's log: its file, or, for a job another machine ran
        last, the copy its workers wrote into the store."""
        job = self.store.get_job(job_id)
        if self.elsewhere(job):
            return self.store.log_tail(job_id, lines)
        path = job.log_file_path or logs.job_log_path(self.settings.log_dir, job_id)
        return logs.tail(path, lines)

    # --- stopping -----------------------------------------------------------

    def kill_process(
        self,
        job_id: int,
        reason: Said = STOPPED_BY_USER,
        final: JobStatus = JobStatus.CANCELLED,
    ) -> bool:
        """Stop a job's whole process tree and mark it `final`. False if it had finished.

        A job running on another machine is only asked to stop (recorded in the store):
        that machine's manager stops it, after its own identity check (`stop_requested`).
        """
        job = self.store.get_job(job_id)
        if job.status is JobStatus.QUEUED:
            return self.store.transition(job_id, JobStatus.CANCELLED, error_message=reason)
        if job.status is not JobStatus.PROCESSING:
            return False
        self.store.request_stop(job_id, reason=reason)
        if self.elsewhere(job):
            log.info("job %s: stop asked of %s", job_id, job.host)
            return True
        proc, _ = self._identify(job)
        exit_code = None
        if proc is not None:
            log.info("job %s: stopping pid %s", job_id, proc.pid)
            proctree.kill_tree(proc, self.settings.kill_grace, self.children.reap)
        process = self.children.forget(job_id)
        if process is not None:
            try:
                exit_code = process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if exit_code is not None:
            self.store.record_exit(job_id, exit_code)
        self.store.transition(job_id, final, attempt=job.attempt or None, error_message=reason)
        return True

    def stop_requested(self) -> list[int]:
        """Stop this machine's jobs whose stop was asked elsewhere (another machine, or a
        command that could not); return their ids."""
        stopped = []
        for job_id in self.store.stop_requests(self.host):
            job = self.store.get_job(job_id)
            if self.kill_process(job_id, reason=job.stop_why or STOPPED_BY_USER):
                stopped.append(job_id)
        return stopped

    def _finalize_dead(
        self, job: Job, reason: Message, exit_code: int | None = None, attempt: int | None = None
    ) -> bool:
        """Record the end of a job whose process is gone: cancelled if a stop was asked.

        Only the end of `attempt` (by default the one `job` was read at): once the job
        runs again, anywhere, this changes nothing.
        """
        attempt = attempt or job.attempt or None
        if exit_code is not None:
            self.store.record_exit(job.id, exit_code)
        current = self.store.get_job(job.id)
        if current.stop_requested_at is not None:
            why = current.stop_why or STOPPED_BY_USER
            return self.store.transition(job.id, JobStatus.CANCELLED, attempt=attempt, error_message=why)
        return self.store.transition(job.id, JobStatus.FAILED, attempt=attempt, error_message=reason)

    def _recover_lost(self, job: Job, why: Message) -> bool:
        """A job whose machine went silent: its attempt ends, and (unless TTSERVICE_AUTO_RESUME=0)
        the job is queued to continue from its last segment on a machine that answers.

        No signal is sent: the processes are another machine's, and a worker cut off from
        the database stops itself before this (`lifeline.Heartbeat`); its late writes name
        an attempt that is over, and change nothing.
        """
        reason = Message("job.interrupted_because", why=why)
        status = self.store.recover_lost(job.id, job.attempt, reason, self.settings.auto_resume)
        if status is JobStatus.QUEUED:
            log.warning("job %s: %s; queued to resume at attempt %d", job.id, why, job.attempt + 1)
        elif status is not None:
            log.warning("job %s: %s; now %s", job.id, why, status.value)
        return status is not None

    def collect_exited(self) -> None:
        """Record the end of every watched worker (and download) that exited without recording it."""
        self.downloads.collect_exited()
        exited, ended = self.children.collect_exited()
        for job_id, process, attempt in exited:
            job = self.store.get_job(job_id)
            if attempt is not None and job.attempt != attempt:
                log.info("job %s: worker of attempt %s exited with %s", job_id, attempt, process.returncode)
                continue  # the job runs again (elsewhere): this exit is not its end
            self.store.record_exit(job_id, process.returncode)
            if job.status is JobStatus.PROCESSING and process.returncode == EXIT_CUT_OFF:
                # It lost the database and stopped itself so that no second run could overlap it:
                # nothing is wrong with the job, which continues from its last segment.
                self._recover_lost(job, Message("why.cut_off"))
            elif job.status is JobStatus.PROCESSING:
                why = proctree.describe_exit(process.returncode)
                self._finalize_dead(job, Message("job.failed", why=why), process.returncode, attempt)
            log.info("job %s: worker exited with %s", job_id, process.returncode)
        for job_id, attempt in ended:
            job = self.store.get_job(job_id)
            if job.status is JobStatus.PROCESSING and attempt in (None, job.attempt):
                why = Message("why.ended_without_result", pid=job.process_id)
                self._finalize_dead(job, Message("job.failed", why=why), attempt=attempt)
            log.info("job %s: adopted worker %s ended", job_id, job.process_id)

    def adopt(self) -> list[int]:
        """Watch the live workers of service jobs that an earlier service started; return their ids.

        A service job still `processing` with no process recorded was claimed by a
        service that died before starting it, so it is finalised now: only the
        service starts service jobs, and this one did not.
        """
        adopted = []
        for job in self.store.active_jobs():
            if job.runner not in SERVICE_RUNNERS or self.elsewhere(job):
                continue
            if self.children.watches(job.id):
                continue
            proc, _ = self._identify(job)
            if proc is not None and self.children.adopt(job.id, proc, job.attempt or None):
                adopted.append(job.id)
                log.info("job %s: adopted running worker %s", job.id, proc.pid)
            elif job.process_id is None and self.settings.use_process_tracking:
                self._finalize_dead(
                    job, Message("job.failed", why=Message("why.service_stopped_before_start"))
                )
        return adopted

    def cleanup_orphaned_processes(self, now: float | None = None, housekeeping: bool = True) -> SweepResult:
        """Finalise jobs whose process is gone; kill and finalise those silent too long; fail
        uploads whose file was never saved. With `housekeeping`, also delete logs past their
        retention and put the disk reserve back (a running manager does that less often)."""
        now = now or self.store.clock()  # heartbeats are written by this clock
        timeout = self.settings.orphan_timeout
        result = SweepResult()
        ours = self.children.own_ids()
        # Other machines' silent jobs are the sweeper's: a service of the machines, chosen by the store.
        sweeper = self.store.is_sweeper(self.host.name if self.registered else None)
        for job in self.store.active_jobs():
            last = job.last_heartbeat if isinstance(job.last_heartbeat, (int, float)) else None
            quiet_for = now - (last or job.started_at or 0)
            silent = quiet_for > timeout
            if self.elsewhere(job):
                if not silent or not sweeper:
                    continue  # another machine's job: the sweeper (whoever holds its lock) recovers it
                if self._recover_lost(job, Message("why.host_silent", host=job.host, seconds=quiet_for)):
                    result.finalized.append((job.id, Message("why.host_went_silent", host=job.host)))
                continue
            proc, why = self._identify(job)
            if proc is None and job.process_id is None and not silent:
                continue  # untracked (tracking off, or just claimed) but heartbeating
            if proc is None and job.id in ours:
                continue  # our own child that just exited: _collect_exited records its code
            if proc is not None:
                if not silent:
                    continue
                proctree.kill_tree(proc, self.settings.kill_grace, self.children.reap)
                result.killed.append(job.id)
                why = Message("why.no_heartbeat_stopped", seconds=quiet_for)
            elif job.process_id is None:
                why = Message("why.no_heartbeat_untracked", seconds=quiet_for)
            if self._finalize_dead(job, Message("job.orphaned", why=why)):
                result.finalized.append((job.id, why))
        for job_id in self.store.unfinished_uploads(now - UPLOAD_TIMEOUT):
            reason = Message("job.upload_unfinished")
            if self.store.transition(job_id, JobStatus.FAILED, error_message=reason):
                result.finalized.append((job_id, Message("why.upload_unfinished")))
        result.downloads = self.downloads.sweep(now)
        if not housekeeping:
            return result
        self.store.ensure_reserve()  # room freed since a disk-full failure: put the ballast back
        keep = {logs.job_log_path(self.settings.log_dir, j.id) for j in self.store.active_jobs()}
        result.logs_removed = len(
            logs.purge_old_logs(self.settings.log_dir, self.settings.log_retention_days, keep, now)
        )
        return result

    def stop_lapsed_leases(self, now: float | None = None) -> list[int]:
        """Stop jobs whose "stop if I leave" page (or waiting API request) is LEASE_LAPSE s gone."""
        stopped = []
        for job_id in self.store.lapsed_leases(LEASE_LAPSE, now):
            left = LEFT.get(self.store.get_job(job_id).runner, "why.page_left")
            if self.kill_process(job_id, reason=Message("job.stopped_because", why=Message(left))):
                stopped.append(job_id)
        return stopped

    # --- the monitoring thread ----------------------------------------------

    def start(self, dispatch: bool = False) -> None:
        """Watch started children (and, with dispatch, start queued jobs) in a thread."""
        self.monitor.start(dispatch)

    def shutdown(self, stop_jobs: bool = False, wait: float = 10.0) -> None:
        """Stop the monitor and leave no child behind.

        With stop_jobs every running job is stopped now; otherwise children get
        `wait` seconds to finish (a worker that has just marked its job finished
        is exiting) before they are stopped too.
        """
        self.monitor.stop()
        self.warm.stop()
        self.downloads.shutdown()
        if not stop_jobs:
            deadline = time.monotonic() + wait
            while self.children.own_ids() and time.monotonic() < deadline:
                self.collect_exited()
                fds, unwatched = self.children.wait_fds()
                if self.children.own_ids():
                    wait_readable(fds, proctree.POLL if unwatched else deadline - time.monotonic())
        for job_id in self.children.job_ids():
            self.kill_process(job_id, reason=Message("job.interrupted_shutdown"), final=JobStatus.INTERRUPTED)
        self.collect_exited()
