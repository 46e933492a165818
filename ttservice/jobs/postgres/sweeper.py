"""The sweeper: the one service that recovers other machines' silent jobs, chosen by a lock.

Whichever service (`ttservice serve` or `agent`: a machine among the hosts) holds a
session advisory lock, one per schema, is the sweeper; the others, and every command,
leave other machines' jobs alone. The lock lives on a connection of its own, and the
server lets it go when that session ends: at once when the holder's process dies (its
machine closes the socket), and within about `DEAD_AFTER` seconds when the holder's
machine vanishes or is cut off, by TCP keepalives that both ends send on this
connection. A holder that is alive but hung (it stopped renewing its machine's
contact for `HUNG_AFTER` seconds) has its session ended by the next service that asks.

The lock chooses who sweeps; it is not what keeps a recovery single. A holder that was
cut off still believes it holds the lock until its own keepalives fail, and its late
recovery would name an attempt already recovered: `recover_lost`'s conditional update
refuses it.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from psycopg.rows import dict_row

from .connection import COUNT, DEAD_AFTER, IDLE, INTERVAL, LIVENESS, Database, placeholders

log = logging.getLogger(__name__)

SWEEP_LOCK = 0x7454_5303  # pg_try_advisory_lock's first key; the second is the schema's hash
HUNG_AFTER = 90.0  # s without renewing its machine's contact (every 30 s): a holder is hung
NAME_PREFIX = "ttservice sweeper "  # the holder's session is named for its machine
# The session holding the lock, and its name ("ttservice sweeper <machine>").
HOLDER_SQL = (
    "SELECT l.pid, a.application_name AS name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ?"
    " AND l.objid = hashtext(current_schema())::oid AND l.objsubid = 2"
)


def machine_of(session_name: str | None) -> str | None:
    """The machine a sweeper's session is named for; None for a session not named by us."""
    if session_name and session_name.startswith(NAME_PREFIX):
        return session_name.removeprefix(NAME_PREFIX)
    return None


class SweeperLock:
    """`held()`: whether this service is the sweeper now, taking the lock when it is free."""

    def __init__(self, db: Database, name: str) -> None:
        self._db = db
        self._name = name
        self._conn: psycopg.Connection | None = None
        self._held = False
        self._mutex = threading.Lock()

    def held(self) -> bool:
        """True while this service holds the lock. A session found lost (the server restarted,
        or ended it) is replaced and the lock asked for again on the new one, at once."""
        with self._mutex:
            for _ in range(2):
                try:
                    return self._ask()
                except psycopg.Error as error:
                    if self._held:
                        log.warning("the sweeper's lock was lost with its connection: %s", error)
                    self._drop()
            return False

    def _ask(self) -> bool:
        if self._conn is None:
            self._conn = self._connect()
        if self._held:
            self._conn.execute("SELECT 1")  # the session lives, so its lock is still ours
            return True
        self._held = self._try() or (self._end_hung_holder() and self._try())
        if self._held:
            log.info("this service is the sweeper now (%s)", self._name)
        return self._held

    def _try(self) -> bool:
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(current_schema())) AS held", [SWEEP_LOCK]
        ).fetchone()
        return bool(row and row["held"])

    def _end_hung_holder(self) -> bool:
        """End the holder's session if its machine stopped renewing its contact; whether it was."""
        assert self._conn is not None
        row = self._conn.execute(placeholders(HOLDER_SQL), [SWEEP_LOCK]).fetchone()
        holder = machine_of(row["name"]) if row else None
        if holder is None:
            return row is None  # free again already; or a holder that cannot be judged
        hung = self._conn.execute(
            "SELECT 1 FROM hosts WHERE name = %s AND last_seen < extract(epoch FROM clock_timestamp()) - %s",
            [holder, HUNG_AFTER],
        ).fetchone()
        if hung is None:
            return False
        log.warning(
            "the sweeper %s has not renewed its contact for %.0f s: its session is ended", holder, HUNG_AFTER
        )
        self._conn.execute("SELECT pg_terminate_backend(%s, 5000)", [row["pid"]])  # waits for it to end
        return True

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(
            self._db.url,
            autocommit=True,
            row_factory=dict_row,
            application_name=(NAME_PREFIX + self._name)[:63],  # for `_end_hung_holder`
            **LIVENESS,
        )
        # The server's side of the same keepalives: it ends a silent holder's session, so the
        # lock is free again for a service that answers.
        for setting, value in (
            ("tcp_keepalives_idle", IDLE),
            ("tcp_keepalives_interval", INTERVAL),
            ("tcp_keepalives_count", COUNT),
            ("tcp_user_timeout", DEAD_AFTER * 1000),
        ):
            conn.execute(f"SET {setting} = {int(value)}")
        return conn

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        self._conn = None

    def close(self) -> None:
        """Let the lock go (closing its session does), so another service sweeps from now on."""
        with self._mutex:
            self._drop()
