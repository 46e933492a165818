"""The only owner of the database: connections, transactions and every query.

SQLite in WAL mode lets the web app and the CLI read while workers write; every
write runs in a `BEGIN IMMEDIATE` transaction so that a writer takes the lock up
front instead of failing half-way. A lock held too long is retried with backoff
before a user ever sees "database is locked".
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import migrations
from .exceptions import JobNotFound, StoreError
from .jobs import (
    FINISHED,
    RESUMABLE,
    TRANSITIONS,
    Job,
    JobStatus,
    Runner,
    Segment,
    TranscribeOptions,
)
from .waiting import drain

BUSY_TIMEOUT_MS = 5_000  # schema and backup work waits in SQLite's own busy handler this long
LOCK_RETRY_SECONDS = 60.0  # give up on a locked database only after this long
# Everyday statements wait for the lock in Python instead: SQLite's busy handler sleeps
# 1 ms, then 2, 5, 10 ms..., so one brief collision between heartbeats cost more than 1 ms.
FIRST_RETRY_SECONDS = 0.0001
LAST_RETRY_SECONDS = 0.05
# Ballast kept beside the database and deleted when the disk fills, so that the
# write recording *why* a job failed still finds room.
RESERVE_BYTES = 2 * 2**20
RESERVE_NAME = ".disk-reserve"
RESUME_POINT_SQL = "SELECT coalesce(max(end), 0) FROM transcription_segments WHERE job_id = ?"
BELL_SUFFIX = ".queued"  # transcriptor.db.queued: the FIFO rung when a job is queued for the service


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    # WAL with NORMAL: a commit survives any crash of a process; only a power cut may undo the
    # last moments (never corrupting the file). FULL would fsync every heartbeat.
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _is_locked(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def _is_disk_full(error: BaseException) -> bool:
    text = str(error).lower()
    return "disk is full" in text or "disk i/o" in text or "no space left" in text


def _user_error(error: sqlite3.Error) -> StoreError:
    if _is_disk_full(error):
        return StoreError("The disk is full, so the database could not be written; free some space.")
    if _is_locked(error):  # type: ignore[arg-type]
        return StoreError("The database stayed locked by another program; try again in a moment.")
    return StoreError(f"The database could not be used: {error}.")


class Store:
    """Jobs and segments in `transcription_jobs` / `transcription_segments`."""

    def __init__(self, db_path: Path, backup_dir: Path | None = None, migrate: bool = True):
        self.db_path = Path(db_path)
        self.backup_dir = backup_dir or self.db_path.parent / "backups"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.migration_backups: list[Path] = []
        self.disk_full: StoreError | None = None
        try:
            with self._waiting_connection() as conn:
                conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as error:
            raise self._error(error) from None
        if migrate:
            self.migrate()
        self._legacy_required = self._legacy_required_columns()
        self.ensure_reserve()

    @classmethod
    def from_settings(cls, settings: Any) -> Store:
        return cls(settings.db_path, settings.backup_dir)

    # --- connections and transactions -------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection; its statements go through `_execute_retrying` or a transaction."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:  # set up waiting in SQLite (another process may hold a lock for a moment), then not
                conn = _connect(self.db_path)
                conn.execute("PRAGMA busy_timeout = 0")
            except sqlite3.Error as error:
                raise self._error(error) from None
            self._local.conn = conn
        return conn

    @contextmanager
    def _waiting_connection(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own that waits for locks in SQLite, for schema and backup work."""
        conn = _connect(self.db_path)
        try:
            yield conn
        finally:
            conn.close()

    def _error(self, error: sqlite3.Error) -> StoreError:
        user_error = _user_error(error)
        if _is_disk_full(error):
            self.disk_full = user_error  # a worker fails its job on this, whichever thread hit it
            self.release_reserve()
        return user_error

    @property
    def reserve_path(self) -> Path:
        return self.db_path.parent / RESERVE_NAME

    def ensure_reserve(self) -> bool:
        """(Re)create the ballast file when there is room for it and more; True if it is there."""
        path = self.reserve_path
        if path.exists():
            return True
        try:
            if shutil.disk_usage(path.parent).free < 4 * RESERVE_BYTES:
                return False
            with open(path, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
        except OSError:
            path.unlink(missing_ok=True)
            return False
        return True

    def release_reserve(self) -> None:
        """Free the ballast: the disk is full and the next write says why a job stopped."""
        self.reserve_path.unlink(missing_ok=True)

    @property
    def _bell_path(self) -> Path:
        return self.db_path.with_name(self.db_path.name + BELL_SUFFIX)

    def _ring_queued(self) -> None:
        """Wake the service that listens (`listen_for_queued`): a job waits for it. Never blocks."""
        try:
            fd = os.open(self._bell_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:  # no FIFO, or nobody listening (ENXIO)
            return
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.write(fd, b"!")
        except OSError:  # the FIFO is full: it has been rung already
            pass
        finally:
            os.close(fd)

    def listen_for_queued(self) -> QueueBell | None:
        """A descriptor that becomes readable when another process queues a service job
        (what LISTEN/NOTIFY would be on a database server); None where FIFOs are missing."""
        try:
            return QueueBell(self._bell_path)
        except OSError:
            return None

    def change_mark(self) -> tuple:
        """Changes whenever any process commits (the WAL is written): a check without a query."""
        marks = []
        for path in (self.db_path, self.db_path.with_name(self.db_path.name + "-wal")):
            try:
                st = path.stat()
            except OSError:
                marks.append(None)
                continue
            marks.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(marks)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE, retried with jittered backoff while another writer holds the lock."""
        conn = self._conn()
        self._execute_retrying(conn, "BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as error:
            if conn.in_transaction:  # SQLite may already have rolled back (disk full)
                conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise self._error(error) from None
            raise

    def _execute_retrying(
        self, conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()
    ) -> sqlite3.Cursor:
        """Execute, retried with jittered backoff while another writer holds the lock."""
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                return conn.execute(sql, params)
            except sqlite3.OperationalError as error:
                if not _is_locked(error) or time.monotonic() > deadline:
                    raise self._error(error) from None
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, LAST_RETRY_SECONDS)
            except sqlite3.Error as error:
                raise self._error(error) from None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        cur = self._execute_retrying(self._conn(), sql, params)
        try:
            return cur.fetchall()
        except sqlite3.Error as error:
            raise self._error(error) from None

    # --- schema -----------------------------------------------------------

    def migrate(self) -> list[Path]:
        try:
            with self._waiting_connection() as conn:
                backups = migrations.migrate(conn, _connect, self.db_path, self.backup_dir)
        except sqlite3.Error as error:
            raise _user_error(error) from None
        self.migration_backups = backups
        return backups

    def schema_version(self) -> int:
        with self._waiting_connection() as conn:
            return migrations.current_version(conn)

    def backup(self, label: str = "manual") -> Path:
        dest = migrations.timestamped(self.backup_dir, label)
        with self._waiting_connection() as conn:
            return migrations.backup_to(conn, _connect, dest)

    def rollback(self) -> tuple[Path, Path]:
        """Restore the newest pre-migration backup; the current file is backed up first."""
        source = migrations.newest_pre_migration_backup(self.backup_dir)
        if source is None:
            raise StoreError(f"There is no pre-migration backup in {self.backup_dir}.")
        saved = self.backup("pre-rollback")
        src = _connect(source)
        try:
            with self._waiting_connection() as conn:
                src.backup(conn)
        finally:
            src.close()
        return source, saved

    def _legacy_required_columns(self) -> dict[str, str]:
        """NOT NULL columns without a default that only the earlier app knew how to fill."""
        ours = set(migrations.JOB_COLUMNS) | {"id"}
        required = {}
        for row in self._read("PRAGMA table_info(transcription_jobs)"):
            name, kind, notnull, default = row[1], (row[2] or "").upper(), row[3], row[4]
            if notnull and default is None and name not in ours:
                required[name] = kind
        return required

    # --- jobs ---------------------------------------------------------------

    def create_job(
        self,
        filename: str,
        media_path: str | None,
        options: TranscribeOptions,
        runner: Runner = Runner.SERVICE,
        now: float | None = None,
    ) -> int:
        values: dict[str, Any] = {
            "original_filename": filename,
            "media_path": media_path,
            "status": JobStatus.QUEUED.value,
            "model": options.model,
            "language": options.language,
            "options_json": options.to_json(),
            "runner": runner.value,
            "created_at": now or time.time(),
        }
        for name, kind in self._legacy_required.items():
            mirror = {"filename": filename, "file_path": media_path}.get(name)
            values[name] = mirror if mirror is not None else (0 if "INT" in kind else "")
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self.transaction() as conn:
            cur = conn.execute(
                f"INSERT INTO transcription_jobs ({cols}) VALUES ({marks})", list(values.values())
            )
            job_id = int(cur.lastrowid)
        if runner is Runner.SERVICE:
            self._ring_queued()
        return job_id

    def get_job(self, job_id: int) -> Job:
        rows = self._read("SELECT * FROM transcription_jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobNotFound(job_id)
        return _row_to_job(rows[0])

    @staticmethod
    def _filters(status: JobStatus | None, search: str | None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if status:
            clauses.append("status = ?")
            params.append(status.value)
        if search and search.strip():
            clauses.append(
                "id IN (SELECT s.job_id FROM segments_fts f JOIN transcription_segments s"
                " ON s.id = f.rowid WHERE segments_fts MATCH ?)"
            )
            params.append(_fts_query(search))
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def list_jobs(
        self,
        status: JobStatus | None = None,
        limit: int = 50,
        offset: int = 0,
        search: str | None = None,
    ) -> list[Job]:
        """Newest first; `search` is full-text over transcripts."""
        where, params = self._filters(status, search)
        rows = self._read(
            f"SELECT * FROM transcription_jobs {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_row_to_job(r) for r in rows]

    def count_jobs(self, status: JobStatus | None = None, search: str | None = None) -> int:
        where, params = self._filters(status, search)
        return self._read(f"SELECT count(*) FROM transcription_jobs {where}", params)[0][0]

    def active_jobs(self) -> list[Job]:
        """Jobs a process may be running for (status `processing`)."""
        rows = self._read(
            "SELECT * FROM transcription_jobs WHERE status = ? ORDER BY last_heartbeat",
            (JobStatus.PROCESSING.value,),
        )
        return [_row_to_job(r) for r in rows]

    def stale_jobs(self, older_than: float) -> list[Job]:
        """Processing jobs whose last heartbeat is older than `older_than` (or missing)."""
        rows = self._read(
            "SELECT * FROM transcription_jobs WHERE status = ?"
            " AND (last_heartbeat IS NULL OR last_heartbeat < ?)",
            (JobStatus.PROCESSING.value, older_than),
        )
        return [_row_to_job(r) for r in rows]

    def next_queued(self, runner: Runner) -> int | None:
        rows = self._read(
            "SELECT id FROM transcription_jobs WHERE status = ? AND runner = ? ORDER BY id LIMIT 1",
            (JobStatus.QUEUED.value, runner.value),
        )
        return rows[0]["id"] if rows else None

    def claim(self, job_id: int, max_concurrent: int, now: float | None = None) -> bool:
        """Move a queued job to processing if fewer than `max_concurrent` jobs run."""
        now = now or time.time()
        with self.transaction() as conn:
            running = conn.execute(
                "SELECT count(*) FROM transcription_jobs WHERE status = ?",
                (JobStatus.PROCESSING.value,),
            ).fetchone()[0]
            if running >= max_concurrent:
                return False
            cur = conn.execute(
                "UPDATE transcription_jobs SET status = ?, started_at = ?, last_heartbeat = ?,"
                " last_progress_at = ?, finished_at = NULL, error_message = NULL,"
                " exit_code = NULL, stop_requested_at = NULL, process_id = NULL,"
                " process_create_time = NULL WHERE id = ? AND status = ?",
                (JobStatus.PROCESSING.value, now, now, now, job_id, JobStatus.QUEUED.value),
            )
            return cur.rowcount == 1

    def transition(self, job_id: int, target: JobStatus, now: float | None = None, **fields: Any) -> bool:
        """Apply a named transition; False if the job is not in a status it may leave."""
        now = now or time.time()
        sources = TRANSITIONS[target]
        values: dict[str, Any] = {"status": target.value, **fields}
        if target in FINISHED:
            values["finished_at"] = now
        assignments = ", ".join(f"{k} = ?" for k in values)
        marks = ", ".join("?" for _ in sources)
        with self.transaction() as conn:
            cur = conn.execute(
                f"UPDATE transcription_jobs SET {assignments} WHERE id = ? AND status IN ({marks})",
                [*values.values(), job_id, *(s.value for s in sources)],
            )
            return cur.rowcount == 1

    def register_process(
        self, job_id: int, pid: int | None, create_time: float | None, log_path: str | None
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET process_id = ?, process_create_time = ?,"
                " log_file_path = ? WHERE id = ?",
                (pid, create_time, log_path, job_id),
            )

    def heartbeat(self, job_id: int, now: float | None = None) -> bool:
        """Record that the job's process is alive; False once the job has finished.

        One statement in its own implicit transaction, without BEGIN/COMMIT round
        trips: a single statement cannot deadlock, so waiting for the lock is safe.
        """
        cur = self._execute_retrying(
            self._conn(),
            "UPDATE transcription_jobs SET last_heartbeat = ? WHERE id = ? AND status = ?",
            (now or time.time(), job_id, JobStatus.PROCESSING.value),
        )
        return cur.rowcount == 1

    def set_media_info(self, job_id: int, duration: float, language: str | None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET media_duration = ?, detected_language = ?"
                " WHERE id = ? AND status = ?",
                (duration, language, job_id, JobStatus.PROCESSING.value),
            )

    def add_segments(
        self,
        job_id: int,
        segments: Sequence[Segment],
        processed_seconds: float,
        progress: float,
        now: float | None = None,
    ) -> bool:
        """Commit segments and progress together; refused once the job has finished."""
        now = now or time.time()
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE transcription_jobs SET processed_seconds = ?, progress = ?,"
                " last_progress_at = ?, last_heartbeat = ? WHERE id = ? AND status = ?",
                (processed_seconds, progress, now, now, job_id, JobStatus.PROCESSING.value),
            )
            if cur.rowcount != 1:
                return False
            conn.executemany(
                "INSERT INTO transcription_segments"
                " (job_id, start, end, text, words_json, tokens_json, window_start)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        job_id,
                        s.start,
                        s.end,
                        s.text,
                        json.dumps(s.words) if s.words else None,
                        json.dumps(s.tokens) if s.tokens is not None else None,
                        s.window,
                    )
                    for s in segments
                ],
            )
            return True

    def request_stop(self, job_id: int, now: float | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET stop_requested_at = ?"
                " WHERE id = ? AND stop_requested_at IS NULL",
                (now or time.time(), job_id),
            )

    def record_exit(self, job_id: int, exit_code: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET exit_code = ? WHERE id = ? AND exit_code IS NULL",
                (exit_code, job_id),
            )

    def segments(self, job_id: int) -> list[Segment]:
        rows = self._read(
            "SELECT start, end, text, words_json, tokens_json, window_start FROM transcription_segments"
            " WHERE job_id = ? ORDER BY start, id",
            (job_id,),
        )
        return [
            Segment(
                r["start"],
                r["end"],
                r["text"],
                json.loads(r["words_json"]) if r["words_json"] else None,
                json.loads(r["tokens_json"]) if r["tokens_json"] is not None else None,
                r["window_start"],
            )
            for r in rows
        ]

    def resume_point(self, job_id: int) -> float:
        """Where a resumed job continues: the end of its last committed segment (0 if none)."""
        return self._read(RESUME_POINT_SQL, (job_id,))[0][0]

    def requeue_for_resume(self, job_id: int, runner: Runner) -> bool:
        """Queue a stopped, failed or interrupted job again, keeping its segments."""
        marks = ", ".join("?" for _ in RESUMABLE)
        with self.transaction() as conn:
            resume_at = conn.execute(RESUME_POINT_SQL, (job_id,)).fetchone()[0]
            cur = conn.execute(
                "UPDATE transcription_jobs SET status = ?, runner = ?, resumed_from = ?,"
                " processed_seconds = ?, error_message = NULL, exit_code = NULL, finished_at = NULL,"
                f" stop_requested_at = NULL, lease_renewed_at = NULL WHERE id = ? AND status IN ({marks})",
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
        if queued and runner is Runner.SERVICE:
            self._ring_queued()
        return queued

    def hand_upload_to_service(self, job_id: int, media_path: str) -> None:
        """The upload's file is saved: the job is the service's to start from now on."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET media_path = ?, runner = ? WHERE id = ? AND runner = ?",
                (media_path, Runner.SERVICE.value, job_id, Runner.UPLOAD.value),
            )
        self._ring_queued()

    def unfinished_uploads(self, older_than: float) -> list[int]:
        """Queued uploads created before `older_than` whose file was never saved (the app died)."""
        rows = self._read(
            "SELECT id FROM transcription_jobs WHERE status = ? AND runner = ? AND created_at < ?",
            (JobStatus.QUEUED.value, Runner.UPLOAD.value, older_than),
        )
        return [r["id"] for r in rows]

    def renew_lease(self, job_id: int, now: float | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE transcription_jobs SET lease_renewed_at = ? WHERE id = ?",
                (now or time.time(), job_id),
            )

    def lapsed_leases(self, lapse: float, now: float | None = None) -> list[int]:
        """Unfinished jobs whose page stopped renewing its lease more than `lapse` s ago."""
        rows = self._read(
            "SELECT id FROM transcription_jobs WHERE status IN (?, ?)"
            " AND lease_renewed_at IS NOT NULL AND lease_renewed_at < ?",
            (JobStatus.QUEUED.value, JobStatus.PROCESSING.value, (now or time.time()) - lapse),
        )
        return [r["id"] for r in rows]

    def stats(self) -> dict[str, Any]:
        """Figures for the Statistics page, straight from the statuses."""
        by_status = {
            r["status"]: r["n"]
            for r in self._read("SELECT status, count(*) AS n FROM transcription_jobs GROUP BY status")
        }
        done = self._read(
            "SELECT coalesce(sum(media_duration), 0) AS audio, count(*) AS n,"
            " avg(started_at - created_at) AS queued, avg(finished_at - started_at) AS running"
            " FROM transcription_jobs WHERE status = ? AND typeof(created_at) = 'real'",
            (JobStatus.COMPLETED.value,),
        )[0]
        speeds = self._read(
            "SELECT model, avg(processed_seconds / (finished_at - started_at)) AS speed, count(*) AS n"
            " FROM transcription_jobs WHERE status = ? AND finished_at > started_at"
            " AND processed_seconds > 0 GROUP BY model ORDER BY model",
            (JobStatus.COMPLETED.value,),
        )
        daily = self._read(
            "SELECT date(created_at, 'unixepoch') AS day, status, count(*) AS n FROM transcription_jobs"
            " WHERE typeof(created_at) = 'real' GROUP BY day, status ORDER BY day"
        )
        return {
            "by_status": by_status,
            "audio_hours": done["audio"] / 3600,
            "mean_queued_s": done["queued"],
            "mean_running_s": done["running"],
            "speed_by_model": [dict(r) for r in speeds],
            "daily": [dict(r) for r in daily],
        }

    def delete_job(self, job_id: int) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM transcription_segments WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM transcription_jobs WHERE id = ?", (job_id,))


def _fts_query(text: str) -> str:
    """Each word of the user's text as a quoted FTS5 prefix term, so no input is a syntax error."""
    terms = [t.replace('"', '""') for t in text.split()]
    return " ".join(f'"{t}"*' for t in terms)


def _row_to_job(row: sqlite3.Row) -> Job:
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
        exit_code=data.get("exit_code"),
        process_id=data.get("process_id"),
        process_create_time=data.get("process_create_time"),
        log_file_path=data.get("log_file_path"),
        last_heartbeat=data.get("last_heartbeat"),
        last_progress_at=data.get("last_progress_at"),
        stop_requested_at=data.get("stop_requested_at"),
        detected_language=data.get("detected_language"),
        lease_renewed_at=data.get("lease_renewed_at"),
        resumed_from=data.get("resumed_from") or 0.0,
    )


class QueueBell:
    """The listening end of the FIFO beside the database that `Store._ring_queued` writes to."""

    def __init__(self, path: Path) -> None:
        if path.exists() and not stat.S_ISFIFO(path.stat().st_mode):
            path.unlink()
        if not path.exists():
            os.mkfifo(path, 0o600)
        self._read = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        # A writer of our own, so that ringers closing their end never reads as end of file.
        self._keep = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def fileno(self) -> int:
        return self._read

    def drain(self) -> None:
        drain(self._read)

    def close(self) -> None:
        os.close(self._read)
        os.close(self._keep)
