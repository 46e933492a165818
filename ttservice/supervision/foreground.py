"""`run_transcription(..., job_id=None)`: a transcription in a supervised worker, waited for.

The source document's `lib/audio.py` entry point, used by `ttservice transcribe`
and `ttservice resume`: a ProcessManager of the foreground runner starts the
job's worker (which ends with this process) and watches it until the job ends.

USE_PROCESS_TRACKING is the source document's emergency switch: set it to False
here (or TTSERVICE_USE_PROCESS_TRACKING=0) and jobs still run and finish, without
PID tracking.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .. import messages
from ..config import Settings
from ..exceptions import TTServiceError
from ..jobs import Download, Job, JobStatus, Runner, Store, TranscribeOptions, open_store
from ..messages import Message
from .downloads import not_downloaded
from .process_manager import ProcessManager
from .warm import take_ahead

log = logging.getLogger(__name__)

USE_PROCESS_TRACKING: bool | None = None  # None: follow the setting


def tracking_enabled(settings: Settings) -> bool:
    return settings.use_process_tracking if USE_PROCESS_TRACKING is None else USE_PROCESS_TRACKING


def run_transcription(
    media_path: str | Path,
    options: TranscribeOptions | None = None,
    *,
    job_id: int | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
    on_update: Callable[[Job], None] | None = None,
    on_download: Callable[[Download], None] | None = None,
    cancel: threading.Event | None = None,
    poll: float = 0.5,
) -> Job:
    """Run a transcription in a supervised worker and wait for it; return the finished job.

    With `job_id` the given (queued) job is run; without it a foreground job is
    created. The worker's PID is tracked unless USE_PROCESS_TRACKING is off.
    Setting `cancel` stops the worker tree and records the job as cancelled.
    A model not yet on disk is downloaded first (`on_download` sees its progress),
    or the download another process runs for it is waited for.
    """
    settings = settings or Settings.from_env()
    settings = replace(settings, use_process_tracking=tracking_enabled(settings))
    store = store or open_store(settings)
    if job_id is None:
        path = Path(media_path).expanduser()
        job_id = store.create_job(
            path.name,
            str(path.resolve()),
            options or TranscribeOptions.from_settings(settings),
            Runner.FOREGROUND,
        )
    cancel = cancel or threading.Event()
    pm = ProcessManager(store, settings, runner=Runner.FOREGROUND)
    if (ahead := take_ahead()) is not None:  # `ttservice transcribe` started the worker already
        pm.warm = ahead
    pm.start()
    try:
        if not _model_ready(pm, store.get_job(job_id), on_download, cancel):
            return store.get_job(job_id)
        started = False
        while not cancel.is_set():
            # Until a slot is free, and memory for it, the job waits queued like any other.
            if not started:
                started = pm.has_room(store.get_job(job_id)) and pm.start_job(job_id)
                if not started:
                    pm.warm.stop()  # a worker started ahead would hold memory the job waits for
            job = store.get_job(job_id)
            if on_update:
                on_update(job)
            if job.finished:
                return job
            pm.wait_for_exit(job_id, poll, cancel)  # back at once when the worker ends
        pm.kill_process(job_id)
        return store.get_job(job_id)
    except BaseException as error:
        pm.monitor.stop()  # this stop records the job's end, not the monitor seeing its worker exit
        if isinstance(error, KeyboardInterrupt):  # Ctrl-C: the user's stop
            pm.kill_process(job_id)
            raise
        # The command itself failed (its database away for longer than it waits): the job was
        # not stopped by anyone, so it is left interrupted, to resume.
        why = Message("job.stopped_command_failed", error=messages.of(error) or str(error))
        try:
            pm.kill_process(job_id, reason=why, final=JobStatus.INTERRUPTED)
        except TTServiceError:  # still away: the sweep finds the job once its worker is gone
            log.warning("job %s: its stop could not be recorded", job_id)
        raise
    finally:
        pm.shutdown()


def _model_ready(
    pm: ProcessManager, job: Job, on_download: Callable[[Download], None] | None, cancel: threading.Event
) -> bool:
    """Download the job's model if it is not on disk; False (the job ended) if that failed."""
    from ..models import catalog, hub

    ref = catalog.resolve(job.options.model)
    if ref.kind != "hub" or hub.installed_folder(ref) is not None:
        return True
    row = pm.downloads.fetch(ref, on_download, cancel)
    if cancel.is_set():
        pm.kill_process(job.id)
        return False
    if hub.installed_folder(ref) is None:
        pm.store.transition(job.id, JobStatus.FAILED, error_message=not_downloaded(ref, row))
        return False
    return True
