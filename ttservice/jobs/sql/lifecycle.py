"""Writes of a job's run: claims, transitions, heartbeats, segments (a part of both stores).

Every write that depends on a status names it in its WHERE clause, so it
changes nothing once another process has moved the job on.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

from ...exceptions import ConnectionLost
from ...messages import Message, Said
from ..record import FINISHED, RESUMABLE, SERVICE_RUNNERS, TRANSITIONS, HostId, JobStatus, Runner, Segment
from .base import Connection, SQLStore, said
from .queries import RESUME_POINT_SQL

RESEND_FOR = 30.0  # seconds a segment commit cut by a lost connection is sent again (a server restarting)
RESEND_PAUSE = 0.2


INSERT_SEGMENT_SQL = (
    "INSERT INTO transcription_segments"
    ' (job_id, start, "end", text, words_json, tokens_json, window_start, speaker)'
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def segment_row(job_id: int, s: Segment) -> tuple:
    """A segment as INSERT_SEGMENT_SQL stores it."""
    words = json.dumps(s.words) if s.words else None
    tokens = json.dumps(s.tokens) if s.tokens is not None else None
    return (job_id, s.start, s.end, s.text, words, tokens, s.window, s.speaker)


def fence(attempt: int | None) -> str:
    """The condition that makes a write one run's: it changes nothing once another attempt was claimed."""
    return "" if attempt is None else " AND attempt = ?"


def fenced(attempt: int | None) -> tuple[int, ...]:
    return () if attempt is None else (attempt,)


class Lifecycle(SQLStore):
    def claim(
        self, job_id: int, max_concurrent: int, now: float | None = None, host: HostId | None = None
    ) -> int | None:
        with self.db.transaction() as conn:
            return self._claim_in(conn, job_id, max_concurrent, now or self.clock(), host)

    def _claim_in(
        self, conn: Connection, job_id: int, max_concurrent: int, now: float, host: HostId | None
    ) -> int | None:
        """The claim itself, in a transaction that no other claim runs beside.

        The slots are the machine's: jobs running on other machines do not count (those of
        no machine, claimed before machines were recorded, do).
        """
        name, boot_id = host or (None, None)
        token = secrets.token_urlsafe(24)  # the attempt's, to fetch the media (`sql.media`)
        running = conn.execute(
            "SELECT count(*) FROM transcription_jobs WHERE status = ? AND (host = ? OR host IS NULL)",
            (JobStatus.PROCESSING.value, name),
        ).fetchone()[0]
        if running >= max_concurrent:
            return None
        row = conn.execute(
            "UPDATE transcription_jobs SET status = ?, started_at = ?, last_heartbeat = ?,"
            " last_progress_at = ?, finished_at = NULL, error_message = NULL, error_detail = NULL,"
            " exit_code = NULL, stop_requested_at = NULL, stop_reason = NULL, stop_detail = NULL,"
            " process_id = NULL,"
            " process_create_time = NULL, host = ?, host_boot_id = ?, attempt = coalesce(attempt, 0) + 1,"
            " media_token = ? WHERE id = ? AND status = ? RETURNING attempt",
            (JobStatus.PROCESSING.value, now, now, now, name, boot_id, token, job_id, JobStatus.QUEUED.value),
        ).fetchone()
        return None if row is None else row[0]

    def transition(
        self,
        job_id: int,
        target: JobStatus,
        now: float | None = None,
        attempt: int | None = None,
        **fields: Any,
    ) -> bool:
        now = now or self.clock()
        sources = TRANSITIONS[target]
        values: dict[str, Any] = said({"status": target.value, **fields})
        if target in FINISHED:
            values["finished_at"] = now
        assignments = ", ".join(f"{k} = ?" for k in values)
        marks = ", ".join("?" for _ in sources)
        with self.db.transaction() as conn:
            cur = conn.execute(
                f"UPDATE transcription_jobs SET {assignments} WHERE id = ? AND status IN ({marks})"
                + fence(attempt),
                [*values.values(), job_id, *(s.value for s in sources), *fenced(attempt)],
            )
            return cur.rowcount == 1

    def register_process(
        self, job_id: int, pid: int | None, create_time: float | None, log_path: str | None
    ) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET process_id = ?, process_create_time = ?,"
                " log_file_path = ? WHERE id = ?",
                (pid, create_time, log_path, job_id),
            )

    def heartbeat(self, job_id: int, now: float | None = None, attempt: int | None = None) -> bool:
        cur = self.db.execute(  # one statement: a heartbeat writes one page, with no BEGIN/COMMIT
            "UPDATE transcription_jobs SET last_heartbeat = ? WHERE id = ? AND status = ?" + fence(attempt),
            (now or self.clock(), job_id, JobStatus.PROCESSING.value, *fenced(attempt)),
        )
        return cur.rowcount == 1

    def set_media_info(
        self,
        job_id: int,
        duration: float,
        language: str | None,
        probability: float | None = None,
        attempt: int | None = None,
    ) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET media_duration = ?, detected_language = ?,"
                " language_probability = coalesce(?, language_probability) WHERE id = ? AND status = ?"
                + fence(attempt),
                (duration, language, probability, job_id, JobStatus.PROCESSING.value, *fenced(attempt)),
            )

    def set_peak_memory(self, job_id: int, mb: float, attempt: int | None = None) -> None:
        """Record the worker's peak RSS as it ends (the largest of its attempts')."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET peak_memory_mb = CASE WHEN peak_memory_mb IS NULL"
                " OR peak_memory_mb < ? THEN ? ELSE peak_memory_mb END WHERE id = ?" + fence(attempt),
                (mb, mb, job_id, *fenced(attempt)),
            )

    def set_engine(self, job_id: int, engine: str, attempt: int | None = None) -> None:
        """Record the engine this run loaded its model on."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET engine = ? WHERE id = ?" + fence(attempt),
                (engine, job_id, *fenced(attempt)),
            )

    def add_warning(self, job_id: int, warning: Message) -> None:
        """Keep a sentence the job's reader should see beside its transcript."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT warnings FROM transcription_jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return
            kept = json.loads(row["warnings"] or "[]")
            if warning.to_dict() not in kept:
                kept.append(warning.to_dict())
                conn.execute(
                    "UPDATE transcription_jobs SET warnings = ? WHERE id = ?", (json.dumps(kept), job_id)
                )

    def add_segments(
        self,
        job_id: int,
        segments: Sequence[Segment],
        processed_seconds: float,
        progress: float,
        now: float | None = None,
        attempt: int | None = None,
    ) -> bool:
        """Commit `segments` with the job's progress. A commit whose connection was lost (a server
        restart) is sent again for up to RESEND_FOR seconds, first asking whether the lost one
        arrived (its first segment is there), so that no segment is ever written twice."""
        deadline = time.monotonic() + RESEND_FOR
        resent = False
        while True:
            try:
                with self.db.transaction() as conn:
                    if resent and segments and self._arrived(conn, job_id, segments[0]):
                        return True
                    return self._add_segments(
                        conn, job_id, segments, processed_seconds, progress, now, attempt
                    )
            except ConnectionLost:
                if time.monotonic() > deadline:
                    raise
                resent = True
                time.sleep(RESEND_PAUSE)

    def _arrived(self, conn: Connection, job_id: int, segment: Segment) -> bool:
        return (
            conn.execute(
                "SELECT 1 FROM transcription_segments"
                ' WHERE job_id = ? AND start = ? AND "end" = ? AND text = ?',
                (job_id, segment.start, segment.end, segment.text),
            ).fetchone()
            is not None
        )

    def _add_segments(
        self,
        conn: Connection,
        job_id: int,
        segments: Sequence[Segment],
        processed_seconds: float,
        progress: float,
        now: float | None,
        attempt: int | None,
    ) -> bool:
        now = now or self.clock()
        cur = conn.execute(
            "UPDATE transcription_jobs SET processed_seconds = ?, progress = ?,"
            " last_progress_at = ?, last_heartbeat = ? WHERE id = ? AND status = ?" + fence(attempt),
            (processed_seconds, progress, now, now, job_id, JobStatus.PROCESSING.value, *fenced(attempt)),
        )
        if cur.rowcount != 1:
            return False
        conn.executemany(INSERT_SEGMENT_SQL, [segment_row(job_id, s) for s in segments])
        return True

    def request_stop(self, job_id: int, now: float | None = None, reason: Said | None = None) -> None:
        stop = said({"stop_reason": reason})
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET stop_requested_at = ?, stop_reason = ?, stop_detail = ?"
                " WHERE id = ? AND stop_requested_at IS NULL",
                (now or self.clock(), stop["stop_reason"], stop["stop_detail"], job_id),
            )

    def record_exit(self, job_id: int, exit_code: int) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET exit_code = ? WHERE id = ? AND exit_code IS NULL",
                (exit_code, job_id),
            )

    def requeue_for_resume(self, job_id: int, runner: Runner) -> bool:
        marks = ", ".join("?" for _ in RESUMABLE)
        with self.db.transaction() as conn:
            resume_at = conn.execute(RESUME_POINT_SQL, (job_id,)).fetchone()[0]
            cur = conn.execute(
                "UPDATE transcription_jobs SET status = ?, runner = ?, resumed_from = ?,"
                " processed_seconds = ?, error_message = NULL, error_detail = NULL, exit_code = NULL,"
                " finished_at = NULL, stop_requested_at = NULL, stop_reason = NULL, stop_detail = NULL,"
                " lease_renewed_at = NULL"
                f" WHERE id = ? AND status IN ({marks})",
                (
                    JobStatus.QUEUED.value,
                    runner.value,
                    resume_at,
                    resume_at,
                    job_id,
                    *(s.value for s in RESUMABLE),
                ),
            )
            queued = cur.rowcount == 1
        if queued and runner in SERVICE_RUNNERS:
            self._ring_queued()
        return queued

    def requeue_for_labelling(self, job_id: int, runner: Runner, options: Any) -> bool:
        marks = ", ".join("?" for _ in FINISHED)
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT warnings FROM transcription_jobs"
                f" WHERE id = ? AND status IN ({marks}) AND progress >= 1",
                (job_id, *(s.value for s in FINISHED)),
            ).fetchone()
            if row is None:
                return False
            warnings = json.loads(row["warnings"] or "[]")
            kept = [w for w in warnings if not w.get("code", "").startswith("speakers.")]
            conn.execute(
                "UPDATE transcription_jobs SET status = ?, runner = ?, options_json = ?, warnings = ?,"
                " error_message = NULL, error_detail = NULL, exit_code = NULL, finished_at = NULL,"
                " stop_requested_at = NULL, stop_reason = NULL, stop_detail = NULL, lease_renewed_at = NULL"
                " WHERE id = ?",
                (JobStatus.QUEUED.value, runner.value, options.to_json(), json.dumps(kept), job_id),
            )
        if runner in SERVICE_RUNNERS:
            self._ring_queued()
        return True

    def hand_upload_to_service(
        self, job_id: int, media_path: str, runner: Runner = Runner.SERVICE, sha256: str | None = None
    ) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET media_path = ?, media_sha256 = ?, runner = ?"
                " WHERE id = ? AND runner = ?",
                (media_path, sha256, runner.value, job_id, Runner.UPLOAD.value),
            )
        self._ring_queued()

    def renew_lease(self, job_id: int, now: float | None = None) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET lease_renewed_at = ? WHERE id = ?",
                (now or self.clock(), job_id),
            )
