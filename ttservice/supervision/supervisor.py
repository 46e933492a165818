"""The one way a process is supervised here, whatever it does.

A `Supervisor` starts a process in a session and group of its own (its PID and create time
recorded by its caller, the identity every later signal is checked against), watches it (an
exit descriptor where the system has one, opened before anything can reap it), stops it by
escalation of its whole group (TERM, the grace, KILL) and reaps it, and hands back how it
ended. What a process is *for* stays with its kind: a job's worker (`ProcessManager`), a
model's download (`ModelDownloads`), and whatever comes next (a conversion, a labelling), each
with a Supervisor of its own and its own rows in the store. The monitor sleeps on every
supervisor's descriptors at once.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from ..config import SETTINGS, Settings
from ..exceptions import StoreError
from ..jobs import JobStatus, Store
from ..messages import Message, Said
from . import proctree
from .children import Children

log = logging.getLogger(__name__)

STORE_WAIT = 5.0  # seconds a shutdown waits for the store to answer before it stops processes unrecorded
REAP_WAIT = 5.0  # seconds a stopped child of ours gets to be reaped after its group was killed


def worker_env(settings: Settings, secrets: bool = False) -> dict[str, str]:
    """The environment of a supervised process: ours, with these settings made explicit (the API
    keys only with `secrets`: a worker has no use for them)."""
    hidden = {s.env for s in SETTINGS if s.secret and not secrets}
    return {k: v for k, v in os.environ.items() if k not in hidden} | settings.environment(secrets)


class Supervisor:
    def __init__(self, kill_grace: float, watching: Callable[[], None] = lambda: None) -> None:
        self.children = Children()
        self.kill_grace = kill_grace
        self._watching = watching  # told when a process is added: the monitor sleeps on it from now on

    def spawn(
        self, key: int, cmd: Sequence[str], log_path: Path, env: dict[str, str], attempt: int | None = None
    ) -> subprocess.Popen:
        """Start `cmd` in a group of its own, its output in `log_path`, and watch it (OSError if it
        cannot be started)."""
        process = proctree.spawn(cmd, log_path, env)
        self.watch(key, process, attempt)
        return process

    def watch(self, key: int, process: subprocess.Popen, attempt: int | None = None) -> None:
        """Watch a child started elsewhere (the warm worker handed its job)."""
        self.children.add(key, process, attempt)
        self._watching()

    def stop(self, key: int, proc: psutil.Process | None) -> int | None:
        """Stop `proc` (found by an identity check, or None if it is gone) and its whole group by
        escalation, stop watching `key`, and return our child's exit code if it was ours and ended."""
        if proc is not None:
            proctree.kill_tree(proc, self.kill_grace, self.children.reap)
        process = self.children.forget(key)
        if process is None:
            return None
        try:
            return process.wait(timeout=REAP_WAIT)
        except subprocess.TimeoutExpired:
            return None

    def stop_all(
        self, store: Store, stop: Callable[[int], object], kind: str, answers: bool | None = None
    ) -> None:
        """On shutdown, stop every process watched: each by `stop`, which records it in `store`.
        Where the store does not answer (its server away or cut off: `answers`, else asked
        here), or stops answering, the rest are stopped by signals alone and their rows left as
        they are: the sweep of a machine whose store answers finds them silent after the orphan
        timeout, as it finds a machine's that lost its power. A database that does not answer
        delays a shutdown by STORE_WAIT seconds, not by a wait for each statement."""
        keys = self.children.job_ids()
        if keys and answers is None:
            answers = store.answers(STORE_WAIT)
        for key in keys:
            if answers:
                try:
                    stop(key)
                    continue
                except StoreError as error:
                    answers = False
                    log.warning("%s %s: %s", kind, key, error)
            log.warning("%s %s: stopped, not recorded (the database does not answer)", kind, key)
            self.stop(key, self.children.process(key))

    def stop_silent(self, proc: psutil.Process) -> None:
        """The sweep's stop of a process that went silent (not necessarily ours to reap)."""
        proctree.kill_tree(proc, self.kill_grace, self.children.reap)

    def wait_fds(self) -> tuple[list[int], bool]:
        return self.children.wait_fds()


def ended(
    stop_asked: bool, stop_why: Said | None, failure: Message, stopped: Message
) -> tuple[JobStatus, Said]:
    """How a supervised process that is gone without recording its end ended: cancelled, with the
    stop's reason (`stopped` if it gave none), if a stop was asked; else failed with `failure`."""
    if stop_asked:
        return JobStatus.CANCELLED, stop_why or stopped
    return JobStatus.FAILED, failure
