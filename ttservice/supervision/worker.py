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
file on stdin); from then on it is a worker like any other. `--ahead` is the same
without the model: `ttservice transcribe` starts it before it checks the request, and
the job, handed to it a moment later, loads its model while its media decodes.

Exit codes: 0 completed, 1 failed, 2 bad input, 3 the job was finished elsewhere.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from functools import partial

from .. import platform
from ..config import AHEAD, READY_FD_ENV, STANDBY, STANDBY_READY, Settings
from ..exceptions import MediaError, RequestError, TTServiceError
from ..jobs import JobStatus, Store, TranscribeOptions, open_store
from ..jobs.logs import LogShipper, job_log_path
from ..messages import Message
from ..platform import die_with_parent
from ..transcription.engine import Engine, engine_class, for_job
from ..transcription.pipeline import transcribe_job, warm_up
from . import lifeline
from .lifeline import EXIT_ABANDONED, EXIT_FAILED, EXIT_OK

log = logging.getLogger("ttservice.worker")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    settings = Settings.from_env()
    platform.lower_priority(settings.worker_nice)  # before the model's threads start
    if argv[0] in (STANDBY, AHEAD):
        return standby(settings, load=argv[0] == STANDBY)
    return run_job(int(argv[0]), settings, attempt=int(argv[1]) if len(argv) > 1 else None)


def standby(settings: Settings, load: bool) -> int:
    """The service's warm worker: load the default model and the speech finder's (with `load`;
    else only the imports every job needs before its model, `warm_up`: a command's worker
    started ahead has its job at once, and the speech finder's model loads beside the job's),
    then wait for a job id on stdin."""
    die_with_parent(signal.SIGKILL)  # no job yet, nothing to record: go with whoever started it
    warm = None
    warm_up(speech_model=load)
    try:
        if load:
            # Its threads are its share as the next job: the service sets TTSERVICE_CPU_THREADS so.
            options = TranscribeOptions.from_settings(settings)
            warm = engine_class(for_job(options))(options)
    except TTServiceError as error:  # the job loads its own model and records why it cannot
        print(f"Default model not loaded: {error}", flush=True)
    print(STANDBY_READY, flush=True)
    ready = os.environ.pop(READY_FD_ENV, None)  # the service's end of it: we wait for a job
    if ready is not None:
        try:
            os.write(int(ready), b"ready\n")
        except BrokenPipeError:  # it handed us a job before we were ready: nobody asks any more
            pass
        os.close(int(ready))
    line = sys.stdin.readline().split()  # empty: the service shut down or died
    if not line:
        return EXIT_OK
    die_with_parent(0)  # a job outlives a crashed service, like every service worker
    return run_job(int(line[0]), settings, warm, attempt=int(line[1]), ahead=True)


def run_job(
    job_id: int,
    settings: Settings | None = None,
    warm: Engine | None = None,
    attempt: int | None = None,
    ahead: bool = False,
) -> int:
    """Run `attempt` of the job (the one claimed for this worker; without it, the latest); `ahead`:
    the worker was started before it had the job (a warm worker), as its log says."""
    settings = settings or Settings.from_env()
    handler = lifeline.log_into(job_log_path(settings.log_dir, job_id), settings)
    store = open_store(settings)
    if attempt is None:
        attempt = store.get_job(job_id).attempt

    shipper = copy_log(store, settings, job_id, attempt)

    def orphaned(reason: Message) -> None:
        store.transition(job_id, JobStatus.INTERRUPTED, attempt=attempt, error_message=reason)

    def failed(reason: Message) -> None:
        store.transition(
            job_id, JobStatus.FAILED, attempt=attempt, error_message=reason, exit_code=EXIT_FAILED
        )

    def beat() -> bool:
        alive = store.heartbeat(job_id, attempt=attempt)
        if alive and shipper is not None:
            ship(shipper)
        return alive

    heartbeat = lifeline.start(settings, beat, orphaned, f"job {job_id}", failed)
    since = "started ahead, runs" if ahead else "started for"
    log.info("Worker pid %d %s job %d (attempt %d)", os.getpid(), since, job_id, attempt)
    for warning in store.get_job(job_id).warnings:
        log.warning("%s", warning)

    def work() -> int:
        return EXIT_OK if transcribe_job(store, settings, job_id, handler, warm, attempt) else EXIT_ABANDONED

    code, reason = lifeline.outcome(work, bad_input=(MediaError, RequestError))
    heartbeat.done.set()
    if reason is not None:
        log.error("%s", reason)
    peak = platform.peak_rss_mb()
    log.info("Peak memory: %.0f MB", peak)
    try:
        store.set_peak_memory(job_id, peak, attempt=attempt)
    except TTServiceError as error:
        log.warning("the peak memory could not be recorded: %s", error)
    for retry in range(2):  # a disk-full error frees the store's reserve, so once more succeeds
        try:
            if code == EXIT_OK:
                if not store.transition(job_id, JobStatus.COMPLETED, attempt=attempt, exit_code=0):
                    code = EXIT_ABANDONED
            elif reason is not None:
                store.transition(
                    job_id, JobStatus.FAILED, attempt=attempt, error_message=reason, exit_code=code
                )
            break
        except TTServiceError as error:
            log.error("the job's end could not be recorded: %s", error)
            if retry:
                code = EXIT_FAILED
    log.info("Worker exiting with code %d", code)
    logging.shutdown()
    if shipper is not None:
        ship(shipper, final=True)
    return code


def copy_log(store: Store, settings: Settings, job_id: int, attempt: int) -> LogShipper | None:
    """On a shared store, what copies this run's log into it as it grows (every heartbeat):
    the other machines cannot read this machine's file."""
    if not settings.database_url:
        return None
    host = settings.host_name or platform.node_name()
    send = partial(store.append_log, job_id, attempt)
    return LogShipper(job_log_path(settings.log_dir, job_id), send, settings.log_max_bytes, host)


def ship(shipper: LogShipper, final: bool = False) -> None:
    try:
        shipper.ship(final)
    except TTServiceError as error:  # the database is away: the lines go with the next beat
        log.warning("the log could not be copied to the database: %s", error)


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is committed and the log is closed: skip the interpreter's teardown
    # (the model's destructors and native thread pools, ~0.15 s), as multiprocessing does.
    os._exit(exit_code)
