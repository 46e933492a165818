"""The ProcessManager's sweep: how it records the end of a worker that is gone or silent,
recovers a silent machine's job, adopts a crashed service's workers, and keeps house.

A mixin of `ProcessManager` (as the stores are of their query mixins), so that each module
holds one concern; the seed's `cleanup_orphaned_processes` is here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import Settings
from ..jobs import SERVICE_RUNNERS, HostId, Job, JobStatus, Runner, Store, logs
from ..messages import Message
from . import proctree
from .lifeline import EXIT_CUT_OFF
from .supervisor import Supervisor, ended

if TYPE_CHECKING:
    import psutil

    from .downloads import ModelDownloads

log = logging.getLogger("ttservice.supervision.process_manager")

LEASE_LAPSE = 30.0  # a "stop if I leave the page" job is stopped this long after its page went away
LEFT = {Runner.API: "why.request_gone"}  # else: "why.page_left"
STOPPED_BY_USER = Message("job.stopped_by_user")
UPLOAD_TIMEOUT = 600.0  # an upload whose file is not saved after this long failed (the app died)


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


class Sweeping:
    settings: Settings
    store: Store
    host: HostId
    registered: bool
    workers: Supervisor
    downloads: ModelDownloads

    # The manager's own, which the sweep uses.
    elsewhere: Callable[[Job], bool]
    _identify: Callable[[Job], tuple[psutil.Process | None, Message | None]]
    kill_process: Callable[..., bool]

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
        status, why = ended(current.stop_requested_at is not None, current.stop_why, reason, STOPPED_BY_USER)
        return self.store.transition(job.id, status, attempt=attempt, error_message=why)

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

    def collect_exited_workers(self) -> None:
        """Record the end of every watched worker that exited without recording it."""
        exited, gone = self.workers.children.collect_exited()
        for job_id, process, attempt, out_of_memory in exited:
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
                why = proctree.describe_exit(process.returncode, out_of_memory=out_of_memory)
                self._finalize_dead(job, Message("process.failed", why=why), process.returncode, attempt)
            log.info("job %s: worker exited with %s", job_id, process.returncode)
        for job_id, attempt in gone:
            job = self.store.get_job(job_id)
            if job.status is JobStatus.PROCESSING and attempt in (None, job.attempt):
                why = Message("why.ended_without_result", pid=job.process_id)
                self._finalize_dead(job, Message("process.failed", why=why), attempt=attempt)
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
            if self.workers.children.watches(job.id):
                continue
            proc, _ = self._identify(job)
            if proc is not None and self.workers.children.adopt(job.id, proc, job.attempt or None):
                adopted.append(job.id)
                log.info("job %s: adopted running worker %s", job.id, proc.pid)
            elif job.process_id is None and self.settings.use_process_tracking:
                self._finalize_dead(
                    job, Message("process.failed", why=Message("why.service_stopped_before_start"))
                )
        return adopted

    def cleanup_orphaned_processes(self, now: float | None = None, housekeeping: bool = True) -> SweepResult:
        """Finalise jobs whose process is gone; kill and finalise those silent too long; fail
        uploads whose file was never saved. With `housekeeping`, also delete logs past their
        retention and put the disk reserve back (a running manager does that less often)."""
        now = now or self.store.clock()  # heartbeats are written by this clock
        timeout = self.settings.orphan_timeout
        result = SweepResult()
        ours = self.workers.children.own_ids()
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
                self.workers.stop_silent(proc)
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
        if housekeeping:
            result.logs_removed = self.housekeeping(now)
        return result

    def housekeeping(self, now: float | None = None) -> int:
        """Put the disk reserve back where room was freed since a disk-full failure, and delete
        logs past their retention; how many log files went."""
        self.store.ensure_reserve()
        keep = {logs.job_log_path(self.settings.log_dir, j.id) for j in self.store.active_jobs()}
        removed = logs.purge_old_logs(self.settings.log_dir, self.settings.log_retention_days, keep, now)
        return len(removed)

    def stop_lapsed_leases(self, now: float | None = None) -> list[int]:
        """Stop jobs whose "stop if I leave" page (or waiting API request) is LEASE_LAPSE s gone."""
        stopped = []
        for job_id in self.store.lapsed_leases(LEASE_LAPSE, now):
            left = LEFT.get(self.store.get_job(job_id).runner, "why.page_left")
            if self.kill_process(job_id, reason=Message("job.stopped_because", why=Message(left))):
                stopped.append(job_id)
        return stopped
