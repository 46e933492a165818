"""Jobs: the record and its transitions, the Store interface and its SQLite store, job logs."""

from .record import (
    CALLBACK_DELIVERED,
    CALLBACK_FAILED,
    CALLBACK_PENDING,
    FINISHED,
    RESUMABLE,
    SERVICE_RUNNERS,
    TRANSITIONS,
    Download,
    Host,
    HostId,
    Job,
    JobStatus,
    Runner,
    Segment,
    TranscribeOptions,
    iso,
)
from .store import Store, open_store

__all__ = [
    "CALLBACK_DELIVERED",
    "CALLBACK_FAILED",
    "CALLBACK_PENDING",
    "FINISHED",
    "RESUMABLE",
    "SERVICE_RUNNERS",
    "TRANSITIONS",
    "Download",
    "Host",
    "HostId",
    "Job",
    "JobStatus",
    "Runner",
    "Segment",
    "Store",
    "TranscribeOptions",
    "iso",
    "open_store",
]
