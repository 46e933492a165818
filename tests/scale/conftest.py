"""Simulated machines for the scale-out tests: agents on hosts of their own, and a network to cut.

Each agent runs in its own PID namespace (`unshare --pid --fork --mount-proc`): the PIDs of
different hosts collide, as on real machines, and SIGKILL of the namespace's first process
ends everything on that host at once, as a power cut does. A host's database connection may
go through a network namespace of its own (`Network`), joined to this machine by a veth pair
that a test takes down.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import psutil
import pytest

from ttservice.config import Settings
from ttservice.jobs import JobStatus, Runner, Store, TranscribeOptions

from ..conftest import env_for, make_settings, stop_process, wait_for
from ..e2e.conftest import free_port
from ..ledger import LEDGER, Stranger

NAMESPACES = os.geteuid() == 0 and shutil.which("unshare") is not None
NETWORKS = NAMESPACES and shutil.which("ip") is not None


def scale_settings(data_dir: Path, database_url: str, **overrides) -> Settings:
    """Fast enough to see a machine go silent within seconds: a heartbeat every half second,
    orphaned after 10 s (a worker cut off stops itself after 5), a sweep every 2 s. The agents
    read the media where the job records it (one file system) unless `api_url` is given."""
    values = dict(heartbeat_interval=0.5, orphan_timeout=10.0, cleanup_interval=2.0, cpu_threads=1)
    values.update(shared_media=not overrides.get("api_url"), **overrides)
    return make_settings(data_dir, database_url=database_url, **values)


@contextlib.contextmanager
def central_service(settings: Settings):
    """The central machine's service with its API (`ttservice serve --no-ui`), running no job
    itself (0 slots), as the README sets it up; its API's URL, from which agents fetch media."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = settings.data_dir.parent / "central-service.log"
    settings = replace(settings, max_concurrent_jobs=0, warm_worker=False, host_name="central")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ttservice", "serve", "--no-ui", "--api-port", str(port)],
            env=env_for(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: _answers(url) or process.poll() is not None, 60, what="the central service")
        assert process.poll() is None, log.read_text()
        yield url
    finally:
        stop_process(process)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/api/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Host:
    """A simulated machine running `ttservice agent --slots 1 --name NAME`, with its own PIDs,
    optionally its own network and its own CPU cores."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        root: Path,
        network: Network | None = None,
        cpus: str | None = None,
    ) -> None:
        self.name = name
        self.settings = replace(settings, data_dir=root / name, host_name=name)
        self.log = root / f"{name}-agent.log"
        root.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "ttservice", "agent", "--slots", "1", "--name", name]
        if NAMESPACES:
            cmd = ["unshare", "--pid", "--fork", "--mount-proc", *cmd]
        if cpus is not None:  # a machine of its own cores (`taskset -c 0`): the bench's hosts
            cmd = ["taskset", "-c", cpus, *cmd]
        if network is not None:  # `ip netns exec` runs unshare in the host's network
            cmd = ["ip", "netns", "exec", network.name, *cmd]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                cmd, env=env_for(self.settings), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def first_process(self) -> psutil.Process:
        """The agent: the first process of the host's namespace (PID 1 in there)."""
        if not NAMESPACES:
            return psutil.Process(self.process.pid)
        return wait_for(lambda: psutil.Process(self.process.pid).children(), 10, what="the namespace")[0]

    def processes(self) -> list[psutil.Process]:
        """Every process of the host still alive (not counting zombies)."""
        try:
            leader = self.first_process()
            procs = [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    def workers(self) -> list[psutil.Process]:
        return [p for p in self.processes() if "ttservice.supervision.worker" in " ".join(p.cmdline())]

    def find(self, pid: int, create_time: float | None) -> psutil.Process | None:
        """The host's process that its agent knows as `pid` (a PID of the host's namespace)."""
        for proc in self.processes():
            if ns_pid(proc.pid) == pid and (
                create_time is None or abs(proc.create_time() - create_time) < 0.01
            ):
                return proc
        return None

    @property
    def up(self) -> bool:
        return self.process.poll() is None

    def freeze(self) -> None:
        """SIGSTOP the agent (its engine takes no task meanwhile; its workers, if any, go on)."""
        os.kill(self.first_process().pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.first_process().pid, signal.SIGCONT)

    def power_off(self) -> None:
        """SIGKILL the namespace's first process: the kernel ends every process in it."""
        os.kill(self.first_process().pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.kill(self.first_process().pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (psutil.NoSuchProcess, subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def ns_pid(pid: int) -> int:
    """The PID a process has in its own (innermost) PID namespace."""
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("NSpid:"))
    return int(line.split()[-1])


class AcrossHosts:
    """The fault suite's four invariants (`tests/faults`), checked across the simulated hosts:

    1. no `processing` row without its live worker on the host that runs it (found by the
       PID and create time its agent recorded, read in that host's namespace);
    2. no process of a finished job left on any host;
    3. no signal reached a process that is not ours on any host still up (a stranger runs in
       each host's namespaces, where its PID may be another host's worker's);
    4. no committed segment lost.
    """

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.hosts: dict[str, Host] = {}
        self.strangers: dict[str, Stranger] = {}
        self.seen: dict[int, list] = {}

    def watch(self, host: Host) -> None:
        self.hosts[host.name] = host
        if NAMESPACES:
            within = ["nsenter", "-t", str(host.first_process().pid), "-p", "-m", "--"]
            self.strangers[host.name] = Stranger(self.tmp, within, name=f"{host.name}-stranger")

    def fault(self, name: str) -> None:
        LEDGER.faults.append(f"{name} (across hosts)")

    def remember(self, store: Store, job_id: int) -> list:
        self.seen[job_id] = store.segments(job_id)
        return self.seen[job_id]

    def violations(self, store: Store) -> list[str]:
        found = []
        for job in store.list_jobs(limit=10_000):
            host = self.hosts.get(job.host or "")
            if job.status is JobStatus.PROCESSING:
                alive = host is not None and host.up and job.process_id is not None
                if not alive or host.find(job.process_id, job.process_create_time) is None:
                    found.append(f"job {job.id} is processing but its worker is gone from {job.host}")
            if job.finished:
                for other in self.hosts.values():
                    left = [p.pid for p in other.workers() if p.cmdline()[-2:-1] == [str(job.id)]]
                    if left:
                        found.append(f"job {job.id} is {job.status.value} but {other.name} still runs {left}")
        for job_id, before in self.seen.items():
            now = {(s.start, s.end, s.text) for s in store.segments(job_id)}
            if lost := [s for s in before if (s.start, s.end, s.text) not in now]:
                found.append(f"job {job_id} lost {len(lost)} committed segment(s)")
        for name, stranger in self.strangers.items():
            if self.hosts[name].up and (problem := stranger.untouched()):
                found.append(f"on {name}: {problem}")
        return found

    def check(self, store: Store, settle: float = 5.0) -> None:
        LEDGER.checks += 4
        deadline = time.monotonic() + settle
        while (found := self.violations(store)) and time.monotonic() < deadline:
            time.sleep(0.2)
        LEDGER.violations.extend(found)
        assert not found, found

    def close(self) -> None:
        for stranger in self.strangers.values():
            stranger.close()


class Network:
    """A host's own network namespace, joined to this machine by a veth pair; a test cuts it by
    taking this machine's end down (packets are lost: connections hang, as on a pulled cable)."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name, self.outside, inside = f"tts-{tag}", f"tto-{tag}", f"tti-{tag}"
        subnet = f"10.231.{random.randrange(1, 255)}"
        self.address = f"{subnet}.1"  # this machine's end: the database listens there
        for command in (
            f"ip netns add {self.name}",
            f"ip link add {self.outside} type veth peer name {inside}",
            f"ip link set {inside} netns {self.name}",
            f"ip addr add {self.address}/24 dev {self.outside}",
            f"ip link set {self.outside} up",
            f"ip -n {self.name} addr add {subnet}.2/24 dev {inside}",
            f"ip -n {self.name} link set {inside} up",
            f"ip -n {self.name} link set lo up",
        ):
            subprocess.run(command.split(), check=True, capture_output=True)

    def cut(self) -> None:
        subprocess.run(["ip", "link", "set", self.outside, "down"], check=True)

    def mend(self) -> None:
        subprocess.run(["ip", "link", "set", self.outside, "up"], check=True)

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)  # the veth pair goes with it


@pytest.fixture
def hosts(tmp_path):
    """Start simulated hosts with `hosts(name, settings[, network])`; all are stopped at the end."""
    started: list[Host] = []
    across = AcrossHosts(tmp_path)

    def start(name: str, settings: Settings, network: Network | None = None) -> Host:
        host = Host(name, settings, tmp_path, network)
        started.append(host)
        across.watch(host)
        return host

    start.invariants = across  # the fault suite's invariants, across these hosts
    yield start
    for host in started:
        host.stop()
    across.close()


def submit(store: Store, media: Path) -> int:
    # As `ttservice submit` would, decoding greedily as the tests do (`make_settings`) and as the
    # run `reference` comes from does.
    options = TranscribeOptions.from_settings(Settings.from_env({}), beam_size=1)
    return store.create_job(media.name, str(media), options, Runner.SERVICE)


def running_on(store: Store, job_id: int, host: str, segments: int = 1, timeout: float = 120.0):
    """Wait until the job runs on `host` and has committed `segments`."""
    return wait_for(
        lambda: (
            (job := store.get_job(job_id)).status is JobStatus.PROCESSING
            and job.host == host
            and len(store.segments(job_id)) >= segments
            and job
        ),
        timeout,
        what=f"job {job_id} running on {host} with {segments} segment(s)",
    )
