"""Reads of jobs and segments, job creation and deletion (a part of both stores)."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from ...exceptions import JobNotFound
from ...messages import Message, Said
from ..record import (
    CALLBACK_PENDING,
    FINISHED,
    LEGACY_STATUSES,
    SERVICE_RUNNERS,
    Job,
    JobStatus,
    Runner,
    Segment,
    TranscribeOptions,
)
from .base import SQLStore, said

COMPLETED_NAMES = [JobStatus.COMPLETED.value] + [
    name for name, status in LEGACY_STATUSES.items() if status is JobStatus.COMPLETED
]
# `end` is quoted wherever it is read or written: a reserved word of SQL (PostgreSQL's too).
RESUME_POINT_SQL = 'SELECT coalesce(max("end"), 0) FROM transcription_segments WHERE job_id = ?'


SEGMENTS_SQL = (
    'SELECT id, start, "end", text, words_json, tokens_json, window_start, timed,'
    " coalesce((SELECT name FROM speaker_names n WHERE n.job_id = s.job_id AND n.label = s.speaker),"
    " speaker) AS speaker, original IS NOT NULL AS edited FROM transcription_segments s WHERE job_id = ?"
)


def _segment(r: Any) -> Segment:
    return Segment(
        r["start"],
        r["end"],
        r["text"],
        json.loads(r["words_json"]) if r["words_json"] else None,
        json.loads(r["tokens_json"]) if r["tokens_json"] is not None else None,
        r["window_start"],
        bool(r["timed"]),
        r["id"],
        r["speaker"],
        bool(r["edited"]),
    )


class JobQueries(SQLStore):
    def create_job(
        self,
        filename: str,
        media_path: str | None,
        options: TranscribeOptions,
        runner: Runner = Runner.SERVICE,
        now: float | None = None,
        refused: Said | None = None,
        callback_url: str | None = None,
    ) -> int:
        now = now or self.clock()
        values: dict[str, Any] = {
            "original_filename": filename,
            "media_path": media_path,
            "status": (JobStatus.FAILED if refused else JobStatus.QUEUED).value,
            "model": options.model,
            "language": options.language,
            "options_json": options.to_json(),
            "runner": runner.value,
            "created_at": now,
        }
        if callback_url:
            values.update(callback_url=callback_url, callback_status=CALLBACK_PENDING)
        if refused:  # a submission refused at once: on record, never started
            values.update(said({"error_message": refused}), exit_code=2, finished_at=now)
        for name, kind in self._legacy_required.items():
            mirror = {"filename": filename, "file_path": media_path}.get(name)
            values[name] = mirror if mirror is not None else (0 if "INT" in kind else "")
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self.db.transaction() as conn:
            row = conn.execute(
                f"INSERT INTO transcription_jobs ({cols}) VALUES ({marks}) RETURNING id",
                list(values.values()),
            ).fetchone()
            job_id = int(row[0])
        if runner in SERVICE_RUNNERS and not refused:
            self._ring_queued()
        return job_id

    def get_job(self, job_id: int) -> Job:
        rows = self.db.read("SELECT * FROM transcription_jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobNotFound(job_id)
        return row_to_job(rows[0])

    def _filters(self, status: JobStatus | None, search: str | None) -> tuple[str, list[Any], bool]:
        """The WHERE clause and its values, and whether a search goes through the trigram index."""
        clauses, params = [], []
        if status:
            clauses.append("status = ?")
            params.append(status.value)
        found, terms, indexed = self._search(search or "")
        if found:  # no words (blank, or only control characters): no filter
            clauses.append(found)
            params += terms
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params, indexed

    def _count(self, where: str, params: list[Any]) -> int:
        return self.db.read(f"SELECT count(*) FROM transcription_jobs {where}", params)[0][0]

    def _page(self, where: str, params: list[Any], limit: int, offset: int) -> list[Job]:
        rows = self.db.read(
            f"SELECT * FROM transcription_jobs {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [row_to_job(r) for r in rows]

    def list_jobs(
        self,
        status: JobStatus | None = None,
        limit: int = 50,
        offset: int = 0,
        search: str | None = None,
    ) -> list[Job]:
        where, params, _ = self._filters(status, search)
        return self._page(where, params, limit, offset)

    def page_of_jobs(
        self, status: JobStatus | None = None, search: str | None = None, limit: int = 20, offset: int = 0
    ) -> tuple[int, list[Job]]:
        """How many jobs match, and one page of them, newest first: a search is evaluated once."""
        where, params, indexed = self._filters(status, search)
        if not indexed:
            # No search, or short words only: the page stops at its 20th job, the count is cheap
            # or a scan either way, so two queries beat one.
            return self._count(where, params), self._page(where, params, limit, offset)
        rows = self.db.read(
            f"WITH hits AS MATERIALIZED (SELECT id FROM transcription_jobs {where})"
            " SELECT (SELECT count(*) FROM hits) AS matching, j.* FROM transcription_jobs j"
            " WHERE j.id IN (SELECT id FROM hits) ORDER BY j.id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        if not rows:  # past the last page: the count still counts
            return (self._count(where, params) if offset else 0), []
        return rows[0]["matching"], [row_to_job(r) for r in rows]

    def active_jobs(self) -> list[Job]:
        rows = self.db.read(
            "SELECT * FROM transcription_jobs WHERE status = ? ORDER BY last_heartbeat",
            (JobStatus.PROCESSING.value,),
        )
        return [row_to_job(r) for r in rows]

    def queued_jobs(self, runners: Collection[Runner], limit: int = 100) -> list[int]:
        marks = ", ".join("?" for _ in runners)
        rows = self.db.read(
            f"SELECT id FROM transcription_jobs WHERE status = ? AND runner IN ({marks}) ORDER BY id LIMIT ?",
            (JobStatus.QUEUED.value, *(r.value for r in runners), limit),
        )
        return [r["id"] for r in rows]

    def due_callbacks(self, limit: int = 100) -> list[Job]:
        marks = ", ".join("?" for _ in FINISHED)
        rows = self.db.read(
            f"SELECT * FROM transcription_jobs WHERE callback_status = ? AND status IN ({marks})"
            " ORDER BY finished_at LIMIT ?",
            (CALLBACK_PENDING, *(s.value for s in FINISHED), limit),
        )
        return [row_to_job(r) for r in rows]

    def record_callback(self, job_id: int, status: str, attempts: int) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET callback_status = ?, callback_attempts = ? WHERE id = ?",
                (status, attempts, job_id),
            )

    def unfinished_uploads(self, older_than: float) -> list[int]:
        rows = self.db.read(
            "SELECT id FROM transcription_jobs WHERE status = ? AND runner = ? AND created_at < ?",
            (JobStatus.QUEUED.value, Runner.UPLOAD.value, older_than),
        )
        return [r["id"] for r in rows]

    def lapsed_leases(self, lapse: float, now: float | None = None) -> list[int]:
        rows = self.db.read(
            "SELECT id FROM transcription_jobs WHERE status IN (?, ?)"
            " AND lease_renewed_at IS NOT NULL AND lease_renewed_at < ?",
            (JobStatus.QUEUED.value, JobStatus.PROCESSING.value, (now or self.clock()) - lapse),
        )
        return [r["id"] for r in rows]

    def segments(self, job_id: int, after: Segment | None = None) -> list[Segment]:
        if after is None or after.id is None:
            rows = self.db.read(f"{SEGMENTS_SQL} ORDER BY start, id", (job_id,))
        else:  # by the (start, id) order's key: a follower reads each segment once
            rows = self.db.read(
                f"{SEGMENTS_SQL} AND (start > ? OR (start = ? AND id > ?)) ORDER BY start, id",
                (job_id, after.start, after.start, after.id),
            )
        return [_segment(r) for r in rows]

    def latest_segments(self, job_id: int, count: int) -> list[Segment]:
        rows = self.db.read(f"{SEGMENTS_SQL} ORDER BY start DESC, id DESC LIMIT ?", (job_id, count))
        return [_segment(r) for r in reversed(rows)]

    def resume_point(self, job_id: int) -> float:
        return self.db.read(RESUME_POINT_SQL, (job_id,))[0][0]

    def stats(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}  # the earlier app's statuses ('pending', ...) counted as ours
        for r in self.db.read("SELECT status, count(*) AS n FROM transcription_jobs GROUP BY status"):
            status = JobStatus.parse(r["status"]).value
            by_status[status] = by_status.get(status, 0) + r["n"]
        # The earlier app's jobs count in the audio and by day; their created_at is text and
        # they have no started_at, so the mean times are this TTService's jobs' only.
        done = self.db.read(
            "SELECT coalesce(sum(media_duration), 0) AS audio, count(*) AS n,"
            f" {self.QUEUED_WAIT_SQL} AS queued,"
            " avg(finished_at - started_at) AS running"
            f" FROM transcription_jobs WHERE status IN ({', '.join('?' * len(COMPLETED_NAMES))})",
            COMPLETED_NAMES,
        )[0]
        daily = self.db.read(
            f"SELECT day, status, count(*) AS n FROM (SELECT {self.DAY_SQL} AS day, status"
            " FROM transcription_jobs) AS days WHERE day IS NOT NULL GROUP BY day, status ORDER BY day"
        )
        return {
            "by_status": by_status,
            "audio_hours": done["audio"] / 3600,
            "mean_queued_s": done["queued"],
            "mean_running_s": done["running"],
            "speed_by_model": self.speed_by_model(),
            "daily": [dict(r) for r in daily],
        }

    def speed_by_model(self) -> list[dict[str, Any]]:
        rows = self.db.read(
            "SELECT model, avg(processed_seconds / (finished_at - started_at)) AS speed, count(*) AS n,"
            " max(peak_memory_mb) AS peak_memory_mb"
            " FROM transcription_jobs WHERE status = ? AND finished_at > started_at"
            " AND processed_seconds > 0 GROUP BY model ORDER BY model",
            (JobStatus.COMPLETED.value,),
        )
        return [dict(r) for r in rows]

    def jobs_naming(self, media_path: str) -> int:
        rows = self.db.read("SELECT count(*) FROM transcription_jobs WHERE media_path = ?", (media_path,))
        return rows[0][0]

    def delete_job(self, job_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM transcription_segments WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM job_log_chunks WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM transcription_jobs WHERE id = ?", (job_id,))


def row_to_job(row: Any) -> Job:
    """Build a Job from a row, tolerating the NULLs and extra columns of the earlier app."""
    data = dict(row)
    return Job(
        id=data["id"],
        status=JobStatus.parse(data.get("status")),
        filename=data.get("original_filename") or data.get("filename"),
        media_path=data.get("media_path") or data.get("file_path"),
        options=TranscribeOptions.from_json(data.get("options_json"))
        if data.get("options_json")
        else TranscribeOptions(model=data.get("model") or "", language=data.get("language")),
        runner=Runner(data.get("runner") or Runner.SERVICE.value),
        created_at=data.get("created_at"),
        started_at=data.get("started_at"),
        finished_at=data.get("finished_at"),
        duration=data.get("media_duration"),
        progress=data.get("progress") or 0.0,
        processed_seconds=data.get("processed_seconds") or 0.0,
        error=data.get("error_message"),
        error_detail=Message.from_json(data.get("error_detail")),
        exit_code=data.get("exit_code"),
        process_id=data.get("process_id"),
        process_create_time=data.get("process_create_time"),
        log_file_path=data.get("log_file_path"),
        last_heartbeat=data.get("last_heartbeat"),
        last_progress_at=data.get("last_progress_at"),
        stop_requested_at=data.get("stop_requested_at"),
        stop_reason=data.get("stop_reason"),
        stop_detail=Message.from_json(data.get("stop_detail")),
        detected_language=data.get("detected_language"),
        language_probability=data.get("language_probability"),
        lease_renewed_at=data.get("lease_renewed_at"),
        resumed_from=data.get("resumed_from") or 0.0,
        callback_url=data.get("callback_url"),
        callback_status=data.get("callback_status"),
        callback_attempts=data.get("callback_attempts") or 0,
        host=data.get("host"),
        host_boot_id=data.get("host_boot_id"),
        attempt=data.get("attempt") or 0,
        peak_memory_mb=data.get("peak_memory_mb"),
        engine=data.get("engine"),
        warnings=[Message.from_dict(w) for w in json.loads(data.get("warnings") or "[]")],
    )
