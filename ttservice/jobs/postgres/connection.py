"""PostgreSQL connections: a psycopg pool, the shared queries' `?` turned into `%s`, rows read
by name and by position, errors in one sentence, and the database's clock.

The only module that opens a pooled connection. Each statement or transaction
borrows a connection; one the server closed (a restart closes them all) fails at
its first use, the pool's idle ones are tested together, and the statement, or a
transaction nothing of which was sent, goes again on a new one: a restarted server
costs a reconnect, not an error. While the server is away a borrow waits up to
`POOL_WAIT` seconds before the user is told it cannot be reached. Every connection sends TCP
keepalives (`LIVENESS`): one whose server vanished or was cut off fails within `DEAD_AFTER`
seconds, where a statement would otherwise wait on its socket for the system's retransmission
timeout (about 15 minutes on Linux).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool

from ...exceptions import ConnectionLost, StoreError, StoreUnavailable

CONNECT_TIMEOUT = 5  # seconds to reach the server when a store opens
POOL_WAIT = 30.0  # seconds a statement waits for a connection (a server restarting)
LOCK_TIMEOUT = "60s"  # as long as the SQLite store waits for its write lock
CLOCK_REFRESH = 60.0  # seconds between readings of the database's clock
IDLE, INTERVAL, COUNT = 5, 2, 3  # keepalives: first probe after 5 s of quiet, then 3 probes 2 s apart
DEAD_AFTER = IDLE + INTERVAL * COUNT  # seconds after which a silent connection is given up
LIVENESS = {
    "connect_timeout": CONNECT_TIMEOUT,
    "keepalives": 1,
    "keepalives_idle": IDLE,
    "keepalives_interval": INTERVAL,
    "keepalives_count": COUNT,
    "tcp_user_timeout": DEAD_AFTER * 1000,  # ms: data sent and never acknowledged counts as dead too
}
RESEND_PAUSE = 0.1  # seconds before a statement cut by a lost connection is sent again


class Row(dict):
    """A row read by column name (and `dict(row)`), like `sqlite3.Row`, and by position."""

    __slots__ = ("_values",)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return self._values[key]
        return super().__getitem__(key)


def row_factory(cursor: psycopg.Cursor) -> Callable[[Sequence[Any]], Row]:
    names = [column.name for column in cursor.description or ()]

    def make(values: Sequence[Any]) -> Row:
        row = Row(zip(names, values, strict=True))
        row._values = values
        return row

    return make


@functools.lru_cache(maxsize=512)
def placeholders(sql: str) -> str:
    """The shared queries' `?` as psycopg's `%s`, and a literal `%` as `%%`; quoted text is kept."""
    out, quote = [], None
    for char in sql:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "?":
            char = "%s"
        if char == "%":
            char = "%%"
        out.append(char)
    return "".join(out)


class Result:
    """What a statement returned, read before its connection went back to the pool."""

    def __init__(self, rowcount: int, rows: list[Row]) -> None:
        self.rowcount = rowcount
        self._rows = rows

    def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Row]:
        return self._rows


class Transaction:
    """A borrowed connection inside BEGIN ... COMMIT, speaking the shared queries' SQL."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self._conn.execute(placeholders(sql), list(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> psycopg.Cursor:
        cur = self._conn.cursor()
        cur.executemany(placeholders(sql), rows)
        return cur


def where(url: str) -> str:
    """The server a URL names, for a sentence (never its password)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "the configured PostgreSQL server"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"PostgreSQL at {host}:{port}" + (f"/{info['dbname']}" if info.get("dbname") else "")


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__


class Database:
    """A pool of connections to one PostgreSQL database, and the ways statements run on it.

    `on_disk_full` is called with the user's error whenever the server is out of space.
    """

    def __init__(self, url: str, on_disk_full: Callable[[StoreError], None], max_size: int = 4) -> None:
        self.url = url
        self.where = where(url)
        self._on_disk_full = on_disk_full
        self._clock_lock = threading.Lock()
        self._clock_offset: float | None = None
        self._clock_read_at = 0.0
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "row_factory": row_factory, **LIVENESS},
            configure=self._configure,
            # No check when a connection is lent: after a server restart the pool's check backs off
            # 1, 2, 4 s between the broken connections it finds, 7 s before the first statement.
            # A broken one fails at once instead, and `_lost` clears out the others in one go.
            timeout=POOL_WAIT,
            num_workers=1,
            open=False,
            name="ttservice",
        )

    @staticmethod
    def _configure(conn: psycopg.Connection) -> None:
        conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        # A statement on its own (a heartbeat, a download's progress) is not waited on to reach
        # the disk: a server crash could undo the last fraction of a second of them, which the
        # next one writes again. Every transaction (a claim, a status, segments) is made durable.
        conn.execute("SET synchronous_commit = off")

    def connect(self) -> psycopg.Connection:
        """A connection of its own (not pooled), for schema work and listening; fails fast."""
        try:
            return psycopg.connect(self.url, autocommit=True, row_factory=row_factory, **LIVENESS)
        except psycopg.Error as error:
            raise self.error(error) from None

    def open(self) -> None:
        """Open the pool once the server is known to answer (`connect` said so)."""
        self.pool.open(wait=False)

    def error(self, error: BaseException) -> StoreError:
        """The user's sentence for a psycopg error (and the disk-full hook, where it is that)."""
        if isinstance(error, errors.DiskFull):
            readable = StoreUnavailable("store.server_full", where=self.where)
            self._on_disk_full(readable)
            return readable
        if isinstance(error, errors.LockNotAvailable):
            return StoreUnavailable("store.locked")
        if isinstance(error, errors.ReadOnlySqlTransaction):
            return StoreUnavailable("store.read_only", where=self.where)
        if isinstance(error, psycopg.OperationalError):  # includes the pool's timeout
            # libpq says "connection to server at ... failed: <why>": the why, after the address we give
            why = first_line(error).rsplit("failed: ", 1)[-1]
            why = why[:1].lower() + why[1:]
            return StoreUnavailable("store.unreachable", where=self.where, error=why)
        return StoreError("store.unusable", error=first_line(error))

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """BEGIN ... COMMIT on a borrowed connection. One found closed by the server before the
        transaction's first statement is replaced (nothing was sent on it); one lost later is
        ConnectionLost: the caller cannot know whether the COMMIT arrived."""
        deadline = time.monotonic() + POOL_WAIT
        while True:
            lent: psycopg.Connection | None = None
            begun = False  # the caller's statements are being sent
            try:
                with self.pool.connection() as conn:
                    lent = conn
                    with conn.transaction():
                        conn.execute("SET LOCAL synchronous_commit = on")
                        begun = True
                        yield Transaction(conn)
                return
            except psycopg.OperationalError as error:
                broken = lent is not None and lent.broken
                if broken:
                    self._lost()
                if broken and not begun and time.monotonic() < deadline:
                    continue  # nothing of the transaction was sent: again, on another connection
                readable = self.error(error)
                if broken:
                    raise ConnectionLost(readable.message) from None
                raise readable from None
            except psycopg.Error as error:
                raise self.error(error) from None

    def _lost(self) -> None:
        """A lent connection was found closed by the server (a restart closes them all): test the
        idle ones now, so that the broken are replaced together, not found one borrow at a time."""
        try:
            self.pool.check()
        except psycopg.Error:  # the server is still away: the pool's own attempts go on
            pass

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """One statement in its own transaction, not waited on to be on disk (see `_configure`);
        its rows are read before it returns.

        A statement whose connection the server closed under it (a restart) is sent again on a
        new one: the statements sent alone are heartbeats and progress, which may be written
        twice. A transaction cut that way fails in one sentence instead, since it cannot be
        known whether its COMMIT was reached.
        """
        deadline = time.monotonic() + POOL_WAIT
        while True:
            lent: psycopg.Connection | None = None
            try:
                with self.pool.connection() as conn:
                    lent = conn
                    cur = conn.execute(placeholders(sql), list(params))
                    return Result(cur.rowcount, cur.fetchall() if cur.description else [])
            except psycopg.OperationalError as error:
                if lent is None or not lent.broken or time.monotonic() > deadline:
                    raise self.error(error) from None
                self._lost()
                time.sleep(RESEND_PAUSE)
            except psycopg.Error as error:
                raise self.error(error) from None

    def answers(self, within: float) -> bool:
        """Whether the server takes a new connection within `within` seconds (2 at least, libpq's
        least), and a statement on it: a pooled connection could be one the server is gone from,
        found out only after DEAD_AFTER."""
        quick = {**LIVENESS, "connect_timeout": max(2, round(within))}
        try:
            with psycopg.connect(self.url, autocommit=True, **quick) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.execute(sql, params).fetchall()

    def clock(self) -> float:
        """The database server's time, read once a minute and carried between readings by this
        machine's monotonic clock: every host judges heartbeats by the same clock, whatever its own says."""
        with self._clock_lock:
            stale = time.monotonic() - self._clock_read_at > CLOCK_REFRESH
            if self._clock_offset is None or stale:
                try:
                    self._read_clock()
                except StoreError:
                    if self._clock_offset is None:
                        raise
                    # the server is away: keep carrying the last reading
            return time.monotonic() + self._clock_offset

    def _read_clock(self) -> None:
        before = time.monotonic()
        server = self.read("SELECT extract(epoch FROM clock_timestamp())::float8 AS now")[0]["now"]
        after = time.monotonic()
        self._clock_offset = server - (before + after) / 2
        self._clock_read_at = after

    def close(self) -> None:
        self.pool.close()
