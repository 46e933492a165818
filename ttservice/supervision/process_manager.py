"""ProcessManager: start, track, watch, stop and sweep transcription workers.

Its workers are supervised processes (`supervisor.Supervisor`, as downloads are); what it
adds is what a job is: claimed for this machine and attempt, run by the warm worker where
there is one, stopped on request from anywhere, its end recorded once. Any process can use
it on any job: the web service that started a worker, or a CLI in another shell asked to
stop it. Decisions read the database, so two managers agree; status changes are conditional
transitions, so they never fight. Its sweep is `sweep.Sweeping`; its thread is `monitor`,
given the duties of `duties()`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from .. import __version__, platform
from ..config import MEDIA_FROM_ENV, WORKER_PARENT_ENV, Settings
from ..jobs import SERVICE_RUNNERS, HostId, Job, JobStatus, Runner, Store, TranscribeOptions, logs, open_store
from ..messages import Message, Said
from ..models import memory
from ..transcription import device
from . import proctree
from .downloads import ModelDownloads
from .guard import MemoryGuard
from .monitor import Duty, Monitor
from .supervisor import Supervisor, worker_env
from .sweep import LEASE_LAPSE, LEFT, STOPPED_BY_USER, UPLOAD_TIMEOUT, Sweeping, SweepResult
from .waiting import Interrupt, wait_readable
from .warm import WarmWorker

__all__ = [
    "LEASE_LAPSE",
    "LEFT",
    "UPLOAD_TIMEOUT",
    "ProcessManager",
    "ProcessStatus",
    "SweepResult",
    "worker_env",
]

log = logging.getLogger(__name__)

EXIT_POLL = 0.02  # seconds between checks of a worker's exit where no exit descriptor can be had
WORKER_MODULE = "ttservice.supervision.worker"
LEASE_CHECK = 1.0  # seconds between looks for lapsed leases
STOP_CHECK = 1.0  # seconds after which stops asked from elsewhere are looked for, changed or not
HOST_SEEN = 30.0  # seconds between renewals of this machine's last contact
DISPATCH_CHECK = 1.0  # seconds after which queued jobs are looked for even if nothing seemed to change
MEMORY_CHECK = 1.0  # seconds between measures of what the running jobs take against the memory limit


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


class ProcessManager(Sweeping):
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
        self.monitor = Monitor(self.collect_exited, self.wait_fds)
        self.workers = Supervisor(self.settings.kill_grace, self.monitor.wake.ring)
        self.warm = WarmWorker(self.settings, worker_env(self.settings))  # kept by a dispatching monitor
        self.warm_options = TranscribeOptions.from_settings(self.settings)  # what the warm one loads
        self.warm_fits = True  # whether its memory fits beside the running jobs (dispatch tells)
        self.memory_waits: set[int] = set()  # jobs whose wait for memory was logged
        self.guard = MemoryGuard(self.settings, self.host.name)
        self.downloads = ModelDownloads(
            self.store, self.settings, runner, Supervisor(self.settings.kill_grace, self.monitor.wake.ring)
        )
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def children(self):
        """The workers it watches (`Children`)."""
        return self.workers.children

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
                process = self.workers.spawn(
                    job_id, cmd, logs.job_log_path(self.settings.log_dir, job_id), env, attempt
                )
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
        if not self.workers.children.watches(job_id):  # the warm worker's, handed its job
            self.workers.watch(job_id, process, attempt)
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
        room = memory.Room(self.store, self.settings, self.host.name)
        for job_id in self.store.queued_jobs(self.runners):
            job = self.store.get_job(job_id)
            if job.options.model in downloading:
                continue
            if not self.downloads.ready_for(job):  # it waits for its download, or it failed
                if self.store.get_job(job_id).status is JobStatus.QUEUED:
                    downloading.add(job.options.model)
                continue
            seconds = memory.media_seconds(job)
            if self._never_fits(job, room, seconds):
                continue
            if (waiting := room.waiting(job.options, seconds)) is not None:  # see has_room
                if job_id not in self.memory_waits:
                    self.memory_waits.add(job_id)
                    log.info("job %s: %s", job_id, waiting)
                break  # in order: the jobs behind it would take the memory it waits for
            self.memory_waits.discard(job_id)
            if not self.start_job(job_id):
                break
            room.take(job.options, seconds)
            started.append(job_id)
        self.warm_fits = room.waiting(self.warm_options) is None
        return started

    def has_room(self, job: Job) -> bool:
        """Whether the job fits now in what the memory limit and the machine leave."""
        room, seconds = memory.Room(self.store, self.settings, self.host.name), memory.media_seconds(job)
        return not self._never_fits(job, room, seconds) and room.waiting(job.options, seconds) is None

    def _never_fits(self, job: Job, room: memory.Room, seconds: float | None) -> bool:
        """True when the job needs more than the limit even alone (its media too long for it):
        it fails, with why, rather than waiting for ever."""
        if (why := room.never_fits(job.options, seconds)) is None:
            return False
        log.info("job %s: %s", job.id, why)
        self.store.transition(job.id, JobStatus.FAILED, error_message=why, exit_code=2)
        return True

    def warm_threads(self) -> int:
        """The CPU threads the warm worker's model loads with: its share as the next job (0: the
        settings say how many every job has)."""
        if self.settings.cpu_threads:
            return 0
        return device.cpu_threads(len(self.children) + 1)

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
        if proc is not None:
            log.info("job %s: stopping pid %s", job_id, proc.pid)
        exit_code = self.workers.stop(job_id, proc)
        if exit_code is not None:
            self.store.record_exit(job_id, exit_code)
        self.store.transition(job_id, final, attempt=job.attempt or None, error_message=reason)
        return True

    def keep_memory_limit(self) -> int | None:
        """Give memory back where the running jobs take more than the limit allows (`guard`):
        the warm worker ended, else the job furthest over its estimate stopped and failed with
        what it took; return that job's id."""
        taken = {}
        for job_id in self.children.job_ids():
            if (proc := self.children.process(job_id)) is not None:
                taken[job_id] = proctree.rss_mb(proc)
        if not taken:
            return None
        verdict = self.guard.look(
            taken, self.store.active_jobs(), self.warm.taken_mb(), memory.converting_mb(self.store)
        )
        if verdict.end_warm:
            log.info("the warm worker ended: the running jobs need its memory")
            self.warm.stop(until_next_job=True)
        if verdict.stop is None:
            return None
        job = self.store.get_job(verdict.stop)
        why = Message("memory.over_limit", used_gb=verdict.taken_mb / 1024, limit_gb=verdict.limit_mb / 1024)
        log.warning("job %s: %s", job.id, why)
        self.store.set_peak_memory(job.id, verdict.taken_mb, attempt=job.attempt or None)
        self.kill_process(job.id, reason=why, final=JobStatus.FAILED)
        return job.id

    def stop_requested(self) -> list[int]:
        """Stop this machine's jobs whose stop was asked elsewhere (another machine, or a
        command that could not); return their ids."""
        stopped = []
        for job_id in self.store.stop_requests(self.host):
            job = self.store.get_job(job_id)
            if self.kill_process(job_id, reason=job.stop_why or STOPPED_BY_USER):
                stopped.append(job_id)
        return stopped

    # --- the monitoring thread ----------------------------------------------

    def start(self, dispatch: bool = False) -> None:
        """Watch started children (and, with dispatch, start queued jobs) in a thread."""
        self.monitor.start(
            self.duties(dispatch),
            listen=self.store.listen_for_queued if dispatch else None,
            on_start=self.register_host if dispatch else None,  # listed in `ttservice hosts`
        )

    def collect_exited(self) -> None:
        """Record the end of every watched worker and download that exited without recording it."""
        self.downloads.collect_exited()
        self.collect_exited_workers()

    def wait_fds(self) -> tuple[list[int], bool]:
        """The exit descriptors of every process it watches, and whether some have none."""
        fds, unwatched = self.workers.wait_fds()
        download_fds, downloads_unwatched = self.downloads.workers.wait_fds()
        return fds + download_fds, unwatched or downloads_unwatched

    def duties(self, dispatch: bool) -> list[Duty]:
        """What the monitor does now and then; with `dispatch` (the service, an agent), also
        starting queued jobs and what that asks for."""
        settings, store = self.settings, self.store

        def sweep() -> None:
            if dispatch:  # the service: take over what a crashed service left running
                self.adopt()
            for job_id, why in self.cleanup_orphaned_processes(housekeeping=False).finalized:
                log.warning("job %s: %s", job_id, why)

        def contact() -> None:
            if self.registered:
                store.host_seen(self.host)

        duties = [
            # A stop asked on another machine (or by a command that could not signal) is this
            # manager's to carry out, for the jobs it runs.
            Duty("stops", self.stop_requested, STOP_CHECK, store.change_mark, lambda: len(self.children) > 0),
            Duty("memory", self.keep_memory_limit, MEMORY_CHECK, wanted=lambda: len(self.children) > 0),
            Duty("contact", contact, HOST_SEEN, first=HOST_SEEN),
            Duty("sweep", sweep, settings.orphan_check_interval),
            Duty("housekeeping", self.housekeeping, settings.cleanup_interval),
        ]
        if not dispatch:
            return duties

        def look_for_work() -> None:
            self.downloads.start_requested()
            if self.slot_free():
                self.dispatch()

        return duties + [
            Duty("leases", self.stop_lapsed_leases, LEASE_CHECK),
            # Queries cost more than the rest of a turn: queued jobs and asked-for downloads are
            # looked for when the database changed (or a second passed, to be sure).
            Duty("dispatch", look_for_work, DISPATCH_CHECK, store.change_mark),
            Duty(
                "warm",
                lambda: self.warm.keep(self.slot_free() and self.warm_fits, self.warm_threads()),
                None,
                wanted=lambda: settings.warm_worker,
            ),
        ]

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
        self.stop_all(Message("job.interrupted_shutdown"))
        self.collect_exited()

    def stop_all(self, reason: Message, answers: bool | None = None) -> list[int]:
        """Stop every job this manager runs, each recorded `interrupted` with `reason` where the
        store answers (`Supervisor.stop_all`); return the jobs so recorded."""
        recorded: list[int] = []

        def stop(job_id: int) -> None:
            if self.kill_process(job_id, reason=reason, final=JobStatus.INTERRUPTED):
                recorded.append(job_id)

        self.workers.stop_all(self.store, stop, "job", answers)
        return recorded
