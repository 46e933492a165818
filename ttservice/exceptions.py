"""Errors a user can read: each is a message (a code with its parameters, `messages`), which the
catalogs say in one sentence, in English or Thai, saying what to do."""

from __future__ import annotations

from typing import Any

from .messages import Message


class TTServiceError(Exception):
    """Base of every error shown to a user without a traceback.

    Raised with a code of the registry and its parameters, or with a Message; `str()` is
    the English sentence, `message` what the interfaces render in their reader's language.
    """

    def __init__(self, code: str | Message, /, **params: Any) -> None:
        self.message = code if isinstance(code, Message) else Message(code, **params)
        super().__init__(self.message.text())

    @property
    def code(self) -> str:
        return self.message.code


class MediaError(TTServiceError):
    """The media file cannot be transcribed (missing, empty, too large, not media, ...)."""


class MediaTooLarge(MediaError):
    """The media file is over the upload limit."""


class NotMedia(MediaError):
    """The file is not audio or video that can be read, or has no audio track."""


class JobNotFound(TTServiceError):
    def __init__(self, job_id: int) -> None:
        super().__init__("job.not_found", job_id=job_id)
        self.job_id = job_id


class StoreError(TTServiceError):
    """The database could not be read or written (locked for too long, disk full, ...)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or written for now (a lost connection, a lock held too
    long, a full disk, read-only): what a worker that meets it for long takes for being cut off.
    Any other StoreError is a fault of the statement, not of the database's reach."""


class ConnectionLost(StoreUnavailable):
    """A transaction's connection to the database server was lost before it was known to have
    committed (a server restart): whether it did is for the caller to find out."""


class MigrationError(StoreError):
    """A schema migration or rollback could not be carried out."""


class RequestError(TTServiceError):
    """A request that cannot be carried out as asked (an unknown language, a model that cannot do
    the task): refused before any job exists."""


class SegmentNotFound(RequestError):
    """A transcript has no segment of that index."""


class ModelError(TTServiceError):
    """A model that cannot be had or used (unknown, not on the hub, offline, not a Whisper model)."""
