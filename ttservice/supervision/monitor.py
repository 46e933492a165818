"""The ProcessManager's monitoring thread: it sleeps until something happens.

It wakes when a watched worker exits (`platform.exit_fd`), when a child is added, when a
job is queued for the service (the store's `listen_for_queued`), at shutdown, or
when the next periodic task is due: the orphan sweep, the look for lapsed leases,
(while it runs jobs) the look for stops asked from elsewhere, the renewal of this
machine's last contact, and (for the service) a look for queued jobs. An idle
service wakes once a second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING

from ..jobs.store import Wakeup
from .waiting import Interrupt, wait_readable

if TYPE_CHECKING:
    from .process_manager import ProcessManager

log = logging.getLogger(__name__)

# Seconds between the service's looks for queued jobs (a stat of the database files) and
# for exited workers, where exit descriptors or the store's queue bell are missing. With them, an
# exit or a newly queued job wakes the monitor at once, and it wakes once a second otherwise.
MONITOR_POLL = 0.1
LEASE_CHECK = 1.0  # seconds between looks for lapsed leases
STOP_CHECK = 1.0  # seconds after which stops asked from elsewhere are looked for, changed or not
HOST_SEEN = 30.0  # seconds between renewals of this machine's last contact
DISPATCH_CHECK = 1.0  # seconds after which queued jobs are looked for even if nothing seemed to change


class Monitor:
    """Watches a manager's workers and, with `dispatch` (the service), starts queued jobs."""

    def __init__(self, pm: ProcessManager) -> None:
        self.pm = pm
        self.wake = Interrupt()  # set: stop; rung: a child was added
        self.turns = 0  # iterations done: whoever waits for the monitor to have looked counts them
        self._thread: threading.Thread | None = None

    def start(self, dispatch: bool) -> None:
        if self._thread is not None:
            return
        self.wake.clear()
        self._thread = threading.Thread(
            target=self._run, args=(dispatch,), name="ttservice-monitor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self, dispatch: bool) -> None:
        if dispatch:  # a machine that runs queued jobs: listed in `ttservice hosts` and Statistics
            try:
                self.pm.register_host()
            except Exception:
                log.exception("this machine could not be registered")
        bell = self.pm.store.listen_for_queued() if dispatch else None
        try:
            self._loop(dispatch, bell)
        finally:
            if bell is not None:
                bell.close()

    def _loop(self, dispatch: bool, bell: Wakeup | None) -> None:
        pm = self.pm
        next_sweep = next_housekeeping = next_lease_check = next_dispatch = next_stop_check = 0.0
        next_seen = time.monotonic() + HOST_SEEN
        seen: Hashable | None = None
        stops_seen: Hashable | None = None
        while not self.wake.is_set():
            try:
                pm.collect_exited()
                now = time.monotonic()
                # A stop asked on another machine (or by a command that could not signal) is
                # this manager's to carry out, for the jobs it runs.
                if len(pm.children):
                    mark = pm.store.change_mark()
                    if mark != stops_seen or now >= next_stop_check:
                        stops_seen, next_stop_check = mark, now + STOP_CHECK
                        pm.stop_requested()
                if now >= next_seen:
                    if pm.registered:
                        pm.store.host_seen(pm.host)
                    next_seen = now + HOST_SEEN
                if now >= next_sweep:
                    if dispatch:  # the service: take over what a crashed service left running
                        pm.adopt()
                    housekeeping = now >= next_housekeeping
                    result = pm.cleanup_orphaned_processes(housekeeping=housekeeping)
                    for job_id, why in result.finalized:
                        log.warning("job %s: %s", job_id, why)
                    next_sweep = now + pm.settings.orphan_check_interval
                    if housekeeping:
                        next_housekeeping = now + pm.settings.cleanup_interval
                if dispatch and now >= next_lease_check:
                    pm.stop_lapsed_leases()
                    next_lease_check = now + LEASE_CHECK
                # Queries cost more than the rest of the loop: look for queued jobs and asked-for
                # downloads only when the database has changed (or a second has passed, to be sure),
                # and for queued jobs only while a slot is free.
                if dispatch and ((mark := pm.store.change_mark()) != seen or now >= next_dispatch):
                    seen, next_dispatch = mark, now + DISPATCH_CHECK
                    pm.downloads.start_requested()
                    if pm.slot_free():
                        pm.dispatch()
                if dispatch and pm.settings.warm_worker:
                    pm.warm.keep(pm.slot_free())
            except Exception:  # a monitor that dies silently would be worse than a logged error
                log.exception("process monitor iteration failed")
            self.turns += 1
            due = min(next_sweep, next_seen, *([next_stop_check] if len(pm.children) else []))
            if not dispatch:
                timeout = due - time.monotonic()
            elif bell is None:
                timeout = MONITOR_POLL
            else:  # the next task due; a look for queued jobs only while a slot is free
                due = min(due, next_lease_check)
                timeout = (min(due, next_dispatch) if pm.slot_free() else due) - time.monotonic()
            self.wait_for_event(timeout, bell)

    def wait_for_event(self, timeout: float, bell: Wakeup | None = None) -> None:
        """Sleep until a child exits, a child is added, a job is queued, shutdown, or `timeout` s pass."""
        self.wake.drain()
        if bell is not None:
            bell.drain()
        if self.wake.is_set():  # set before the drain took its byte
            return
        fds, unwatched = self.pm.children.wait_fds()
        download_fds, downloads_unwatched = self.pm.downloads.children.wait_fds()
        fds, unwatched = fds + download_fds, unwatched or downloads_unwatched
        if unwatched:  # no exit descriptor for some: look again soon
            timeout = min(timeout, MONITOR_POLL)
        wait_readable([self.wake.fileno(), *fds, *([bell.fileno()] if bell else [])], timeout)
