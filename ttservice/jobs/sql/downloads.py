"""Rows of model downloads, `model_downloads` (a part of both stores).

A partial unique index allows one `processing` row per repo: two services, or a
service and a CLI, asking for the same model at once get the same download.
"""

from __future__ import annotations

from typing import Any

from ...exceptions import TTServiceError
from ...messages import Message, Said
from ..record import PHASE_DOWNLOADING, Download, JobStatus, Runner
from .base import SQLStore, said

ACTIVE = JobStatus.PROCESSING.value


class Downloads(SQLStore):
    def start_download(
        self, model: str, repo_id: str, runner: Runner, now: float | None = None
    ) -> tuple[int, bool]:
        """A new processing download of `repo_id`, or the one already running: (id, created)."""
        now = now or self.clock()
        with self.db.transaction() as conn:
            while True:
                row = conn.execute(  # refused by the one-active index while another runs
                    "INSERT INTO model_downloads (model, repo_id, status, runner, created_at, started_at,"
                    " last_heartbeat) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (repo_id) WHERE status = 'processing' DO NOTHING RETURNING id",
                    (model, repo_id, ACTIVE, runner.value, now, now, now),
                ).fetchone()
                if row is not None:
                    return int(row[0]), True
                row = conn.execute(
                    "SELECT id FROM model_downloads WHERE repo_id = ? AND status = ?", (repo_id, ACTIVE)
                ).fetchone()
                if row is not None:  # else it ended in between: try again
                    return row["id"], False

    def get_download(self, download_id: int) -> Download:
        rows = self.db.read("SELECT * FROM model_downloads WHERE id = ?", (download_id,))
        if not rows:
            raise TTServiceError("download.not_found", download_id=download_id)
        return row_to_download(rows[0])

    def latest_download(self, repo_id: str) -> Download | None:
        rows = self.db.read(
            "SELECT * FROM model_downloads WHERE repo_id = ? ORDER BY id DESC LIMIT 1", (repo_id,)
        )
        return row_to_download(rows[0]) if rows else None

    def list_downloads(self, active_only: bool = False, limit: int = 50) -> list[Download]:
        where = "WHERE status = ?" if active_only else ""
        rows = self.db.read(
            f"SELECT * FROM model_downloads {where} ORDER BY id DESC LIMIT ?",
            (ACTIVE, limit) if active_only else (limit,),
        )
        return [row_to_download(r) for r in rows]

    def take_download(self, download_id: int, runner: Runner) -> bool:
        """Make a requested download (runner `unclaimed`: nobody's yet) this runner's to start."""
        cur = self.db.execute(
            "UPDATE model_downloads SET runner = ? WHERE id = ? AND status = ? AND runner = ?",
            (runner.value, download_id, ACTIVE, Runner.UNCLAIMED.value),
        )
        return cur.rowcount == 1

    def register_download_process(
        self, download_id: int, pid: int | None, create_time: float | None, log_path: str | None
    ) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE model_downloads SET process_id = ?, process_create_time = ?, log_file_path = ?"
                " WHERE id = ?",
                (pid, create_time, log_path, download_id),
            )

    def download_progress(
        self,
        download_id: int,
        done: int,
        total: int | None,
        started: int | None = None,
        now: float | None = None,
    ) -> bool:
        """Record bytes on disk (and the heartbeat); False once the download is no longer running."""
        cur = self.db.execute(
            "UPDATE model_downloads SET bytes_done = ?, bytes_total = coalesce(?, bytes_total),"
            " started_bytes = coalesce(?, started_bytes), last_heartbeat = ? WHERE id = ? AND status = ?",
            (done, total, started, now or self.clock(), download_id, ACTIVE),
        )
        return cur.rowcount == 1

    def download_phase(
        self, download_id: int, phase: str, done: int, total: int, memory_mb: float | None = None
    ) -> bool:
        """Record the conversion's step (and its memory need, once); False once it is no longer running."""
        cur = self.db.execute(
            "UPDATE model_downloads SET phase = ?, steps_done = ?, steps_total = ?,"
            " memory_mb = coalesce(?, memory_mb), last_heartbeat = ? WHERE id = ? AND status = ?",
            (phase, done, total, memory_mb, self.clock(), download_id, ACTIVE),
        )
        return cur.rowcount == 1

    def download_heartbeat(self, download_id: int, now: float | None = None) -> bool:
        cur = self.db.execute(
            "UPDATE model_downloads SET last_heartbeat = ? WHERE id = ? AND status = ?",
            (now or self.clock(), download_id, ACTIVE),
        )
        return cur.rowcount == 1

    def finish_download(
        self, download_id: int, status: JobStatus, error: Said | None = None, now: float | None = None
    ) -> bool:
        """End a running download as `status`; False if it had ended already."""
        written = said({"error_message": error})
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE model_downloads SET status = ?, error_message = ?, error_detail = ?, finished_at = ?"
                " WHERE id = ? AND status = ?",
                (
                    status.value,
                    written["error_message"],
                    written["error_detail"],
                    now or self.clock(),
                    download_id,
                    ACTIVE,
                ),  # fmt: skip
            )
            return cur.rowcount == 1

    def request_download_stop(self, download_id: int, now: float | None = None) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE model_downloads SET stop_requested_at = ? WHERE id = ? AND stop_requested_at IS NULL",
                (now or self.clock(), download_id),
            )


def row_to_download(row: Any) -> Download:
    data = dict(row)
    return Download(
        id=data["id"],
        model=data["model"],
        repo_id=data["repo_id"],
        status=JobStatus.parse(data["status"]),
        runner=Runner(data["runner"]),
        bytes_done=data["bytes_done"] or 0,
        bytes_total=data["bytes_total"],
        error=data["error_message"],
        error_detail=Message.from_json(data.get("error_detail")),
        process_id=data["process_id"],
        process_create_time=data["process_create_time"],
        log_file_path=data["log_file_path"],
        last_heartbeat=data["last_heartbeat"],
        created_at=data["created_at"],
        started_at=data["started_at"],
        finished_at=data["finished_at"],
        stop_requested_at=data["stop_requested_at"],
        started_bytes=data["started_bytes"] or 0,
        phase=data.get("phase") or PHASE_DOWNLOADING,
        steps_done=data.get("steps_done") or 0,
        steps_total=data.get("steps_total"),
        memory_mb=data.get("memory_mb"),
    )
