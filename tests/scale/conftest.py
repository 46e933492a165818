"""Simulated machines for the scale-out tests: agents on hosts of their own, and a network to cut.

Each agent runs in its own PID namespace (`unshare --pid --fork --mount-proc`): the PIDs of
different hosts collide, as on real machines, and SIGKILL of the namespace's first process
ends everything on that host at once, as a power cut does. A host's database connection may
go through a `Link` (a TCP relay) that a test cuts: connections reset, new ones refused.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ttservice.config import Settings
from ttservice.jobs import JobStatus, Runner, Store, TranscribeOptions

from ..conftest import env_for, make_settings, wait_for

NAMESPACES = os.geteuid() == 0 and shutil.which("unshare") is not None


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
    """A simulated machine running `ttservice agent --slots 1 --name NAME`."""

    def __init__(self, name: str, settings: Settings, root: Path) -> None:
        self.name = name
        self.settings = replace(settings, data_dir=root / name, host_name=name)
        self.log = root / f"{name}-agent.log"
        cmd = [sys.executable, "-m", "ttservice", "agent", "--slots", "1", "--name", name]
        if NAMESPACES:
            cmd = ["unshare", "--pid", "--fork", "--mount-proc", *cmd]
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


class Link:
    """A TCP relay between a host and the database server, which a test can cut and mend."""

    def __init__(self, url: str) -> None:
        info = conninfo_to_dict(url)
        self.target = (info.get("host") or "127.0.0.1", int(info.get("port") or 5432))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = make_conninfo(url, host="127.0.0.1", port=str(self.port))
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._up = threading.Event()
        self.mend()

    def mend(self) -> None:
        if self._listener is None:
            self._listener = socket.create_server(("127.0.0.1", self.port))
        self._up.set()
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def cut(self) -> None:
        """Every connection through it is reset, and new ones are refused."""
        self._up.clear()
        listener, self._listener = self._listener, None
        listener.close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self._up.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def hosts(tmp_path):
    """Start simulated hosts with `hosts(name, settings)`; all are stopped at the end."""
    started: list[Host] = []

    def start(name: str, settings: Settings) -> Host:
        host = Host(name, settings, tmp_path)
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
