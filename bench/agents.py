"""Item 14 of bench/run.py: agents on several machines, against one PostgreSQL store.

Figures: jobs per hour with one agent of one slot against two agents of one slot each
(`cpu_threads=1`, three-minute speech; the issue's goal is at least 1.8x), and the time from a
host's death (SIGKILL of its PID namespace) to its job running again on the other host, with
the part of it that is not the orphan timeout. The hosts are the tests' simulated ones
(`tests/scale/conftest.py`); without root and `unshare` the agents run as plain processes and
the failover figure is left out. For the throughput each host is pinned to a core of its own
(`taskset`), so that one host is one core.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from tests.scale.conftest import NAMESPACES, Host, scale_settings, submit
from ttservice.jobs import JobStatus, open_store

from .stores import postgres_schema

JOBS = 4  # three-minute jobs per throughput run
# Each simulated host gets a core of its own, as a machine has: a job alone uses 1.7 cores with
# cpu_threads=1 (decoding and finding speech run beside the model), so agents sharing this
# machine's cores would measure the cores, not the agents.
CORES = os.cpu_count() or 1


def _throughput(work: Path, url: str, audio: Path, agents: int, run: int) -> float:
    """Jobs per hour that `agents` one-slot agents finish, from the first submit to the last end.

    With the default heartbeat and sweep, and looked at once a second: on two cores, the tests'
    fast intervals and a tight look would take CPU from the jobs being measured."""
    settings = replace(
        scale_settings(work / f"central-{agents}-{run}", url),
        heartbeat_interval=5.0,
        orphan_timeout=300.0,
        cleanup_interval=600.0,
    )
    store = open_store(settings)
    root = work / f"agents-{agents}-{run}"
    hosts = [Host(f"host{n}", settings, root, cpus=str(n % CORES)) for n in range(agents)]
    try:
        _wait(lambda: len(store.list_hosts()) >= agents, 60)
        started = time.monotonic()
        ids = [submit(store, audio) for _ in range(JOBS)]
        _wait(lambda: all(store.get_job(j).finished for j in ids), 1800, poll=1.0)
        elapsed = time.monotonic() - started
        if any(store.get_job(j).status is not JobStatus.COMPLETED for j in ids):
            raise RuntimeError("a benchmark job did not complete")
        store.db.execute("TRUNCATE transcription_jobs, hosts, procrastinate_jobs CASCADE")
    finally:
        for host in hosts:
            host.stop()
        store.close()
    return JOBS / elapsed * 3600


def _failover(work: Path, url: str, audio: Path, run: int) -> tuple[float, float]:
    """Seconds from a host's death to its job processing again on the other host; and of them, those
    after the orphan timeout had passed since the dead host's last heartbeat (the sweep and the claim)."""
    settings = scale_settings(work / f"central-failover-{run}", url)
    store = open_store(settings)
    root = work / f"failover-{run}"
    alpha = Host("alpha", settings, root)
    beta = None
    try:
        job_id = submit(store, audio)
        _wait(lambda: store.get_job(job_id).host == "alpha" and store.segments(job_id), 120)
        beta = Host("beta", settings, root)
        _wait(lambda: len(store.list_hosts()) == 2, 60)
        alpha.power_off()
        dead, last = time.monotonic(), store.get_job(job_id).last_heartbeat
        _wait(lambda: (j := store.get_job(job_id)).host == "beta" and j.status is JobStatus.PROCESSING, 120)
        again, after_timeout = time.monotonic() - dead, store.clock() - (last + settings.orphan_timeout)
        _wait(lambda: store.get_job(job_id).finished, 600)
        store.db.execute("TRUNCATE transcription_jobs, hosts, procrastinate_jobs CASCADE")
    finally:
        for host in (alpha, beta):
            if host is not None:
                host.stop()
        store.close()
    return again, after_timeout


def _wait(predicate, timeout: float, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s")
        time.sleep(poll)


def agents(figures, work: Path, audio: Path, runs: int) -> None:
    with postgres_schema() as url:
        one, two = [], []
        for run in range(runs):  # alternated, so that drift of the machine cancels out
            one.append(_throughput(work, url, audio, 1, run))
            two.append(_throughput(work, url, audio, 2, run))
        figures.add("14 agents", f"{JOBS} jobs of 3-min speech, 1 agent x 1 slot", one, "jobs/h")
        figures.add("14 agents", f"{JOBS} jobs of 3-min speech, 2 agents x 1 slot", two, "jobs/h")
        ratios = [b / a for a, b in zip(one, two, strict=True)]
        figures.add("14 agents", "2 agents against 1", ratios, "x", ">= 1.8", lambda v: v >= 1.8)
        if not NAMESPACES:
            return
        deaths = [_failover(work, url, audio, run) for run in range(runs)]
        timeout = scale_settings(work, url).orphan_timeout
        figures.add(
            "14 agents", f"a host's death to its job running elsewhere ({timeout:.0f} s orphan timeout)",
            [d for d, _ in deaths], "s",
        )  # fmt: skip
        figures.add(
            "14 agents", "of it, after the orphan timeout: sweep and claim", [a for _, a in deaths], "s"
        )
