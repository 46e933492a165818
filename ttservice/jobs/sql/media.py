"""A job's media for the machine that runs it, and its log for the machines that did not (a part of
both stores).

Each claim gives the job a new media token: the worker of that attempt shows it
to the central service to fetch the job's media (`interfaces.api.media`), and a
superseded attempt's token no longer opens anything. The media's SHA-256 is
recorded the first time it is sent, so that every attempt, on whichever machine,
transcribes the same bytes.

On a shared store, a worker also copies what its log file gains into
`job_log_chunks` (`jobs.logs.LogShipper`), so that the central machine shows the
log of a job that runs, or ran, on another machine.
"""

from __future__ import annotations

import hmac

from ..record import JobStatus
from .base import SQLStore

LOG_PAGE = 50  # chunks read at a time, newest first, until the tail has its lines


class Media(SQLStore):
    def media_token(self, job_id: int, attempt: int) -> str | None:
        """The token of `attempt` while it runs; None once another attempt was claimed or it ended."""
        rows = self.db.read(
            "SELECT media_token FROM transcription_jobs WHERE id = ? AND status = ? AND attempt = ?",
            (job_id, JobStatus.PROCESSING.value, attempt),
        )
        return rows[0][0] if rows else None

    def media_grant(self, job_id: int, token: str) -> tuple[str, str | None] | None:
        """The running job's media path and recorded hash, if `token` is its attempt's; else None."""
        rows = self.db.read(
            "SELECT media_path, media_sha256, media_token FROM transcription_jobs"
            " WHERE id = ? AND status = ?",
            (job_id, JobStatus.PROCESSING.value),
        )
        if not rows or not rows[0]["media_path"] or not rows[0]["media_token"]:
            return None
        row = rows[0]
        if not hmac.compare_digest(token.encode(), row["media_token"].encode()):
            return None
        return row["media_path"], row["media_sha256"]

    def record_media_sha256(self, job_id: int, sha256: str) -> str:
        """Record the media's hash unless one was recorded first; the hash the job keeps."""
        with self.db.transaction() as conn:
            return conn.execute(
                "UPDATE transcription_jobs SET media_sha256 = coalesce(media_sha256, ?) WHERE id = ?"
                " RETURNING media_sha256",
                (sha256, job_id),
            ).fetchone()[0]

    def append_log(self, job_id: int, attempt: int, text: str) -> None:
        """Add what the job's log gained (whole lines) to its copy in the store."""
        self.db.execute(
            "INSERT INTO job_log_chunks (job_id, attempt, text) VALUES (?, ?, ?)", (job_id, attempt, text)
        )

    def log_chunks(self, job_id: int, after: int = 0) -> list[tuple[int, str]]:
        """The chunks of the job's log copy added after chunk `after` (0: all), as (id, text)."""
        rows = self.db.read(
            "SELECT id, text FROM job_log_chunks WHERE job_id = ? AND id > ? ORDER BY id", (job_id, after)
        )
        return [(row["id"], row["text"]) for row in rows]

    def log_tail(self, job_id: int, lines: int = 200) -> list[str]:
        """The last `lines` lines of the job's log as copied into the store, every attempt's."""
        found: list[str] = []
        before = None
        while len(found) < lines:
            rows = self.db.read(
                "SELECT id, text FROM job_log_chunks WHERE job_id = ?"
                + ("" if before is None else " AND id < ?")
                + " ORDER BY id DESC LIMIT ?",
                (job_id, *(() if before is None else (before,)), LOG_PAGE),
            )
            if not rows:
                break
            for row in rows:
                found[:0] = row["text"].splitlines()
            before = rows[-1]["id"]
        return found[-lines:] if lines > 0 else []
