"""The worker processes one ProcessManager watches, under one lock.

Two kinds: its own children (a `Popen`, with an exit descriptor (`platform.exit_fd`:
a pidfd, or a kqueue on macOS) opened at spawn, before anything can reap the
child and free its PID for reuse), and adopted workers
(live workers of service jobs that an earlier service started before it
crashed: not our children, so watched by identity instead of by wait()).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import NamedTuple

import psutil

from ..platform import exit_fd, oom_kills
from . import proctree

CPU_PRIME_SECONDS = 0.1  # a first look at a tree waits this long, so that its CPU % means something


class Exited(NamedTuple):
    """One of our children that has ended."""

    job_id: int
    process: subprocess.Popen
    attempt: int | None
    out_of_memory: bool  # killed by SIGKILL while the kernel's OOM killer killed: it was the one


class Children:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._popen: dict[int, subprocess.Popen] = {}
        self._exit_fds: dict[int, int] = {}
        self._adopted: dict[int, psutil.Process] = {}
        self._attempts: dict[int, int] = {}  # the attempt of the job each one runs, where known
        self._oom_kills: dict[int, int] = {}  # the kernel's count of OOM kills when each child started
        # psutil objects kept between looks, so that cpu_percent measures the time since the last
        self._metric_procs: dict[int, list[psutil.Process]] = {}

    def add(self, job_id: int, process: subprocess.Popen, attempt: int | None = None) -> None:
        fd, kills = exit_fd(process.pid), oom_kills()
        with self._lock:
            self._popen[job_id] = process
            if fd is not None:
                self._exit_fds[job_id] = fd
            if kills is not None:
                self._oom_kills[job_id] = kills
            if attempt is not None:
                self._attempts[job_id] = attempt

    def adopt(self, job_id: int, proc: psutil.Process, attempt: int | None = None) -> bool:
        """Watch a live worker we did not start; False if it is watched already."""
        with self._lock:
            if job_id in self._popen or job_id in self._adopted:
                return False
            self._adopted[job_id] = proc
            if attempt is not None:
                self._attempts[job_id] = attempt
            return True

    def attempt(self, job_id: int) -> int | None:
        """The attempt of the job that its watched worker runs, where known."""
        with self._lock:
            return self._attempts.get(job_id)

    def watches(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._popen or job_id in self._adopted

    def child(self, job_id: int) -> subprocess.Popen | None:
        with self._lock:
            return self._popen.get(job_id)

    def live_child(self, job_id: int) -> psutil.Process | None:
        """Our own unreaped, running child for the job: its PID is still its own."""
        child = self.child(job_id)
        if child is None or child.poll() is not None:
            return None
        return psutil.Process(child.pid)

    def process(self, job_id: int) -> psutil.Process | None:
        """The job's running worker as watched: our live child, or the adopted worker."""
        with self._lock:
            adopted = self._adopted.get(job_id)
        return adopted if adopted is not None and proctree.is_alive(adopted) else self.live_child(job_id)

    def exit_fd(self, job_id: int) -> int | None:
        """An exit descriptor of the job's child that the caller owns (and closes), or None."""
        with self._lock:
            fd = self._exit_fds.get(job_id)
            return os.dup(fd) if fd is not None else None

    def own_ids(self) -> set[int]:
        with self._lock:
            return set(self._popen)

    def job_ids(self) -> list[int]:
        with self._lock:
            return [*self._popen, *self._adopted]

    def __len__(self) -> int:
        with self._lock:
            return len(self._popen) + len(self._adopted)

    def wait_fds(self) -> tuple[list[int], bool]:
        """The exit descriptors to sleep on, and whether some watched process has none (look again soon)."""
        with self._lock:
            fds = list(self._exit_fds.values())
            return fds, len(self._popen) > len(fds) or bool(self._adopted)

    def reap(self) -> None:
        with self._lock:
            for process in self._popen.values():
                process.poll()

    def forget(self, job_id: int) -> subprocess.Popen | None:
        """Stop watching the job's worker; return our child for it, if it was one."""
        with self._lock:
            fd = self._exit_fds.pop(job_id, None)
            if fd is not None:
                os.close(fd)
            self._metric_procs.pop(job_id, None)
            self._adopted.pop(job_id, None)
            self._attempts.pop(job_id, None)
            self._oom_kills.pop(job_id, None)
            return self._popen.pop(job_id, None)

    def collect_exited(self) -> tuple[list[Exited], list[tuple[int, int | None]]]:
        """Forget the workers that have ended: our children, and (job, attempt) of adopted ones."""
        with self._lock:
            exited = [self._exited(j, p) for j, p in self._popen.items() if p.poll() is not None]
            ended = [(j, self._attempts.get(j)) for j, p in self._adopted.items() if not proctree.is_alive(p)]
            for job_id in [e.job_id for e in exited] + [j for j, _ in ended]:
                self.forget(job_id)
        return exited, ended

    def _exited(self, job_id: int, process: subprocess.Popen) -> Exited:
        before = self._oom_kills.get(job_id)
        killed = process.returncode == -signal.SIGKILL and before is not None
        return Exited(job_id, process, self._attempts.get(job_id), killed and (oom_kills() or 0) > before)

    def drop_metrics(self, job_id: int) -> None:
        with self._lock:
            self._metric_procs.pop(job_id, None)

    def metric_tree(self, job_id: int, leader: psutil.Process) -> list[psutil.Process]:
        """The worker's process tree, with the psutil objects of the previous look where they match."""
        fresh = proctree.tree(leader)
        with self._lock:
            cached = self._metric_procs.get(job_id)
            if cached is not None:
                known = {p: p for p in cached}
                procs = [known.get(p, p) for p in fresh]
                self._metric_procs[job_id] = procs
                return procs
        proctree.metrics(fresh)  # the first look primes the CPU counters
        time.sleep(CPU_PRIME_SECONDS)
        with self._lock:
            self._metric_procs[job_id] = fresh
        return fresh
