"""The hooks through which a store tells the shared queries what is its own."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ...messages import Message, Said, of, text

# A column that holds a sentence, and the one beside it that holds its code and parameters
# (schema v11): readers show the message in their language, readers of older versions the sentence.
DETAILS = {"error_message": "error_detail", "stop_reason": "stop_detail"}


def said(values: dict[str, Any]) -> dict[str, Any]:
    """The values to write, each message among them as its English sentence beside its detail."""
    written: dict[str, Any] = {}
    for column, value in values.items():
        if column not in DETAILS:
            written[column] = value
            continue
        message = of(value)
        written[column] = None if value is None else text(value)
        written[DETAILS[column]] = message.to_json() if message is not None else None
    return written


def message(sentence: str | None, detail: str | None) -> Said | None:
    """A stored message as it was said: the Message where its detail is known, else the sentence."""
    return Message.from_json(detail) or sentence


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
