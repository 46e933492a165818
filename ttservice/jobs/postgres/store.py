"""`PostgresStore`: the Store interface over a PostgreSQL database, for several machines.

Chosen with `TTSERVICE_DATABASE_URL=postgresql://...`. The queries are the SQLite
store's (`jobs.sql`); what is PostgreSQL's own is here: claims that lock the job
row (`FOR UPDATE SKIP LOCKED`) and count the running jobs under an advisory lock,
the trigram search (`search`), LISTEN/NOTIFY for the queue and the change mark
(`listen`), the database's clock, and a schema of its own versions (`schema`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from ...exceptions import StoreError
from ..record import HostId
from ..sql import Downloads, Hosts, JobQueries, Lifecycle, Media, SegmentEdits
from ..sql.base import Connection
from . import schema
from .connection import Database
from .listen import ChangeCounter, QueueListener
from .search import search_clause
from .sweeper import HOLDER_SQL, SWEEP_LOCK, SweeperLock, machine_of

TASK, TASK_LOCK = "ttservice.run_job", "ttservice-job-"  # the engine's task for a job, and its lock + id
TASK_WORKER_GONE = 60.0  # s: an engine worker silent this long is gone (it beats every 10 s)
CLAIM_LOCK = 0x7454_5302  # pg_advisory_xact_lock key: claims count the running jobs one at a time


class PostgresStore(JobQueries, Lifecycle, Downloads, Hosts, Media, SegmentEdits):
    """Jobs and segments in `transcription_jobs` / `transcription_segments` on a PostgreSQL server."""

    QUEUED_WAIT_SQL = "avg(started_at - created_at)"
    DAY_SQL = "to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def __init__(self, url: str, migrate: bool = True) -> None:
        self.url = url
        self.migration_backups: list[Path] = []  # the server's own tools back it up (pg_dump)
        self.disk_full: StoreError | None = None
        self.db = Database(url, self._disk_is_full)
        if migrate:
            self.migrate()
        else:
            self.db.connect().close()  # an unreachable server is said at once, not at the first query
        self.db.open()
        self._changes: ChangeCounter | None = None
        self._sweeper: SweeperLock | None = None

    def _disk_is_full(self, error: StoreError) -> None:
        self.disk_full = error

    def close(self) -> None:
        if self._changes is not None:
            self._changes.close()
        if self._sweeper is not None:
            self._sweeper.close()
        self.db.close()

    # --- what PostgreSQL does its own way ------------------------------------

    def clock(self) -> float:
        return self.db.clock()

    def _search(self, text: str) -> tuple[str, list[Any], bool]:
        return search_clause(text)

    def claim(
        self, job_id: int, max_concurrent: int, now: float | None = None, host: HostId | None = None
    ) -> int | None:
        now = now or self.clock()
        with self.db.transaction() as conn:
            mine = conn.execute(  # a job another claimer holds at this moment is theirs
                "SELECT id FROM transcription_jobs WHERE id = ? AND status = 'queued' FOR UPDATE SKIP LOCKED",
                (job_id,),
            ).fetchone()
            if mine is None:
                return None
            conn.execute("SELECT pg_advisory_xact_lock(?)", (CLAIM_LOCK,))  # the count is everyone's
            return self._claim_in(conn, job_id, max_concurrent, now, host)

    def _lost_run(self, conn: Connection, job_id: int) -> None:
        # The silent machine's task will never finish its run: it failed, which frees the job's
        # lock for the next attempt's task (queued by the trigger in this same transaction).
        conn.execute(
            "SELECT procrastinate_finish_job_v1(id, 'failed', false) FROM procrastinate_jobs"
            " WHERE lock = ? AND status = 'doing'",
            (f"{TASK_LOCK}{job_id}",),
        )

    def is_sweeper(self, name: str | None) -> bool:
        """Whoever holds the sweeper's advisory lock (`sweeper`), taken when it is free; a manager
        that is not one of the machines (`name` None: a command) is never the sweeper here."""
        if name is None:
            return False
        if self._sweeper is None:
            self._sweeper = SweeperLock(self.db, name)
        return self._sweeper.held()

    def sweeper(self) -> str | None:
        rows = self.db.read(HOLDER_SQL, (SWEEP_LOCK,))
        return machine_of(rows[0]["name"]) if rows else None

    def ensure_tasks(self) -> int:
        """The periodic look behind the trigger that gives each queued service job its task.

        A running task whose engine worker is gone (its agent died, or lost the database and
        started a new worker) has failed: it is finished, so that it no longer holds its job's
        lock. Then every queued service job with no task waiting or running gets one (its task
        ended without running it: its agent stopped). Returns how many were given.
        """
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "SELECT procrastinate_finish_job_v1(p.id, 'failed', false) FROM procrastinate_jobs p"
                    " LEFT JOIN procrastinate_workers w ON w.id = p.worker_id"
                    " WHERE p.status = 'doing' AND p.task_name = ?"
                    " AND (w.id IS NULL OR w.last_heartbeat < now() - make_interval(secs => ?))",
                    (TASK, TASK_WORKER_GONE),
                )
                cur = conn.execute(
                    "SELECT count(*) FILTER (WHERE ttservice_give_task(j.id)) FROM transcription_jobs j"
                    " WHERE j.status = 'queued' AND j.runner IN ('service', 'api') AND NOT EXISTS ("
                    "SELECT 1 FROM procrastinate_jobs p WHERE p.lock = ?::text || j.id"
                    " AND p.status IN ('todo', 'doing'))",
                    (TASK_LOCK,),
                )
                return cur.fetchone()[0]
        except StoreError:
            return 0  # a task was given meanwhile (its queueing lock), or the database is away

    def listen_for_queued(self) -> QueueListener | None:
        try:
            return QueueListener(self.db)
        except StoreError:  # the service's periodic look still finds queued jobs
            return None

    def change_mark(self) -> tuple[int, int]:
        """Commits announced by the tables' triggers, counted by a listening thread: no query."""
        if self._changes is None:
            self._changes = ChangeCounter(self.db)
        return self._changes.mark()

    def ensure_reserve(self) -> bool:
        """No ballast to keep: the database's disk is the server's to manage."""
        return True

    def release_reserve(self) -> None:
        pass

    def answers(self, within: float) -> bool:
        return self.db.answers(within)

    def writable(self) -> bool:
        try:
            row = self.db.read(
                "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off' AS ok"
            )[0]
        except StoreError:
            return False
        return bool(row["ok"])

    # --- schema -------------------------------------------------------------

    def migrate(self) -> list[Path]:
        conn = self.db.connect()
        try:
            schema.migrate(conn)
        except psycopg.Error as error:
            raise self.db.error(error) from None
        finally:
            conn.close()
        return []

    def schema_version(self) -> int:
        conn = self.db.connect()
        try:
            return schema.current_version(conn)
        except psycopg.Error as error:
            raise self.db.error(error) from None
        finally:
            conn.close()

    def backup(self, label: str = "manual") -> Path:
        raise StoreError("store.backup_with_pg_dump", where=self.db.where)

    def rollback(self) -> tuple[Path, Path]:
        raise StoreError("store.restore_with_pg_restore", where=self.db.where)
