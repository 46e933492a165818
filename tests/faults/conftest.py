"""The fault-injection harness: a real service, a stranger process, and the invariants.

Every case injects a fault into real processes running the real model, waits for
the outcome it expects, then calls `invariants.check()`, which verifies:

1. no `processing` row without its live process (checked by pid + create time);
2. no process left of a finished job (its worker and its whole process group);

(1 and 2 hold for model downloads too: their rows and their processes)
3. no signal reached a process that is not ours (a stranger that records signals);
4. no committed segment lost (segments seen earlier are all still there).

The ledger counts faults injected, invariants checked and violations, and the
run ends with that table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ttservice.config import Settings
from ttservice.jobs import JobStatus, Segment, Store, open_store
from ttservice.supervision import proctree

from ..conftest import env_for, make_settings, stop_process, wait_for
from ..ledger import LEDGER, Stranger
from ..speech import SPEECH, synthesize


class Invariants:
    def __init__(self, settings: Settings, stranger: Stranger) -> None:
        self.settings, self.stranger = settings, stranger
        self.store = open_store(settings)
        self.seen: dict[int, list[Segment]] = {}

    def fault(self, name: str) -> None:
        LEDGER.faults.append(name)

    def remember(self, job_id: int) -> list[Segment]:
        """Note the segments committed so far; check() fails if any of them disappears."""
        self.seen[job_id] = self.store.segments(job_id)
        return self.seen[job_id]

    def violations(self) -> list[str]:
        found = []
        rows = [("job", j) for j in self.store.list_jobs(limit=10_000)]
        rows += [("download", d) for d in self.store.list_downloads(limit=10_000)]
        for kind, row in rows:
            identity = (
                proctree.Identity(row.process_id, row.process_create_time)
                if row.process_id and row.process_create_time
                else None
            )
            alive = identity is not None and proctree.find(identity)[0] is not None
            if row.status is JobStatus.PROCESSING and identity is not None and not alive:
                found.append(f"{kind} {row.id} is processing but its process {row.process_id} is gone")
            if row.finished and identity is not None:
                left = _group_left(identity, row.started_at, row.finished_at)
                # The stranger, standing for a PID reused, leads a group of that id: not the job's.
                left = [pid for pid in left if pid != self.stranger.pid]
                if alive or left:
                    found.append(f"{kind} {row.id} is {row.status.value} but processes {left} remain")
        for job_id, before in self.seen.items():
            now = {(s.start, s.end, s.text) for s in self.store.segments(job_id)}
            lost = [s for s in before if (s.start, s.end, s.text) not in now]
            if lost:
                found.append(f"job {job_id} lost {len(lost)} committed segment(s)")
        if problem := self.stranger.untouched():
            found.append(problem)
        return found

    def check(self, settle: float = 5.0) -> None:
        """Check all four invariants; record and fail on any violation.

        A worker that has just recorded its job's end is still exiting, so a
        violation counts only if it lasts `settle` seconds.
        """
        LEDGER.checks += 4
        deadline = time.monotonic() + settle
        while (found := self.violations()) and time.monotonic() < deadline:
            time.sleep(0.2)
        LEDGER.violations.extend(found)
        assert not found, found


def _group_left(identity: proctree.Identity, started: float, finished: float) -> list[int]:
    """Live members of the process group the job's worker led, created while the job ran.

    (A group id is a PID, so after the worker is gone a stranger may lead a group
    with the same id; its processes were not created during the job.)
    """
    left = []
    tolerance = proctree.IDENTITY_TOLERANCE
    for proc in psutil.process_iter():
        try:
            if (
                os.getpgid(proc.pid) == identity.pid
                and started - tolerance <= proc.create_time() <= finished + tolerance
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                left.append(proc.pid)
        except (psutil.Error, ProcessLookupError):
            continue
    return left


@pytest.fixture
def stranger(tmp_path):
    s = Stranger(tmp_path)
    yield s
    s.close()


@pytest.fixture
def engine() -> str:
    """The engine the faults' jobs run on (test_faults.py runs each fault on both)."""
    return "auto"


@pytest.fixture
def fault_settings(tmp_path, engine) -> Settings:
    # Sweeps every second and a 4-second orphan timeout, so that each fault resolves quickly;
    # one engine thread per worker keeps several jobs running side by side on 2 cores. Greedy,
    # as these tests are about processes: with beam search whisper.cpp's text for a clip
    # depends on what its context decoded before, and a job resumed after SIGTERM ended 4.6 %
    # of its words away from an uninterrupted run (whispercpp's docstring).
    return make_settings(
        tmp_path / "data",
        engine=engine,
        heartbeat_interval=0.5,
        orphan_timeout=4.0,
        cleanup_interval=1.0,
        kill_grace=2.0,
        max_concurrent_jobs=3,
        cpu_threads=1,
        beam_size=1,
    )


@pytest.fixture
def invariants(fault_settings, stranger) -> Invariants:
    return Invariants(fault_settings, stranger)


class ServiceProcess:
    """`ttservice serve --no-ui` as a real process, for crashing and restarting."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings, self.log = settings, log
        self.process: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ttservice", "serve", "--no-ui", "--no-api"],
                env=env_for(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(lambda: "running without its web app" in self.log.read_text(), 30, what="service start")
        return self

    def signal(self, sig: int) -> None:
        os.kill(self.process.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


@pytest.fixture
def service(fault_settings, tmp_path):
    services = []

    def make(settings: Settings | None = None) -> ServiceProcess:
        s = ServiceProcess(settings or fault_settings, tmp_path / "service.log")
        services.append(s)
        return s.start()

    yield make
    for s in services:
        s.stop()


@pytest.fixture(scope="session")
def ten_minute_speech(tmp_path_factory) -> Path:
    """About seven minutes of speech: long enough to outlive a service restart."""
    return synthesize(tmp_path_factory.mktemp("speech") / "ten_minute_speech.wav", SPEECH * 20)


@pytest.fixture(scope="session")
def short_speech(tmp_path_factory) -> Path:
    """About 20 s of speech: the contention soak's six jobs run side by side for as long."""
    return synthesize(tmp_path_factory.mktemp("speech") / "short_speech.wav", SPEECH)


def wait_status(store: Store, job_id: int, statuses, timeout: float = 60.0):
    statuses = {statuses} if isinstance(statuses, JobStatus) else set(statuses)
    return wait_for(
        lambda: (job := store.get_job(job_id)).status in statuses and job,
        timeout,
        what=f"job {job_id} to become {'/'.join(sorted(statuses))}",
    )


def wait_segments(store: Store, job_id: int, count: int = 1, timeout: float = 120.0) -> list[Segment]:
    return wait_for(
        lambda: len(segs := store.segments(job_id)) >= count and segs,
        timeout,
        what=f"{count} segment(s) of job {job_id}",
    )


def heartbeat_moves(store: Store, job_id: int, timeout: float = 10.0) -> None:
    first = store.get_job(job_id).last_heartbeat
    wait_for(lambda: store.get_job(job_id).last_heartbeat != first, timeout, what="a new heartbeat")


def since(start: float) -> float:
    return time.monotonic() - start
