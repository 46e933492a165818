"""What a user does to jobs: submit, resume, re-run, delete.

Every interface (the CLI, the web pages) calls these, so the rules live here once.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..exceptions import MediaError, ModelError, StoreError, TTServiceError
from ..jobs import Host, Job, JobStatus, Runner, Store, TranscribeOptions, files, logs
from ..messages import Message
from ..transcription import media

if TYPE_CHECKING:
    from ..supervision import ProcessManager

MAX_NAME = 120


CONTACT = 90.0  # seconds: a machine renews its contact every 30 s; one silent this long is away


@dataclass
class Machine:
    """A machine that runs queued jobs (a service, an agent), as `ttservice hosts` and Statistics show it."""

    host: Host
    running: int  # its jobs processing now
    in_contact: bool  # it renewed its contact within CONTACT seconds
    sweeper: bool  # its service recovers the jobs of machines gone silent (one machine at a time)

    def to_dict(self) -> dict[str, Any]:
        return self.host.to_dict() | {
            "running": self.running,
            "in_contact": self.in_contact,
            "sweeper": self.sweeper,
        }


def machines(store: Store) -> list[Machine]:
    """Every registered machine, with the jobs it runs now, whether it was in contact lately and
    whether it is the sweeper."""
    now = store.clock()
    running = Counter(job.host for job in store.active_jobs())
    sweeper = store.sweeper()
    return [
        Machine(
            h, running[h.name], h.last_seen is not None and now - h.last_seen < CONTACT, h.name == sweeper
        )
        for h in store.list_hosts()
    ]


def sanitize_filename(name: str) -> str:
    """A safe file name: no directories, no control or shell characters; Thai letters kept."""
    name = unicodedata.normalize("NFC", Path(name.replace("\\", "/")).name)
    name = "".join(c if _allowed(c) else "_" for c in name).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if dot and len(ext) <= 10:
        name = stem[: MAX_NAME - len(ext) - 1] + "." + ext
    return name[:MAX_NAME] or "upload"


def _allowed(char: str) -> bool:
    # Letters, combining marks (Thai vowels and tones are marks) and digits; a few safe signs.
    return unicodedata.category(char)[0] in "LMN" or char in "._- "


def submit_upload(
    store: Store,
    settings: Settings,
    name: str,
    data: bytes,
    options: TranscribeOptions,
    lease: bool = False,
) -> int:
    """Store an uploaded file under the data dir (by its hash, `jobs.files`) and queue a job for
    the service.

    Size is checked before anything is written; a refused upload still leaves a
    failed job with the reason, as every bad input does. A language or task the
    model cannot do is refused (RequestError) before any job exists.
    """
    safe = sanitize_filename(name)
    options, unavailable, note = check_request(options, settings)
    if unavailable:
        return store.create_job(safe, None, options, Runner.UPLOAD, refused=unavailable)
    job_id = store.create_job(safe, None, options, Runner.UPLOAD)  # not started before it is saved
    warn(store, job_id, note)
    if lease:
        store.renew_lease(job_id)
    try:
        if len(data) > settings.max_upload_bytes:
            raise MediaError(
                "media.too_large", name=safe, size_mb=len(data) / 2**20, limit_mb=settings.max_upload_mb
            )
        try:
            staged = files.staging(settings.upload_dir, job_id, safe)
            staged.write_bytes(data)
            sha256 = hashlib.sha256(data).hexdigest()
            files.store_upload(store, settings.upload_dir, job_id, staged, sha256, Runner.SERVICE)
        except OSError as error:
            files.discard_staged(settings.upload_dir, job_id)
            raise MediaError("media.upload_not_saved", reason=error.strerror) from None
    except TTServiceError as error:
        store.transition(job_id, JobStatus.FAILED, error_message=error.message)
    return job_id


def submit_saved(
    store: Store,
    settings: Settings,
    saved: Path,
    name: str,
    options: TranscribeOptions,
    runner: Runner = Runner.API,
    callback_url: str | None = None,
    sha256: str | None = None,
) -> tuple[int, TTServiceError | None]:
    """Queue an upload already streamed to `saved` (the API's way, hashed as it came: `sha256`);
    the file is stored by its hash.

    The media is probed before the job is queued: a file that is not media gives a job
    failed at once, returned with the error it failed with, as does a model that cannot
    be had. A language or task the model cannot do is refused (RequestError) and no
    job exists. In every refusal the file is removed.
    """
    from ..models import memory

    safe = sanitize_filename(name)
    try:
        options, unavailable, note = check_request(options, settings, memory.file_seconds(saved))
    except TTServiceError:
        saved.unlink(missing_ok=True)
        raise
    job_id = store.create_job(
        safe, None, options, Runner.UPLOAD, refused=unavailable, callback_url=callback_url
    )
    if unavailable:
        saved.unlink(missing_ok=True)
        return job_id, ModelError(unavailable)
    warn(store, job_id, note)
    try:
        staged = files.staging(settings.upload_dir, job_id, safe)
        saved.replace(staged)
        media.probe(staged, settings.max_upload_bytes)
        files.store_upload(
            store, settings.upload_dir, job_id, staged, sha256 or files.sha256_of(staged), runner
        )
    except (MediaError, OSError) as error:
        files.discard_staged(settings.upload_dir, job_id)
        saved.unlink(missing_ok=True)
        if not isinstance(error, MediaError):
            error = StoreError("media.upload_not_saved", reason=error.strerror)
        store.transition(job_id, JobStatus.FAILED, error_message=error.message, exit_code=2)
        return job_id, error
    return job_id, None


def details(store: Store, settings: Settings, job_id: int, pm: ProcessManager | None = None) -> dict:
    """Everything known about a job, as `ttservice show --json` and the API's job give it.

    A caller that asks again and again (the API) passes its own long-lived `pm`: its first
    look at a worker's CPU takes a 0.1-s sample, later looks measure since the last one.
    """
    from ..supervision import ProcessManager
    from . import models

    job = store.get_job(job_id)
    status = (pm or ProcessManager(store, settings)).get_process_status(job_id)
    segments = store.segments(job_id)
    waiting = models.waiting_for(store, job, settings)
    kind = None if not waiting else "memory" if waiting[0].code == "memory.waiting" else "download"
    return job.to_dict() | {
        "english_only_model": _english_only(job),
        "phase": _phase(job),
        "waiting_for": kind,
        "waiting_reason": str(waiting[0]) if waiting else None,
        "download": waiting[1].to_dict() if waiting and waiting[1] else None,
        "alive": status.alive,
        "cpu_percent": round(status.cpu_percent, 1),
        "memory_mb": round(status.memory_mb, 1),
        "gpu_memory_mb": round(status.gpu_bytes / 2**20, 1) if status.gpu_bytes is not None else None,
        "heartbeat_age": status.heartbeat_age,
        "stalled": status.stalled,
        "segments": len(segments),
        "text": " ".join(s.text for s in segments),
    }


def _phase(job: Job) -> str | None:
    """What a running job does now: transcribing, or (its transcript done) labelling speakers."""
    if job.status is not JobStatus.PROCESSING:
        return None
    return "labelling speakers" if job.labelling else "transcribing"


def _english_only(job: Job) -> bool | None:
    """Whether the job's model knows only English (None: cannot tell, or no such model here)."""
    from ..models import catalog, hub

    try:
        ref = catalog.resolve(job.options.model)
    except ModelError:
        return None
    return catalog.english_only(ref, ref.folder or hub.installed_folder(ref))


def submit_file(
    store: Store,
    settings: Settings,
    path: Path,
    options: TranscribeOptions,
    runner: Runner = Runner.SERVICE,
) -> int:
    """Queue a file on disk (used in place, not copied) for the service (or another runner).

    A language or task the model cannot do is refused (RequestError) before any job
    exists; a bad file or a model that cannot be had gives a job failed at once.
    """
    from ..models import memory

    path = path.expanduser()
    options, unavailable, note = check_request(options, settings, memory.file_seconds(path))
    try:
        media.check_file(path, settings.max_upload_bytes)
    except MediaError as error:
        unavailable = error.message
    job_id = store.create_job(path.name, str(path.resolve()), options, runner, refused=unavailable)
    warn(store, job_id, note)
    return job_id


def warn(store: Store, job_id: int, note: Message | None) -> None:
    if note is not None:
        store.add_warning(job_id, note)


def check_request(
    options: TranscribeOptions, settings: Settings, seconds: float | None = None
) -> tuple[TranscribeOptions, Message | None, Message | None]:
    """The options made exact (the language as a code, a folder absolute, the batch one that
    fits in the memory limit for `seconds` of media, when known), why the model cannot be had
    (None if it can: on disk, or on the hub to download), and a warning for the job when its
    batch had to be made smaller.

    Raises RequestError for what no model could fix: an unknown language or task, one the
    model cannot do, a job that needs more memory than the limit allows, or speakers asked
    for where the diarizer is not installed.
    """
    from ..models import hub, memory, requests
    from ..transcription import device, engine, speakers

    who = speakers.checked(options.speakers)  # word timings let a segment be cut where speakers change
    options = replace(options, speakers=who, word_timestamps=options.word_timestamps or who is not None)
    try:
        options, ref, folder = requests.checked(options)
        options = replace(options, engine=engine.checked(options.engine, ref.name, ref.ggml))
        if folder is None and (ggml := engine.ggml_instead(options, ref)):  # whisper.cpp's own file
            options, ref, folder = requests.checked(replace(options, model=ggml))
        if folder is None and ref.kind == "hub":
            hub.check_remote(ref)
        if options.device != "auto":
            device.resolve(options.device, options.device_index, options.compute_type)
    except ModelError as error:
        return options, error.message, None
    fitted = memory.fit(options, settings, seconds)
    return fitted.options, None, fitted.warning


def rerun(store: Store, job_id: int) -> int:
    """A new queued job with the same media and the same parameters."""
    job = store.get_job(job_id)
    original = _original_media(job, "job.media_gone_rerun")
    return store.create_job(job.filename or original.name, job.media_path, job.options)


def resume(store: Store, job_id: int, runner: Runner = Runner.SERVICE) -> float:
    """Queue a stopped, failed or interrupted job to continue after its last committed segment.

    Returns the point (seconds) it continues from.
    """
    job = store.get_job(job_id)
    if not job.resumable:
        raise TTServiceError("job.not_resumable", job_id=job_id, status=job.status.value)
    _original_media(job, "job.media_gone_resume")
    if not store.requeue_for_resume(job_id, runner):
        raise TTServiceError("job.changed_while_resuming", job_id=job_id)
    return store.resume_point(job_id)


def _original_media(job: Job, gone: str) -> Path:
    """The job's media file; MediaError `gone` (the code saying what cannot be done) without it."""
    if not job.media_path or not Path(job.media_path).exists():
        raise MediaError(gone)
    return Path(job.media_path)


def delete(store: Store, settings: Settings, job_id: int) -> None:
    """Delete a finished job with its upload and log files."""
    job = store.get_job(job_id)
    if job.status in (JobStatus.QUEUED, JobStatus.PROCESSING):
        raise TTServiceError("job.not_deletable", job_id=job_id, status=job.status.value)
    for part in logs.rotated_parts(logs.job_log_path(settings.log_dir, job_id)):
        part.unlink(missing_ok=True)
    files.delete_job(store, settings.upload_dir, job_id, job.media_path)
