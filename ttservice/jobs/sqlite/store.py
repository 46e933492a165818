"""`SQLiteStore`: the Store interface over one SQLite file in the data directory.

The queries it shares with the PostgreSQL store live in `jobs.sql`; this module
opens the file, migrates it, and holds what is SQLite's alone: the queue FIFO
(`bell`), the disk reserve (`reserve`), the trigram search (`search`), the
change mark read from the file's own metadata, and the local clock.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from ...exceptions import StoreError
from ..sql import Downloads, Hosts, JobQueries, Lifecycle, Media, SegmentEdits
from . import migrations
from .bell import QueueBell, bell_path, ring
from .connection import Database, connect, user_error
from .reserve import DiskReserve
from .search import search_clause


class SQLiteStore(JobQueries, Lifecycle, Downloads, Hosts, Media, SegmentEdits):
    """Jobs and segments in `transcription_jobs` / `transcription_segments`."""

    # The earlier app's rows have a text created_at and no started_at: they count by day only.
    QUEUED_WAIT_SQL = "avg(CASE typeof(created_at) WHEN 'real' THEN started_at - created_at END)"
    DAY_SQL = (
        "CASE typeof(created_at) WHEN 'real' THEN date(created_at, 'unixepoch') ELSE date(created_at) END"
    )

    def __init__(self, db_path: Path, backup_dir: Path | None = None, migrate: bool = True):
        self.db_path = Path(db_path)
        self.backup_dir = backup_dir or self.db_path.parent / "backups"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.migration_backups: list[Path] = []
        self.disk_full: StoreError | None = None
        self._reserve = DiskReserve(self.db_path.parent)
        self.db = Database(self.db_path, self._disk_is_full)
        if migrate:
            self.migrate()
        self._legacy_required = self._legacy_required_columns()
        self.ensure_reserve()

    def _disk_is_full(self, error: StoreError) -> None:
        self.disk_full = error  # a worker fails its job on this, whichever thread hit it
        self.release_reserve()

    def close(self) -> None:
        self.db.close()

    # --- what SQLite has instead of a server's features ---------------------

    def clock(self) -> float:
        """One machine, one clock: every process of it writes and judges by its own."""
        return time.time()

    def _search(self, text: str) -> tuple[str, list[Any], bool]:
        return search_clause(text)

    def answers(self, within: float) -> bool:
        return True  # a file of this machine: a lock held too long is said by the statement itself

    def is_sweeper(self, name: str | None) -> bool:
        return True  # every manager of the one machine may sweep: recoveries are conditional

    def sweeper(self) -> str | None:
        return None

    def ensure_reserve(self) -> bool:
        return self._reserve.ensure()

    def release_reserve(self) -> None:
        self._reserve.release()

    def _ring_queued(self) -> None:
        ring(bell_path(self.db_path))

    def listen_for_queued(self) -> QueueBell | None:
        try:
            return QueueBell(bell_path(self.db_path))
        except OSError:  # no FIFOs here
            return None

    def change_mark(self) -> tuple:
        """The database and WAL files' inode, size and mtime: they change with every commit."""
        marks = []
        for path in (self.db_path, self.db_path.with_name(self.db_path.name + "-wal")):
            try:
                st = path.stat()
            except OSError:
                marks.append(None)
                continue
            marks.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(marks)

    # --- schema -------------------------------------------------------------

    def migrate(self) -> list[Path]:
        try:
            with self.db.waiting_connection() as conn:
                backups = migrations.migrate(conn, connect, self.db_path, self.backup_dir)
        except sqlite3.Error as error:
            raise user_error(error) from None
        self.migration_backups = backups
        return backups

    def writable(self) -> bool:
        """The write lock can be taken now (what every write needs first)."""
        try:
            with self.db.transaction():
                pass
        except StoreError:
            return False
        return True

    def schema_version(self) -> int:
        with self.db.waiting_connection() as conn:
            return migrations.current_version(conn)

    def backup(self, label: str = "manual") -> Path:
        dest = migrations.timestamped(self.backup_dir, label)
        with self.db.waiting_connection() as conn:
            return migrations.backup_to(conn, connect, dest)

    def rollback(self) -> tuple[Path, Path]:
        source = migrations.newest_pre_migration_backup(self.backup_dir)
        if source is None:
            raise StoreError("store.no_backup", folder=str(self.backup_dir))
        saved = self.backup("pre-rollback")
        src = connect(source)
        try:
            with self.db.waiting_connection() as conn:
                src.backup(conn)
        finally:
            src.close()
        return source, saved

    def _legacy_required_columns(self) -> dict[str, str]:
        """NOT NULL columns without a default that only the earlier app knew how to fill."""
        ours = set(migrations.JOB_COLUMNS) | {"id"}
        required = {}
        for row in self.db.read("PRAGMA table_info(transcription_jobs)"):
            name, kind, notnull, default = row[1], (row[2] or "").upper(), row[3], row[4]
            if notnull and default is None and name not in ours:
                required[name] = kind
        return required
