"""/api/v1/health and /api/v1/ready: is the service alive, and is it ready for work.

A liveness probe that waits on the database is taken for a dead service by whatever
calls it: SQLite's write lock held by another program for 20 s made the old probe
answer after 20 s. So `/health` asks the store in a thread of its own and answers
within PROBE_WAIT whatever the database does, saying what it could not check
("database": "busy"); `/ready` waits for the store as long as the store itself waits.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from ...exceptions import StoreError
from ...jobs import Store

log = logging.getLogger(__name__)

PROBE_WAIT = 1.0  # seconds /health waits for the database before it answers "busy"

DatabaseState = Literal["ok", "busy", "unwritable", "unreachable"]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    dispatcher: bool = Field(description="A service runs for this data directory and starts queued jobs.")
    database: DatabaseState = Field(
        description="ok: writable; busy: no answer in time (another program holds its write lock, or the"
        " server is slow), not checked further; unwritable: it answered that nothing can be written"
        " (read-only, full, or locked beyond the store's wait); unreachable: it could not be read."
    )
    database_writable: bool
    slots: int
    slots_free: int | None = Field(description="Slots no job holds; null when the database did not answer.")


@dataclass
class Checked:
    database: DatabaseState
    slots_busy: int | None


def check_store(store: Store) -> Checked:
    """Ask the store whether it can be written and how many jobs run, waiting as long as it waits."""
    try:
        busy = len(store.active_jobs())
    except StoreError:
        return Checked("unreachable", None)
    return Checked("ok" if store.writable() else "unwritable", busy)


class DatabaseProbe:
    """The store's checks, run in a thread of their own, one at a time.

    A caller waits at most its own deadline; a check still running then is not
    abandoned but shared: the next caller waits on it instead of starting another,
    so a database that hangs holds up one thread, not one per probe.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._running: Future[Checked] | None = None

    def check(self, wait: float) -> Checked:
        with self._lock:
            if self._running is None or self._running.done():
                self._running = Future()
                threading.Thread(target=self._run, args=(self._running,), name="health", daemon=True).start()
            running = self._running
        try:
            return running.result(timeout=wait)
        except FutureTimeout:
            return Checked("busy", None)

    def _run(self, future: Future[Checked]) -> None:
        try:
            future.set_result(check_store(self.store))
        except Exception:  # a probe says what it found rather than fail
            log.exception("the health check of the database failed")
            future.set_result(Checked("unreachable", None))


def answer(checked: Checked, dispatcher: bool, slots: int) -> tuple[int, dict]:
    """The HTTP status and the body: 503 when something is wrong that will not pass by itself
    (no dispatcher; a database that cannot be written or reached); a busy database is degraded."""
    ok = dispatcher and checked.database == "ok"
    broken = not dispatcher or checked.database in ("unwritable", "unreachable")
    body = {
        "status": "ok" if ok else "degraded",
        "dispatcher": dispatcher,
        "database": checked.database,
        "database_writable": checked.database == "ok",
        "slots": slots,
        "slots_free": None if checked.slots_busy is None else max(slots - checked.slots_busy, 0),
    }
    return (503 if broken else 200), body
