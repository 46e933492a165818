"""The hooks through which a store tells the shared queries what is its own."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """A connection inside a transaction; rows are read by name and by position."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Cursor: ...


class Database(Protocol):
    def transaction(self) -> AbstractContextManager[Connection]: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """One statement, committed on its own."""

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...


class SQLStore:
    """What each store provides to the shared queries."""

    db: Database
    # NOT NULL columns of the earlier app's table that a new row must fill (SQLite only).
    _legacy_required: dict[str, str] = {}
    # Statistics: the mean wait in the queue, and a job's day ('YYYY-MM-DD', UTC), as SQL.
    QUEUED_WAIT_SQL: str
    DAY_SQL: str

    def clock(self) -> float:
        """Now, by the clock that every stored time and every orphan decision uses."""
        raise NotImplementedError

    def _lost_run(self, conn: Connection, job_id: int) -> None:
        """In the transaction that ends a run whose machine went silent: what else ended with it
        (the engine's task for it, on PostgreSQL)."""

    def _ring_queued(self) -> None:
        """Wake the service that listens for queued jobs (after the commit that queued one)."""

    def _search(self, text: str) -> tuple[str, list[Any], bool]:
        """A condition on `transcription_jobs` for the jobs whose transcript holds every word of
        `text`; its values; and whether it goes through an index."""
        raise NotImplementedError
