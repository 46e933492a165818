"""The job process: `python -m ttservice.supervision.worker JOB_ID`.

It runs the job's transcription (`transcription.pipeline`, which commits every
segment with the job's progress as it goes) while a thread writes the heartbeat,
then records how the job ended. SIGTERM keeps Python's default action (exit at
once, ~20 ms) instead of a handler that would wait for the current 30-second
decoding window: everything worth keeping is already committed, so a prompt
stop loses nothing.

A worker started by a foreground command (`ttservice transcribe`) ends with that
command: on Linux the kernel signals it when its parent dies (PR_SET_PDEATHSIG),
elsewhere it notices its parent is gone at the next check; either way it records
the job as interrupted before it exits. Workers of the service have no such tie,
so they outlive a crashed service and are adopted by the next one.

`python -m ttservice.supervision.worker --standby` is the service's warm worker:
it imports everything and loads the default model, then waits for a job id on
stdin. It dies with the service until it has one (PR_SET_PDEATHSIG, and end of
file on stdin); from then on it is a worker like any other.

Exit codes: 0 completed, 1 failed, 2 bad input, 3 the job was finished elsewhere.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from ..config import STANDBY, STANDBY_READY, WORKER_PARENT_ENV, Settings
from ..exceptions import MediaError, TTServiceError
from ..jobs import JobStatus, Store, TranscribeOptions, open_store
from ..jobs.logs import JobLogHandler, job_log_path
from ..platform import die_with_parent, wait_readable
from ..transcription.engine import FasterWhisperEngine
from ..transcription.pipeline import transcribe_job

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ABANDONED = 0, 1, 2, 3
PARENT_SIGNAL = signal.SIGUSR1

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
            if wait_readable([self.wakeup], self.interval):
                os.read(self.wakeup, 512)
        reason = f"Interrupted because the ttservice command that ran it (pid {self.parent}) ended."
        log.warning("%s", reason)
        try:
            self.store.transition(self.job_id, JobStatus.INTERRUPTED, error_message=reason)
        except TTServiceError as error:
            log.error("the job's end could not be recorded: %s", error)
        logging.shutdown()
        os._exit(EXIT_ABANDONED)


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
    store = open_store(settings)
    watch = ParentWatch.arm(store, job_id, settings.heartbeat_interval)
    if watch is not None:
        watch.start()
    heartbeat = Heartbeat(store, job_id, settings.heartbeat_interval)
    heartbeat.start()
    log.info("Worker pid %d started for job %d", os.getpid(), job_id)
    try:
        code = EXIT_OK if transcribe_job(store, settings, job_id, handler, warm) else EXIT_ABANDONED
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
