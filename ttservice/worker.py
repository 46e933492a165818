"""The job process: `python -m ttservice.worker JOB_ID`.

It decodes the media, transcribes, and commits every segment with the job's
progress as it goes, while a thread writes the heartbeat. SIGTERM keeps
Python's default action (exit at once, ~20 ms) instead of a handler that would
wait for the current 30-second decoding window: everything worth keeping is
already committed, so a prompt stop loses nothing.

Exit codes: 0 completed, 1 failed, 2 bad input, 3 the job was finished elsewhere.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time

from . import audio
from .config import Settings
from .engine import FasterWhisperEngine
from .exceptions import MediaError, TTServiceError
from .jobs import JobStatus
from .logs import JobLogHandler, job_log_path
from .store import Store

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ABANDONED = 0, 1, 2, 3
CHUNK_SECONDS = 30.0  # Whisper decodes 30-second windows

log = logging.getLogger("ttservice.worker")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Heartbeat(threading.Thread):
    """Writes last_heartbeat every interval; exits the process if the job was finished elsewhere."""

    def __init__(self, store: Store, job_id: int, interval: float) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.store, self.job_id, self.interval = store, job_id, interval
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                alive = self.store.heartbeat(self.job_id)
            except TTServiceError as error:
                log.warning("heartbeat not written: %s", error)
                continue
            if not alive and not self.done.is_set():
                log.warning("job %s is no longer processing here; stopping the worker", self.job_id)
                logging.shutdown()
                os._exit(EXIT_ABANDONED)


def transcribe_job(store: Store, settings: Settings, job_id: int) -> int:
    job = store.get_job(job_id)
    options = job.options
    info = audio.probe(job.media_path or "", settings.max_upload_bytes)
    log.info("Decoding %s (%.1f MB)", job.filename, info.size / 2**20)
    samples = audio.decode(info)
    duration = len(samples) / audio.SAMPLE_RATE
    store.set_media_info(job_id, duration, options.language)
    log.info("Audio: %s long. Loading model %s (%s)", _clock(duration), options.model, options.compute_type)
    engine = FasterWhisperEngine(options)
    started = time.monotonic()
    segments, info_ = engine.transcribe(samples, options)
    store.set_media_info(job_id, duration, info_.language)
    log.info("Language: %s", info_.language)
    chunks = max(1, math.ceil(duration / CHUNK_SECONDS))
    count = 0
    for segment in segments:
        processed = min(segment.end, duration)
        if not store.add_segments(job_id, [segment], processed, processed / duration):
            log.warning("job %s is no longer processing; stopping", job_id)
            return EXIT_ABANDONED
        count += 1
        wall = time.monotonic() - started
        speed = processed / wall if wall > 0 else 0.0
        eta = (duration - processed) / speed if speed > 0 else 0.0
        chunk = min(chunks, int(processed // CHUNK_SECONDS) + 1)
        log.info("[%s -> %s] %s", _clock(segment.start), _clock(segment.end), segment.text)
        log.info("Processing chunk %d/%d - Speed: %.1fx realtime - ETA %s", chunk, chunks, speed, _clock(eta))
    store.add_segments(job_id, [], duration, 1.0)
    wall = time.monotonic() - started
    log.info(
        "Done: %d segments, %s of audio in %.1f s (%.1fx realtime)",
        count,
        _clock(duration),
        wall,
        duration / max(wall, 1e-6),
    )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job_id = int(argv[0])
    settings = Settings.from_env()
    handler = JobLogHandler(
        job_log_path(settings.log_dir, job_id),
        settings.log_max_bytes,
        settings.log_backup_count,
        capture_std=True,
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    store = Store.from_settings(settings)
    heartbeat = Heartbeat(store, job_id, settings.heartbeat_interval)
    heartbeat.start()
    log.info("Worker pid %d started for job %d", os.getpid(), job_id)
    try:
        code = transcribe_job(store, settings, job_id)
        reason = None
    except MediaError as error:
        code, reason = EXIT_BAD_INPUT, str(error)
    except TTServiceError as error:
        code, reason = EXIT_FAILED, str(error)
    except Exception as error:  # the traceback goes to the log; the job gets one sentence
        log.exception("unexpected error")
        code, reason = EXIT_FAILED, f"Unexpected error: {type(error).__name__}: {error}"
    heartbeat.done.set()
    try:
        if code == EXIT_OK:
            if not store.transition(job_id, JobStatus.COMPLETED, exit_code=0):
                code = EXIT_ABANDONED
        elif reason is not None:
            log.error("%s", reason)
            store.transition(job_id, JobStatus.FAILED, error_message=reason, exit_code=code)
    except TTServiceError as error:
        log.error("the job's end could not be recorded: %s", error)
        code = EXIT_FAILED
    log.info("Worker exiting with code %d", code)
    logging.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
