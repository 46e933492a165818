"""Simulated machines for the scale-out tests: agents on hosts of their own, and a network to cut.

Each agent runs in its own PID namespace (`unshare --pid --fork --mount-proc`): the PIDs of
different hosts collide, as on real machines, and SIGKILL of the namespace's first process
ends everything on that host at once, as a power cut does. A host's database connection may
go through a network namespace of its own (`Network`), joined to this machine by a veth pair
that a test takes down.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from ttservice.config import Settings
from ttservice.jobs import JobStatus, Runner, Store, TranscribeOptions

from ..conftest import env_for, make_settings, wait_for

NAMESPACES = os.geteuid() == 0 and shutil.which("unshare") is not None
NETWORKS = NAMESPACES and shutil.which("ip") is not None


def scale_settings(data_dir: Path, database_url: str) -> Settings:
    """Fast enough to see a machine go silent within seconds: a heartbeat every half second,
    orphaned after 10 s (a worker cut off stops itself after 5), a sweep every 2 s."""
    return make_settings(
        data_dir,
        database_url=database_url,
        heartbeat_interval=0.5,
        orphan_timeout=10.0,
        cleanup_interval=2.0,
        cpu_threads=1,
    )


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

    def start(name: str, settings: Settings, network: Network | None = None) -> Host:
        host = Host(name, settings, tmp_path, network)
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


def submit(store: Store, media: Path) -> int:
    return store.create_job(media.name, str(media), TranscribeOptions(), Runner.SERVICE)


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
