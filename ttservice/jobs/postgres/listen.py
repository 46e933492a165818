"""LISTEN/NOTIFY: the service's wake-up when a job is queued, and the change mark.

Triggers on the job and download tables announce, in the committing transaction
itself, that something changed (`ttservice_changed`) and that a service job was
queued (`ttservice_queued`); the payload is the schema, so that stores of several
schemas in one database hear only their own.
"""

from __future__ import annotations

import logging
import threading

import psycopg

from ...exceptions import StoreError
from .connection import Database

log = logging.getLogger(__name__)

QUEUED, CHANGED = "ttservice_queued", "ttservice_changed"
RELISTEN_SECONDS = 1.0  # between tries to listen again after the connection was lost


def listen(db: Database, channel: str) -> tuple[psycopg.Connection, str]:
    """A connection of its own that listens on `channel`, and the schema it hears for."""
    conn = db.connect()
    try:
        schema = conn.execute("SELECT current_schema() AS schema").fetchone()["schema"]
        conn.execute(f"LISTEN {channel}")
    except psycopg.Error as error:
        conn.close()
        raise db.error(error) from None
    return conn, schema


class QueueListener:
    """Readable when a service job is queued: the service's `Wakeup` on PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._conn, self._schema = listen(db, QUEUED)

    def fileno(self) -> int:
        return self._conn.fileno()

    def drain(self) -> None:
        try:
            for _ in self._conn.notifies(timeout=0):
                pass
        except psycopg.Error:  # lost: the service's periodic look still finds queued jobs
            log.warning("the queued-job listener lost its connection")

    def close(self) -> None:
        self._conn.close()


class ChangeCounter:
    """Counts the commits announced on `ttservice_changed`, in a thread of its own.

    The mark is (listening session, announcements heard): reading it costs no query,
    and a lost connection starts a new session, so the mark moves whenever a change
    may have been missed.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._session = 0
        self._heard = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ttservice-changes", daemon=True)
        self._thread.start()

    def mark(self) -> tuple[int, int]:
        return self._session, self._heard

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                conn, schema = listen(self._db, CHANGED)
            except StoreError:
                self._closed.wait(RELISTEN_SECONDS)
                continue
            self._session += 1
            try:
                while not self._closed.is_set():
                    for note in conn.notifies(timeout=RELISTEN_SECONDS):
                        if note.payload == schema:
                            self._heard += 1
            except psycopg.Error:
                self._closed.wait(RELISTEN_SECONDS)
            finally:
                conn.close()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2 * RELISTEN_SECONDS)
