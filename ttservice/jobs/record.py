"""The job record, its statuses and the transitions between them; segments; options.

A status only moves along `TRANSITIONS`. The store turns each transition into a
conditional UPDATE (`... WHERE status IN (allowed sources)`), so a late heartbeat,
a slow worker or a second manager can never bring a finished job back.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from ..messages import Message, Said

CHUNK_SECONDS = 30.0  # Whisper decodes 30-second windows


def chunk_of(processed: float, duration: float) -> tuple[int, int]:
    """Which 30-s window of `duration` seconds `processed` seconds are in, and how many there are."""
    chunks = max(1, math.ceil(duration / CHUNK_SECONDS))
    return min(chunks, int(processed // CHUNK_SECONDS) + 1), chunks


def error_fields(detail: Message | None) -> dict[str, Any]:
    """An error's code and parameters, for programs (the sentence is `error`)."""
    if detail is None:
        return {"error_code": None, "error_params": None}
    return {"error_code": detail.code, "error_params": detail.to_dict()["params"]}


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in FINISHED

    @classmethod
    def parse(cls, value: str | None) -> JobStatus:
        """Read a stored status, including the spellings of the earlier app."""
        value = (value or "").strip().lower()
        try:
            return cls(value)
        except ValueError:
            return LEGACY_STATUSES.get(value, cls.FAILED)


FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED})
RESUMABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED})

# Statuses written by the earlier app; anything else unknown reads as failed,
# since no process of ours can be running it.
LEGACY_STATUSES = {
    "pending": JobStatus.QUEUED,
    "running": JobStatus.PROCESSING,
    "done": JobStatus.COMPLETED,
    "success": JobStatus.COMPLETED,
    "error": JobStatus.FAILED,
    "canceled": JobStatus.CANCELLED,
    "stopped": JobStatus.CANCELLED,
}

# target -> the statuses it may be reached from
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PROCESSING: frozenset({JobStatus.QUEUED}),
    JobStatus.COMPLETED: frozenset({JobStatus.PROCESSING}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.PROCESSING}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED, JobStatus.PROCESSING}),
    JobStatus.INTERRUPTED: frozenset({JobStatus.PROCESSING}),
    # re-running or resuming a finished job puts it back in the queue
    JobStatus.QUEUED: frozenset(
        {JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED, JobStatus.COMPLETED}
    ),
}


class Runner(StrEnum):
    """Who starts a queued job (or a download): the long-running service, or the CLI in the
    foreground.

    An upload's job is nobody's until its file is saved (UPLOAD), so that it is never
    started without its media; a download asked for by the web app or the API is nobody's
    (UNCLAIMED) until a service or a command takes it.
    """

    SERVICE = "service"
    FOREGROUND = "foreground"
    UPLOAD = "upload"
    UNCLAIMED = "unclaimed"
    API = "api"  # asked for through the HTTP API: the service starts it, the request waits on it


# The runners whose jobs the service starts (one queue, oldest first).
SERVICE_RUNNERS = frozenset({Runner.SERVICE, Runner.API})


@dataclass(frozen=True)
class TranscribeOptions:
    """Everything a job runs with, stored whole so that a re-run is faithful."""

    model: str = "tiny.en"
    language: str | None = None
    task: str = "transcribe"
    word_timestamps: bool = False
    beam_size: int = 1
    vad: bool = True
    compute_type: str = "auto"  # auto: float16 on CUDA, int8 on the CPU
    cpu_threads: int = 0
    batch_size: int = 0
    device: str = "auto"  # auto: CUDA when CTranslate2 finds a device, else the CPU
    device_index: int = 0
    prompt: str | None = None  # text that primes the first window (names, spellings, style)
    temperature: float = 0.0  # the first decoding temperature; Whisper falls back upwards from it
    speakers: str | None = None  # label who speaks: "auto", or the number of speakers
    engine: str = "auto"  # auto: whisper.cpp on Apple Silicon (Metal), faster-whisper elsewhere

    @classmethod
    def from_settings(cls, settings: Any, **choices: Any) -> TranscribeOptions:
        """The user's choices (None: not chosen) over the configured engine defaults."""
        values = {
            "model": settings.model,
            "beam_size": settings.beam_size,
            "vad": settings.vad,
            "compute_type": settings.compute_type,
            "cpu_threads": settings.cpu_threads,
            "batch_size": settings.batch_size,
            "device": settings.device,
            "device_index": settings.device_index,
            "engine": settings.engine,
        }
        values.update({k: v for k, v in choices.items() if v is not None})
        if values["batch_size"] < 0:  # -1 named the default until the seventh session of 2026-12-06
            from ..config import DEFAULT_BATCH

            values["batch_size"] = DEFAULT_BATCH
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> TranscribeOptions:
        data = json.loads(text) if text else {}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Job:
    id: int
    status: JobStatus
    filename: str | None = None
    media_path: str | None = None
    options: TranscribeOptions = field(default_factory=TranscribeOptions)
    runner: Runner = Runner.SERVICE
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration: float | None = None
    progress: float = 0.0
    processed_seconds: float = 0.0
    error: str | None = None  # the English sentence; error_detail its code, for other languages
    error_detail: Message | None = None
    exit_code: int | None = None
    process_id: int | None = None
    process_create_time: float | None = None
    log_file_path: str | None = None
    last_heartbeat: float | None = None
    last_progress_at: float | None = None
    stop_requested_at: float | None = None
    stop_reason: str | None = None  # the sentence the stop was asked with, whoever records the end
    stop_detail: Message | None = None
    detected_language: str | None = None
    language_probability: float | None = None
    lease_renewed_at: float | None = None
    resumed_from: float = 0.0
    # An API client's address to POST the finished job to, and how that went (CALLBACK_*).
    callback_url: str | None = None
    callback_status: str | None = None
    callback_attempts: int = 0
    # The machine that claimed its latest run (`HostId`), and how many runs were claimed: a
    # write made for an earlier attempt changes nothing.
    host: str | None = None
    host_boot_id: str | None = None
    attempt: int = 0
    peak_memory_mb: float | None = None  # the worker's peak RSS, measured as it ends
    engine: str | None = None  # the engine its latest run loaded the model on
    warnings: list[Message] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status.finished

    @property
    def labelling(self) -> bool:
        """Transcribed, and now labelling its speakers (its worker does that after its last segment)."""
        return self.status is JobStatus.PROCESSING and self.progress >= 1.0 and bool(self.options.speakers)

    @property
    def resumable(self) -> bool:
        """Stopped, failed or interrupted: it can continue from its last committed segment."""
        return self.status in RESUMABLE

    @property
    def reason(self) -> Said | None:
        """Why it ended as it did: the message where its code is stored, else the sentence."""
        return self.error_detail or self.error

    @property
    def stop_why(self) -> Said | None:
        """What the stop asked for it was asked with."""
        return self.stop_detail or self.stop_reason

    def stalled(self, stall_timeout: float, now: float | None = None) -> bool:
        """Processing, but its progress has not moved for `stall_timeout` seconds."""
        last_move = self.last_progress_at or self.started_at
        if self.status is not JobStatus.PROCESSING or not isinstance(last_move, (int, float)):
            return False
        return (now or time.time()) - last_move > stall_timeout

    def speed(self, now: float | None = None) -> float | None:
        """Audio seconds transcribed per wall-clock second (×realtime)."""
        done = self.processed_seconds - self.resumed_from
        if not self.started_at or done <= 0:
            return None
        end = self.finished_at or (now or time.time())
        wall = end - self.started_at
        return done / wall if wall > 0 else None

    def eta(self, now: float | None = None) -> float | None:
        speed = self.speed(now)
        if self.finished or not speed or not self.duration:
            return None
        return max(self.duration - self.processed_seconds, 0.0) / speed

    def chunk(self) -> tuple[int, int] | None:
        """The 30-s window being decoded and how many there are; None before anything was decoded."""
        if not self.duration or not self.processed_seconds:
            return None
        return chunk_of(self.processed_seconds, self.duration)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "filename": self.filename,
            "media_path": self.media_path,
            "model": self.options.model,
            "language": self.options.language,
            "detected_language": self.detected_language,
            "language_probability": self.language_probability,
            "options": self.options.__dict__,
            "runner": self.runner.value,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration": self.duration,
            "progress": round(self.progress, 4),
            "speed": self.speed(),
            "error": self.error,
            **error_fields(self.error_detail),
            "exit_code": self.exit_code,
            "process_id": self.process_id,
            "log_file_path": self.log_file_path,
            "last_heartbeat": iso(self.last_heartbeat),
            "host": self.host,
            "attempt": self.attempt,
            "peak_memory_mb": self.peak_memory_mb,
            "engine": self.engine,
            "warnings": [str(w) for w in self.warnings],
            "warning_codes": [w.to_dict() for w in self.warnings],
        }


CALLBACK_PENDING, CALLBACK_DELIVERED, CALLBACK_FAILED = "pending", "delivered", "failed"
PHASE_DOWNLOADING, PHASE_CONVERTING = "downloading", "converting"  # a download's phases


@dataclass
class Download:
    """A model download: supervised like a job, one at a time per repo however many jobs wait for it.

    Its status moves as a job's does (processing, then completed, failed,
    cancelled or interrupted); `bytes_done` is on disk, partial files included.
    """

    id: int
    model: str
    repo_id: str
    status: JobStatus
    runner: Runner = Runner.SERVICE
    bytes_done: int = 0
    bytes_total: int | None = None
    error: str | None = None
    error_detail: Message | None = None
    process_id: int | None = None
    process_create_time: float | None = None
    log_file_path: str | None = None
    last_heartbeat: float | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    stop_requested_at: float | None = None
    started_bytes: int = 0  # on disk already when this download began (a resumed one)
    phase: str = PHASE_DOWNLOADING  # then "converting", for a Transformers-format model
    steps_done: int = 0  # the conversion's steps (its layers, then quantizing and writing)
    steps_total: int | None = None
    memory_mb: float | None = None  # what the conversion needs, said before it starts

    @property
    def finished(self) -> bool:
        return self.status.finished

    @property
    def progress(self) -> float:
        if self.phase == PHASE_CONVERTING:
            return min(self.steps_done / self.steps_total, 1.0) if self.steps_total else 0.0
        return min(self.bytes_done / self.bytes_total, 1.0) if self.bytes_total else 0.0

    def speed(self, now: float | None = None) -> float | None:
        """Bytes a second fetched by this download (not counting what was on disk before it)."""
        if not self.started_at:
            return None
        wall = (self.finished_at or now or time.time()) - self.started_at
        fetched = self.bytes_done - self.started_bytes
        return fetched / wall if wall > 0 and fetched > 0 else None

    def eta(self, now: float | None = None) -> float | None:
        speed = self.speed(now)
        if self.finished or not speed or not self.bytes_total:
            return None
        return max(self.bytes_total - self.bytes_done, 0) / speed

    @property
    def reason(self) -> Said | None:
        """Why it ended as it did: the message where its code is stored, else the sentence."""
        return self.error_detail or self.error

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "repo_id": self.repo_id,
            "status": self.status.value,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "progress": round(self.progress, 4),
            "bytes_per_second": self.speed(),
            "phase": self.phase,
            "steps_done": self.steps_done,
            "steps_total": self.steps_total,
            "memory_mb": self.memory_mb,
            "error": self.error,
            **error_fields(self.error_detail),
            "process_id": self.process_id,
            "created_at": iso(self.created_at),
            "finished_at": iso(self.finished_at),
        }


class HostId(NamedTuple):
    """A machine as long as it stays up: its name, and the boot it is in (a restart ends every
    process of the boot before)."""

    name: str
    boot_id: str


@dataclass
class Host:
    """A machine that runs jobs (an agent, or a service that starts its own), as it registered."""

    name: str
    boot_id: str
    slots: int
    version: str | None = None
    started_at: float | None = None
    last_seen: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "boot_id": self.boot_id,
            "slots": self.slots,
            "version": self.version,
            "started_at": iso(self.started_at),
            "last_seen": iso(self.last_seen),
        }


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: list[dict[str, Any]] | None = None
    # What a resumed run needs to decode exactly as before (see engine.ResumePoint):
    tokens: list[int] | None = field(default=None, compare=False)
    window: float | None = field(default=None, compare=False)  # decoding window start, speech timeline
    # False for an earlier app's transcript: one segment with the whole text and no times.
    timed: bool = True
    id: int | None = field(default=None, compare=False)  # the stored row's, once committed
    speaker: str | None = None  # who said it (SPEAKER_1 ... or a name), where labelled or corrected
    edited: bool = field(default=False, compare=False)  # corrected by a person (the original is kept)


def iso(value: float | str | None) -> str | None:
    """A stored time as ISO 8601 UTC; text written by the earlier app passes through."""
    if value is None or isinstance(value, str):
        return value
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
