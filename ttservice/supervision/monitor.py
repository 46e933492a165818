"""A manager's monitoring thread: it sleeps until something happens, then does what is due.

It knows nothing of jobs or downloads. It is given how to record the processes that ended
(`collect`), the exit descriptors to sleep on (`wait_fds`), and its duties: what to do now and
then (the orphan check, the housekeeping, the renewal of this machine's contact, ...), each
every so many seconds, or at once when the database changed, or at every turn. It wakes when a
watched process exits, when a process is added (`wake.ring()`), when a job is queued for the
service (the store's bell), at shutdown, or when the next duty is due.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from ..exceptions import StoreUnavailable
from ..jobs.store import Wakeup
from .waiting import Interrupt, wait_readable

log = logging.getLogger(__name__)

# Seconds between looks for exited processes where some have no exit descriptor, and (for the
# service, where the store has no queue bell) for queued jobs.
MONITOR_POLL = 0.1


@dataclass
class Duty:
    """Something the monitor does: every `every` seconds (None: at every turn, which it never
    wakes up for), and also as soon as `changed()` (a mark of the database) moves; only while
    `wanted()`, whose due time alone counts when the monitor chooses how long to sleep."""

    name: str
    run: Callable[[], object]
    every: float | None
    changed: Callable[[], Hashable] | None = None
    wanted: Callable[[], bool] = lambda: True
    first: float = 0.0  # seconds after the start before its first run
    due: float = field(default=0.0, init=False)
    mark: Hashable | None = field(default=None, init=False)


class Monitor:
    def __init__(self, collect: Callable[[], None], wait_fds: Callable[[], tuple[list[int], bool]]) -> None:
        self.collect, self.wait_fds = collect, wait_fds
        self.wake = Interrupt()  # set: stop; rung: a process was added
        self.turns = 0  # turns done: whoever waits for the monitor to have looked counts them
        self._thread: threading.Thread | None = None

    def start(
        self,
        duties: list[Duty],
        listen: Callable[[], Wakeup | None] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        """Run in a thread: `on_start` once, then the duties; `listen` gives the bell rung when
        a job is queued (polled every MONITOR_POLL where it gives none)."""
        if self._thread is not None:
            return
        self.wake.clear()
        self._thread = threading.Thread(
            target=self._run, args=(duties, listen, on_start), name="ttservice-monitor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self, duties: list[Duty], listen, on_start) -> None:
        if on_start is not None:
            try:
                on_start()
            except Exception:
                log.exception("the monitor's start failed")
        bell = listen() if listen is not None else None
        started = time.monotonic()
        for duty in duties:
            duty.due = started + duty.first
        try:
            self._loop(duties, bell, poll=listen is not None and bell is None)
        finally:
            if bell is not None:
                bell.close()

    def _loop(self, duties: list[Duty], bell: Wakeup | None, poll: bool) -> None:
        while not self.wake.is_set():
            try:
                self.collect()
                for duty in duties:
                    self._maybe(duty, time.monotonic())
            except Exception:  # a monitor that dies silently would be worse than a logged error
                log.exception("process monitor iteration failed")
            self.turns += 1
            due = [d.due for d in duties if d.every is not None and d.wanted()]
            timeout = (min(due) if due else time.monotonic() + 1.0) - time.monotonic()
            self.wait_for_event(min(timeout, MONITOR_POLL) if poll else timeout, bell)

    @staticmethod
    def _maybe(duty: Duty, now: float) -> None:
        if not duty.wanted():
            return
        mark = duty.changed() if duty.changed is not None else None
        if duty.every is not None and now < duty.due and mark == duty.mark:
            return
        duty.mark = mark
        if duty.every is not None:
            duty.due = now + duty.every
        try:
            duty.run()
        except StoreUnavailable as error:  # the database is away: said in one line, tried again next round
            log.warning("the monitor's %s failed: %s", duty.name, error)
        except Exception:
            log.exception("the monitor's %s failed", duty.name)

    def wait_for_event(self, timeout: float, bell: Wakeup | None = None) -> None:
        """Sleep until a process exits, one is added, a job is queued, shutdown, or `timeout` s pass."""
        self.wake.drain()
        if bell is not None:
            bell.drain()
        if self.wake.is_set():  # set before the drain took its byte
            return
        fds, unwatched = self.wait_fds()
        if unwatched:  # no exit descriptor for some: look again soon
            timeout = min(timeout, MONITOR_POLL)
        wait_readable([self.wake.fileno(), *fds, *([bell.fileno()] if bell else [])], timeout)
