"""What keeps a supervised process honest: its heartbeat, and its tie to the process that started it.

Both run as threads inside a worker or a download process. The heartbeat
writes that the process is alive and ends the process once its row was finished
elsewhere (a Stop, the sweep); the parent watch ends a process whose parent is
gone, after recording why: at once where the kernel signals it
(PR_SET_PDEATHSIG), else at its next check, one heartbeat later.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..config import WORKER_PARENT_ENV, Settings
from ..exceptions import StoreUnavailable, TTServiceError
from ..jobs.logs import JobLogHandler
from ..messages import Message
from ..platform import die_with_parent, wait_readable

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_ABANDONED = 3  # the process's job or download was finished elsewhere
EXIT_CUT_OFF = 4  # no heartbeat could be written for half the orphan timeout: it stopped itself
PARENT_SIGNAL = signal.SIGUSR1

log = logging.getLogger("ttservice.worker")


class Heartbeat(threading.Thread):
    """Calls `beat` every interval; exits the process once it says (False) the row finished
    elsewhere, or once no beat could be written for `give_up` seconds.

    Only a database out of reach (`StoreUnavailable`) counts as being cut off: a process
    cut off that long is about to be judged orphaned (at twice that) and its job run again
    elsewhere, so it stops first, with EXIT_CUT_OFF, so that two never run at once. Any
    other error is a fault of the beat itself: logged at once, and if it lasts `give_up`
    seconds the job fails with it (`failed`), since running it again would meet it again.
    The beats are written by a thread of their own, so that a write that hangs on a lost
    connection cannot hold this watch up.
    """

    def __init__(
        self,
        beat: Callable[[], bool],
        interval: float,
        what: str,
        give_up: float,
        failed: Callable[[Message], None] = lambda reason: None,
    ) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.beat, self.interval, self.what, self.give_up = beat, interval, what, give_up
        self.failed = failed
        self.done = threading.Event()
        self.written = time.monotonic()
        self.fault: tuple[float, Exception] | None = None  # since when the beat has failed, and why

    def run(self) -> None:
        threading.Thread(target=self._write, name="heartbeat-writer", daemon=True).start()
        while not self.done.wait(min(self.interval, self.give_up / 4)):
            now, fault = time.monotonic(), self.fault
            if self.done.is_set():
                break
            if fault is not None:  # the beat's own fault, not the database's reach: no cut-off
                if now - fault[0] > self.give_up:
                    self._fail(fault[1])
            elif now - self.written > self.give_up:
                self._exit(f"no heartbeat could be written for {self.give_up:.0f} s", EXIT_CUT_OFF)

    def _write(self) -> None:
        while not self.done.wait(self.interval):
            try:
                alive = self.beat()
            except StoreUnavailable as error:  # cut off from the database, for now
                log.warning("heartbeat not written: %s", error)
                self.fault = None
                continue
            except Exception as error:
                log.exception("the heartbeat failed")
                if self.fault is None:
                    self.fault = (time.monotonic(), error)
                continue
            self.written, self.fault = time.monotonic(), None
            if not alive and not self.done.is_set():
                self._exit("it is no longer running here")

    def _fail(self, error: Exception) -> None:
        what = f"{type(error).__name__}: {str(error).rstrip('.')}"
        reason = Message("job.heartbeat_failed", seconds=self.give_up, error=what)
        try:
            self.failed(reason)
        except TTServiceError as recording:
            log.error("the failure could not be recorded: %s", recording)
        self._exit(str(reason), EXIT_FAILED)

    def _exit(self, why: str, code: int = EXIT_ABANDONED) -> None:
        log.warning("%s: %s; stopping", self.what, why)
        logging.shutdown()
        os._exit(code)


class ParentWatch(threading.Thread):
    """Ends the process when the one that started it is gone, even after a SIGKILL.

    Armed only where the starter asked for it (WORKER_PARENT_ENV): a foreground
    command's worker, and every download.
    """

    def __init__(
        self, orphaned: Callable[[Message], None], parent: int, interval: float, wakeup: int
    ) -> None:
        super().__init__(name="parent-watch", daemon=True)
        self.orphaned, self.parent, self.interval = orphaned, parent, interval
        self.wakeup = wakeup

    @classmethod
    def arm(cls, orphaned: Callable[[Message], None], interval: float) -> ParentWatch | None:
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
        return cls(orphaned, int(parent), interval, read_end)

    def run(self) -> None:
        # Checked after arming too: the parent may have died before prctl took effect.
        while os.getppid() == self.parent:
            if wait_readable([self.wakeup], self.interval):
                os.read(self.wakeup, 512)
        reason = Message("job.interrupted_command_ended", pid=self.parent)
        log.warning("%s", reason)
        try:
            self.orphaned(reason)
        except TTServiceError as error:
            log.error("the end could not be recorded: %s", error)
        logging.shutdown()
        os._exit(EXIT_ABANDONED)


def outcome(
    work: Callable[[], int], bad_input: tuple[type[TTServiceError], ...] = ()
) -> tuple[int, Message | None]:
    """Run the process's work: its exit code, and why when it failed (the traceback of an
    unexpected error goes to the log, never to the user)."""
    try:
        return work(), None
    except bad_input as error:
        return EXIT_BAD_INPUT, error.message
    except TTServiceError as error:
        return EXIT_FAILED, error.message
    except Exception as error:
        log.exception("unexpected error")
        return EXIT_FAILED, Message("job.unexpected", kind=type(error).__name__, detail=str(error))


def log_into(path: Path, settings: Settings) -> JobLogHandler:
    """Send this process's logging, and its stdout and stderr, to its own rotated log file."""
    handler = JobLogHandler(path, settings.log_max_bytes, settings.log_backup_count, capture_std=True)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    return handler


def start(
    settings: Settings,
    beat: Callable[[], bool],
    orphaned: Callable[[Message], None],
    what: str,
    failed: Callable[[Message], None] = lambda reason: None,
) -> Heartbeat:
    """In the main thread: the parent watch (where the starter asked for one), then the heartbeat."""
    watch = ParentWatch.arm(orphaned, settings.heartbeat_interval)
    if watch is not None:
        watch.start()
    heartbeat = Heartbeat(beat, settings.heartbeat_interval, what, settings.orphan_timeout / 2, failed)
    heartbeat.start()
    return heartbeat
