"""The job process: `python -m ttservice.worker JOB_ID`.

It decodes the media, transcribes, and commits every segment with the job's
progress as it goes, while a thread writes the heartbeat. SIGTERM keeps
Python's default action (exit at once, ~20 ms) instead of a handler that would
wait for the current 30-second decoding window: everything worth keeping is
already committed, so a prompt stop loses nothing.

A worker started by a foreground command (`ttservice transcribe`) ends with that
command: on Linux the kernel signals it when its parent dies (PR_SET_PDEATHSIG),
elsewhere it notices its parent is gone at the next check; either way it records
the job as interrupted before it exits. Workers of the service have no such tie,
so they outlive a crashed service and are adopted by the next one.

A job that already has segments (it was resumed) continues after the last one.

`python -m ttservice.worker --standby` is the service's warm worker: it imports
everything and loads the default model, then waits for a job id on stdin. It dies
with the service until it has one (PR_SET_PDEATHSIG, and end of file on stdin);
from then on it is a worker like any other.

Exit codes: 0 completed, 1 failed, 2 bad input, 3 the job was finished elsewhere.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import math
import os
import select
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from . import audio
from .config import STANDBY, STANDBY_READY, WORKER_PARENT_ENV, Settings
from .engine import FasterWhisperEngine, ResumePoint
from .exceptions import MediaError, TTServiceError
from .export import clock
from .jobs import JobStatus, TranscribeOptions
from .logs import JobLogHandler, job_log_path
from .samples import GrowingAudio
from .store import Store
from .vad import SAMPLE_RATE

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ABANDONED = 0, 1, 2, 3
CHUNK_SECONDS = 30.0  # Whisper decodes 30-second windows
CAPACITY_MARGIN = 1.01  # room for audio a little longer than declared, before the buffer must grow
PARENT_SIGNAL = signal.SIGUSR1
PR_SET_PDEATHSIG = 1

log = logging.getLogger("ttservice.worker")


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


class ParentWatch(threading.Thread):
    """Ends a foreground job when the command that started it is gone, even after a SIGKILL."""

    def __init__(self, store: Store, job_id: int, parent: int, interval: float, wakeup: int) -> None:
        super().__init__(name="parent-watch", daemon=True)
        self.store, self.job_id, self.parent, self.interval = store, job_id, parent, interval
        self.wakeup = wakeup

    @classmethod
    def arm(cls, store: Store, job_id: int, interval: float) -> ParentWatch | None:
        """In the main thread: have the kernel signal us when the parent dies, and watch for it.

        Native thread pools (OpenBLAS, CTranslate2) may receive the signal, so it
        gets a Python handler, whose C part wakes this thread through a pipe
        whichever thread it lands on.
        """
        parent = os.environ.get(WORKER_PARENT_ENV)
        if not parent:
            return None
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.signal(PARENT_SIGNAL, lambda signum, frame: None)
        signal.set_wakeup_fd(write_end)
        die_with_parent(PARENT_SIGNAL)
        return cls(store, job_id, int(parent), interval, read_end)

    def run(self) -> None:
        # Checked after arming too: the parent may have died before prctl took effect.
        while os.getppid() == self.parent:
            ready, _, _ = select.select([self.wakeup], [], [], self.interval)
            if ready:
                os.read(self.wakeup, 512)
        reason = f"Interrupted because the ttservice command that ran it (pid {self.parent}) ended."
        log.warning("%s", reason)
        try:
            self.store.transition(self.job_id, JobStatus.INTERRUPTED, error_message=reason)
        except TTServiceError as error:
            log.error("the job's end could not be recorded: %s", error)
        logging.shutdown()
        os._exit(EXIT_ABANDONED)


def die_with_parent(sig: int) -> None:
    """Have the kernel send `sig` when the parent dies (Linux; 0 undoes it)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def _trim_heap() -> None:
    """Give the C heap's free memory back to the system (glibc), so that RSS shows what is used."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass  # not glibc


def check_disk(store: Store, handler: JobLogHandler | None) -> None:
    """Fail the job once its log or the database could not be written: it must not run blind.

    The store has already freed its reserve by then, so recording the failure finds room.
    """
    if store.disk_full is not None:
        raise store.disk_full
    error = handler.write_error if handler else None
    if error is None:
        return
    if error.errno == errno.ENOSPC:
        store.release_reserve()
        raise TTServiceError("The disk is full, so the job's log could not be written; free some space.")
    raise TTServiceError(f"The job's log could not be written: {error.strerror or error}.")


def transcribe_job(
    store: Store,
    settings: Settings,
    job_id: int,
    handler: JobLogHandler | None = None,
    warm: FasterWhisperEngine | None = None,
) -> int:
    job = store.get_job(job_id)
    options = job.options
    info = audio.probe(job.media_path or "", settings.max_upload_bytes)
    resume = ResumePoint.from_segments(store.segments(job_id))
    # The media decodes, and its speech is found, while the model loads and while the
    # first windows are decoded: the first text waits for neither. The model loads here,
    # in the main thread, where it is used: loaded in another thread it cost ~30 MB more
    # RSS (malloc arenas).
    if warm is not None and not warm.serves(options):
        warm.unload()  # the job's own model is loaded below
        warm = None
    log.info("Decoding %s (%.1f MB); %s model %s (%s)", job.filename, info.size / 2**20,
             "loaded" if warm else "loading", options.model, options.compute_type)  # fmt: skip
    decoded = GrowingAudio(int((info.declared_duration or 0) * SAMPLE_RATE * CAPACITY_MARGIN))

    def decode() -> None:
        try:
            audio.decode_into(info, decoded)
        finally:  # whatever happened, nobody may wait for more samples
            if not decoded.done:
                decoded.finish(TTServiceError(f"Decoding {info.path.name} stopped unexpectedly."))
        _trim_heap()  # decoding in its own thread leaves a malloc arena of freed memory (~20 MB)

    threads = ThreadPoolExecutor(2, thread_name_prefix="decode")
    threads.submit(decode)
    preparing = threads.submit(FasterWhisperEngine.prepare, decoded, options, resume, info.declared_duration)
    threads.shutdown(wait=False)
    engine = warm or FasterWhisperEngine(options)
    prepared = preparing.result()
    duration = prepared.duration
    offset = resume.after if resume else 0.0
    language = options.language or (job.detected_language if resume else None)
    store.set_media_info(job_id, duration, language)
    log.info("Audio: %s long", clock(duration))
    started = time.monotonic()
    if resume:
        log.info("Resuming after the last saved segment, at %s", clock(offset))
    segments, info_ = engine.transcribe(prepared, replace(options, language=language), resume)
    store.set_media_info(job_id, duration, info_.language)
    log.info("Language: %s", info_.language)
    count = 0
    for segment in segments:
        check_disk(store, handler)
        duration = prepared.duration  # the declared length until all of the media is decoded
        chunks = max(1, math.ceil(duration / CHUNK_SECONDS))
        processed = min(segment.end, duration)
        if not store.add_segments(job_id, [segment], processed, processed / duration):
            log.warning("job %s is no longer processing; stopping", job_id)
            return EXIT_ABANDONED
        count += 1
        wall = time.monotonic() - started
        speed = (processed - offset) / wall if wall > 0 else 0.0
        eta = (duration - processed) / speed if speed > 0 else 0.0
        chunk = min(chunks, int(processed // CHUNK_SECONDS) + 1)
        log.info("[%s -> %s] %s", clock(segment.start), clock(segment.end), segment.text)
        log.info("Processing chunk %d/%d - Speed: %.1fx realtime - ETA %s", chunk, chunks, speed, clock(eta))
    check_disk(store, handler)
    duration = prepared.duration
    store.set_media_info(job_id, duration, info_.language)
    store.add_segments(job_id, [], duration, 1.0)
    wall = time.monotonic() - started
    log.info(
        "Done: %d segments, %s of audio in %.1f s (%.1fx realtime)",
        count,
        clock(duration - offset),
        wall,
        (duration - offset) / max(wall, 1e-6),
    )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[0] == STANDBY:
        return standby()
    return run_job(int(argv[0]))


def standby() -> int:
    """The service's warm worker: load the default model, then wait for a job id on stdin."""
    die_with_parent(signal.SIGKILL)  # no job yet, nothing to record: go with the service
    settings = Settings.from_env()
    try:
        warm = FasterWhisperEngine(TranscribeOptions.from_settings(settings))
    except TTServiceError as error:
        warm = None  # the job loads its own model and records why it cannot
        print(f"Default model not loaded: {error}", flush=True)
    print(STANDBY_READY, flush=True)
    line = sys.stdin.readline()  # empty: the service shut down or died
    if not line.strip():
        return EXIT_OK
    die_with_parent(0)  # a job outlives a crashed service, like every service worker
    return run_job(int(line), settings, warm)


def run_job(job_id: int, settings: Settings | None = None, warm: FasterWhisperEngine | None = None) -> int:
    settings = settings or Settings.from_env()
    handler = JobLogHandler(
        job_log_path(settings.log_dir, job_id),
        settings.log_max_bytes,
        settings.log_backup_count,
        capture_std=True,
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    store = Store.from_settings(settings)
    watch = ParentWatch.arm(store, job_id, settings.heartbeat_interval)
    if watch is not None:
        watch.start()
    heartbeat = Heartbeat(store, job_id, settings.heartbeat_interval)
    heartbeat.start()
    log.info("Worker pid %d started for job %d", os.getpid(), job_id)
    try:
        code = transcribe_job(store, settings, job_id, handler, warm)
        reason = None
    except MediaError as error:
        code, reason = EXIT_BAD_INPUT, str(error)
    except TTServiceError as error:
        code, reason = EXIT_FAILED, str(error)
    except Exception as error:  # the traceback goes to the log; the job gets one sentence
        log.exception("unexpected error")
        code, reason = EXIT_FAILED, f"Unexpected error: {type(error).__name__}: {error}"
    heartbeat.done.set()
    if reason is not None:
        log.error("%s", reason)
    for attempt in range(2):  # a disk-full error frees the store's reserve, so once more succeeds
        try:
            if code == EXIT_OK:
                if not store.transition(job_id, JobStatus.COMPLETED, exit_code=0):
                    code = EXIT_ABANDONED
            elif reason is not None:
                store.transition(job_id, JobStatus.FAILED, error_message=reason, exit_code=code)
            break
        except TTServiceError as error:
            log.error("the job's end could not be recorded: %s", error)
            if attempt:
                code = EXIT_FAILED
    log.info("Worker exiting with code %d", code)
    logging.shutdown()
    return code


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is committed and the log is closed: skip the interpreter's teardown
    # (the model's destructors and native thread pools, ~0.15 s), as multiprocessing does.
    os._exit(exit_code)
