"""The machines that run jobs, and what becomes of a job whose machine went silent (a part of both stores).

A machine registers under its name when its agent (or a service that starts
jobs) begins, and renews `last_seen` as it goes; a new boot id under the same
name is the same machine restarted. A job claimed by a machine carries its name
and boot id, and an attempt number that every write of that run names.
"""

from __future__ import annotations

from ...messages import Message, Said
from ..record import SERVICE_RUNNERS, Host, HostId, JobStatus, Runner
from .base import SQLStore, message, said
from .queries import RESUME_POINT_SQL


class Hosts(SQLStore):
    def register_host(
        self, host: HostId, slots: int, version: str | None = None, now: float | None = None
    ) -> None:
        """This machine runs jobs from now on, with `slots` at once; a new boot starts it anew."""
        now = now or self.clock()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO hosts (name, boot_id, slots, version, started_at, last_seen)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " boot_id = excluded.boot_id, slots = excluded.slots, version = excluded.version,"
                " started_at = CASE WHEN hosts.boot_id = excluded.boot_id THEN hosts.started_at"
                " ELSE excluded.started_at END, last_seen = excluded.last_seen",
                (host.name, host.boot_id, slots, version, now, now),
            )

    def host_seen(self, host: HostId, now: float | None = None) -> bool:
        """Renew the machine's last contact; False if it is registered with another boot (or not at all)."""
        cur = self.db.execute(
            "UPDATE hosts SET last_seen = ? WHERE name = ? AND boot_id = ?",
            (now or self.clock(), host.name, host.boot_id),
        )
        return cur.rowcount == 1

    def list_hosts(self) -> list[Host]:
        rows = self.db.read(
            "SELECT name, boot_id, slots, version, started_at, last_seen FROM hosts ORDER BY name"
        )
        return [Host(**dict(row)) for row in rows]

    def stop_requests(self, host: HostId) -> list[int]:
        """Jobs running on this machine (this boot) whose stop was asked, wherever it was asked."""
        rows = self.db.read(
            "SELECT id FROM transcription_jobs WHERE status = ? AND host = ? AND host_boot_id = ?"
            " AND stop_requested_at IS NOT NULL ORDER BY id",
            (JobStatus.PROCESSING.value, host.name, host.boot_id),
        )
        return [row[0] for row in rows]

    def recover_lost(
        self, job_id: int, attempt: int, reason: Said, resume: bool, now: float | None = None
    ) -> JobStatus | None:
        """End `attempt` of a job whose machine went silent: queued again from its last committed
        segment with `resume` (the next claim is attempt + 1), else interrupted with `reason`.

        A stop asked for meanwhile is honoured: the job is cancelled, with the stop's reason.
        One conditional UPDATE, so of several sweepers only one recovers the attempt; None
        if it had ended already (another sweeper, or its own worker, was first).
        """
        now = now or self.clock()
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT stop_requested_at, stop_reason, stop_detail, runner FROM transcription_jobs"
                " WHERE id = ? AND status = ? AND attempt = ?",
                (job_id, JobStatus.PROCESSING.value, attempt),
            ).fetchone()
            if row is None:
                return None
            if row[0] is not None:
                why = message(row[1], row[2]) or Message("job.stopped_by_user")
                status, values = JobStatus.CANCELLED, said({"error_message": why})
            elif resume and Runner(row[3] or Runner.SERVICE.value) in SERVICE_RUNNERS:
                resume_at = conn.execute(RESUME_POINT_SQL, (job_id,)).fetchone()[0]
                status, values = JobStatus.QUEUED, {"resumed_from": resume_at, "processed_seconds": resume_at}
            else:
                status, values = JobStatus.INTERRUPTED, said({"error_message": reason})
            if status is not JobStatus.QUEUED:
                values["finished_at"] = now
            assignments = "".join(f", {k} = ?" for k in values)
            cur = conn.execute(
                f"UPDATE transcription_jobs SET status = ?{assignments}"
                " WHERE id = ? AND status = ? AND attempt = ?",
                (status.value, *values.values(), job_id, JobStatus.PROCESSING.value, attempt),
            )
            if cur.rowcount != 1:
                return None
            self._lost_run(conn, job_id)
        if status is JobStatus.QUEUED:
            self._ring_queued()
        return status
