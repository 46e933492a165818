"""The service's warm worker: one worker process started ahead of need.

`python -m ttservice.supervision.worker --standby` imports everything and loads the default
model, then waits for a job id on its stdin (see `worker.standby`). The next job
the service starts goes to it, which saves the ~1 s a new worker takes to start,
import and load. Until it has a job it dies with the service (PR_SET_PDEATHSIG
and the end of its stdin); from then on it is a worker like any other.

Left unused for TTSERVICE_WARM_IDLE_SECONDS it is ended, which gives back all of
its memory (the model and the imports, ~240 MB for tiny.en); none is started
again until a job starts (the demand), DELAY s after it.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
import time

import psutil

from ..config import AHEAD, READY_FD_ENV, STANDBY, Settings
from . import proctree
from .waiting import wait_readable

log = logging.getLogger(__name__)

RETRY = 30.0  # seconds before a warm worker that exited on its own is started again
# Seconds after a job starts before the next warm worker is: its start takes ~1.5 s of CPU,
# which delayed the first text of the job just started by ~0.5 s on 2 cores.
DELAY = 10.0


class WarmWorker:
    """Keeps at most one warm worker; the ProcessManager hands it jobs."""

    def __init__(
        self, settings: Settings, env: dict[str, str], log_name: str = "standby.log", mode: str = STANDBY
    ) -> None:
        self.log_path = settings.log_dir / log_name
        self._mode = mode  # STANDBY, or AHEAD (no model)
        self._env = env
        self._idle = settings.warm_idle_seconds  # 0: kept however long it waits
        self._process: subprocess.Popen | None = None
        self._ready_fd: int | None = None  # the waiting one writes here once it has loaded its model
        self._ready = False
        self._started = 0.0  # monotonic time the waiting one was started
        self._after = 0.0  # monotonic time before which none is started
        self._dormant = False  # ended for being idle, or for the jobs' memory: none until a job starts
        self._spawned = False  # whether this one ever started a worker: only then is the log its own
        self._lock = threading.Lock()

    def keep(self, slot_free: bool, threads: int = 0) -> None:
        """Have one waiting while a slot is free (so that its start never slows a running job),
        its model loaded with `threads` CPU threads (0: the settings')."""
        with self._lock:
            process = self._process
            if process is not None and process.poll() is not None:  # it exited with no job
                log.warning("the warm worker exited with %s", process.returncode)
                self._after, self._process, process = time.monotonic() + RETRY, None, None
                self._forget_readiness()
            now = time.monotonic()
            if process is not None and self._idle > 0 and now - self._started > self._idle:
                log.info("the warm worker waited %.0f s unused; ending it to free its memory", self._idle)
                self._process, self._dormant = None, True
                self._forget_readiness()
                _end(process)
                self.log_path.unlink(missing_ok=True)
                return
            if process is not None or self._dormant or now < self._after or not slot_free:
                return
            self.log_path.unlink(missing_ok=True)
            self._forget_readiness()
            read_end, write_end = os.pipe()
            try:
                self._process = proctree.spawn(
                    [sys.executable, "-m", "ttservice.supervision.worker", self._mode],
                    self.log_path,
                    self._env | {READY_FD_ENV: str(write_end)} | threads_env(threads),
                    stdin=subprocess.PIPE,
                    pass_fds=(write_end,),
                )
                self._started, self._ready_fd, self._spawned = now, read_end, True
            except OSError as error:
                log.warning("the warm worker could not be started: %s", error)
                self._after = time.monotonic() + RETRY
                os.close(read_end)
            finally:
                os.close(write_end)

    def hand(self, job_id: int, attempt: int) -> subprocess.Popen | None:
        """Give it the job's attempt; None if there is none, or it is gone."""
        with self._lock:
            process, self._process = self._process, None
            self._forget_readiness()
        if process is None or process.poll() is not None:
            return None
        try:
            process.stdin.write(f"{job_id} {attempt}\n".encode())
            process.stdin.close()
        except OSError:  # it died just now
            _end(process)
            return None
        return process

    def hold_off(self) -> None:
        """A job has just started: no new warm worker for DELAY s (then one, even after an idle end)."""
        with self._lock:
            self._after = max(self._after, time.monotonic() + DELAY)
            self._dormant = False

    def ready(self) -> bool:
        """True when one has loaded its model and waits for a job (it said so on its pipe)."""
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None or self._ready_fd is None:
                return False
            if not self._ready and wait_readable([self._ready_fd], 0):
                self._ready = os.read(self._ready_fd, 16) == b"ready\n"
            return self._ready

    def taken_mb(self) -> float:
        """The memory the waiting one takes (RSS, MB); 0 when there is none."""
        with self._lock:
            process = self._process
        if process is None or process.poll() is not None:
            return 0.0
        try:
            return proctree.rss_mb(psutil.Process(process.pid))  # our unreaped child: its PID is its own
        except psutil.Error:
            return 0.0

    def stop(self, until_next_job: bool = False) -> None:
        """End the waiting one; with `until_next_job`, none is started again until a job starts
        (its memory was needed by the running ones)."""
        with self._lock:
            process, self._process = self._process, None
            self._forget_readiness()
            self._dormant = self._dormant or until_next_job
        if process is not None:
            _end(process)
        if self._spawned:  # a manager that never started one leaves the service's standby.log be
            self.log_path.unlink(missing_ok=True)

    def _forget_readiness(self) -> None:
        if self._ready_fd is not None:
            os.close(self._ready_fd)
        self._ready_fd, self._ready = None, False


_ahead: WarmWorker | None = None  # the worker this command started ahead of its job


def start_ahead() -> None:
    """`ttservice transcribe`'s worker, started before the command imports and checks the request
    (0.3 s), to do meanwhile what every job does before its model (`pipeline.warm_up`); the
    command's ProcessManager takes it (`take_ahead`) and hands it the job, which loads its model
    while its media decodes, as in a worker started then. Until it has the job it dies with the
    command (its stdin, PR_SET_PDEATHSIG, and the command's exit); after, as a foreground worker
    does. Not with TTSERVICE_WARM_WORKER=0, and never the reason a command fails: a setting it
    cannot read, or a process it cannot start, is the command's to report."""
    global _ahead
    from ..config import WORKER_PARENT_ENV
    from ..exceptions import TTServiceError
    from .supervisor import worker_env

    try:
        settings = Settings.from_env()
        if not settings.warm_worker:
            return
        settings.log_dir.mkdir(parents=True, exist_ok=True)
    except (TTServiceError, OSError):
        return
    env = worker_env(settings) | {WORKER_PARENT_ENV: str(os.getpid())}
    worker = WarmWorker(settings, env, f"ahead_{os.getpid()}.log", AHEAD)
    worker.keep(slot_free=True)  # one it cannot start is logged, and the job starts its own
    atexit.register(worker.stop)
    _ahead = worker


def take_ahead() -> WarmWorker | None:
    """The worker `start_ahead` started in this process, once."""
    global _ahead
    worker, _ahead = _ahead, None
    return worker


def threads_env(threads: int) -> dict[str, str]:
    return {"TTSERVICE_CPU_THREADS": str(threads)} if threads else {}


def _end(process: subprocess.Popen) -> None:
    """A warm worker has no job and nothing to save: kill it and reap it."""
    process.kill()  # our unreaped child, so the PID is still its own
    process.wait()
    if process.stdin is not None:
        process.stdin.close()
