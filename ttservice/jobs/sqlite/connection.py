"""SQLite connections: the PRAGMAs, `BEGIN IMMEDIATE`, and lock waits retried in Python.

The only module that calls `sqlite3.connect`. WAL lets the web app and the CLI
read while workers write; every write runs in a `BEGIN IMMEDIATE` transaction so
that a writer takes the lock up front instead of failing half-way. A lock held
too long is retried with backoff before a user ever sees "database is locked".
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...exceptions import StoreError, StoreUnavailable

BUSY_TIMEOUT_MS = 5_000  # schema and backup work waits in SQLite's own busy handler this long
LOCK_RETRY_SECONDS = 60.0  # give up on a locked database only after this long
# Everyday statements wait for the lock in Python instead: SQLite's busy handler sleeps
# 1 ms, then 2, 5, 10 ms..., so one brief collision between heartbeats cost more than 1 ms.
FIRST_RETRY_SECONDS = 0.0001
LAST_RETRY_SECONDS = 0.05


def connect(path: Path) -> sqlite3.Connection:
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


def is_locked(error: sqlite3.Error) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def is_out_of_reach(error: BaseException) -> bool:
    """The file cannot be opened or written at all (gone, unmounted, made read-only)."""
    text = str(error).lower()
    return "unable to open" in text or "readonly database" in text


def is_disk_full(error: BaseException) -> bool:
    text = str(error).lower()
    return "disk is full" in text or "disk i/o" in text or "no space left" in text


def user_error(error: sqlite3.Error) -> StoreError:
    if is_disk_full(error):
        return StoreUnavailable("store.disk_full")
    if is_locked(error):
        return StoreUnavailable("store.locked")
    if is_out_of_reach(error):
        return StoreUnavailable("store.unusable", error=str(error))
    return StoreError("store.unusable", error=str(error))


class Database:
    """One connection per thread to one SQLite file, and the ways statements run on it.

    `on_disk_full` is called with the user's error whenever a statement fails for lack
    of space, before that error is raised.
    """

    def __init__(self, path: Path, on_disk_full: Callable[[StoreError], None]) -> None:
        self.path = Path(path)
        self._on_disk_full = on_disk_full
        self._local = threading.local()
        try:
            with self.waiting_connection() as conn:
                conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as error:
            raise self.error(error) from None

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection; its statements go through `execute` or a transaction."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:  # set up waiting in SQLite (another process may hold a lock for a moment), then not
                conn = connect(self.path)
                conn.execute("PRAGMA busy_timeout = 0")
            except sqlite3.Error as error:
                raise self.error(error) from None
            self._local.conn = conn
        return conn

    @contextmanager
    def waiting_connection(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own that waits for locks in SQLite, for schema and backup work."""
        conn = connect(self.path)
        try:
            yield conn
        finally:
            conn.close()

    def error(self, error: sqlite3.Error) -> StoreError:
        """The user's sentence for an SQLite error (and the disk-full hook, where it is that)."""
        readable = user_error(error)
        if is_disk_full(error):
            self._on_disk_full(readable)
        return readable

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE, retried with jittered backoff while another writer holds the lock."""
        conn = self._conn()
        self._retrying(conn, "BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as error:
            if conn.in_transaction:  # SQLite may already have rolled back (disk full)
                conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise self.error(error) from None
            raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """One statement in its own implicit transaction, waiting for the lock like a transaction.

        A single statement cannot deadlock, so waiting for the lock is safe, and it
        saves the BEGIN/COMMIT round trips (a heartbeat is one).
        """
        return self._retrying(self._conn(), sql, params)

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        cur = self.execute(sql, params)
        try:
            return cur.fetchall()
        except sqlite3.Error as error:
            raise self.error(error) from None

    def _retrying(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                return conn.execute(sql, params)
            except sqlite3.OperationalError as error:
                if not is_locked(error) or time.monotonic() > deadline:
                    raise self.error(error) from None
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, LAST_RETRY_SECONDS)
            except sqlite3.Error as error:
                raise self.error(error) from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
