"""Items 14 and 15 of bench/run.py: agents on several machines, against one PostgreSQL store, and
the media they fetch from the central service.

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
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx

from tests.conftest import env_for, make_settings, stop_process
from tests.e2e.conftest import free_port
from tests.scale.conftest import NAMESPACES, Host, scale_settings, submit
from ttservice.jobs import JobStatus, Runner, TranscribeOptions, open_store
from ttservice.transcription import remote

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


FETCH_MB = 512  # the size of the file an agent fetches in `media_fetch`


def media_fetch(figures, work: Path, runs: int) -> None:
    """Item 15: an agent's fetch of a job's media from the central service's API, over loopback.

    The first fetch of a job waits for the service to hash the file (its SHA-256 is recorded
    then); later fetches, on any machine, only send it. A fetch the machine has cached asks for
    one byte (the hash and size) and reads nothing more."""
    settings = make_settings(work / "fetch")
    store = open_store(settings)
    media = work / "fetch.bin"
    with open(media, "wb") as f:
        for _ in range(FETCH_MB):
            f.write(os.urandom(2**20))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = subprocess.Popen(
        [sys.executable, "-m", "ttservice.interfaces.api", "--port", str(port)],
        env=env_for(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    first, sent, cached = [], [], []
    try:
        _wait(lambda: _answers(url), 60, poll=0.2)
        for run in range(runs):
            job_id = store.create_job(media.name, str(media), TranscribeOptions(), Runner.SERVICE)
            token = store.media_token(job_id, store.claim(job_id, runs + 1))
            for side, into in enumerate((first, sent)):  # hashed by the service first, then only sent
                cache = work / f"cache-{run}-{side}"  # another machine's: an empty cache
                started = time.monotonic()
                remote.Fetch(url, job_id, token, cache).run(media.name)
                into.append(FETCH_MB / (time.monotonic() - started))
            started = time.monotonic()
            remote.Fetch(url, job_id, token, cache).run(media.name)
            cached.append((time.monotonic() - started) * 1000)
    finally:
        stop_process(api)
        store.close()
    item = "15 media fetch"
    figures.add(item, f"first fetch of a job's {FETCH_MB} MB (the service hashes it)", first, "MB/s")
    figures.add(item, f"a later fetch of the same {FETCH_MB} MB, another machine", sent, "MB/s")
    figures.add(item, "a fetch this machine has cached", cached, "ms")


def _answers(url: str) -> bool:
    try:
        httpx.get(url + "/api/v1/health", timeout=2)
        return True
    except httpx.HTTPError:
        return False
