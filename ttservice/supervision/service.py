"""`ttservice serve`: one ProcessManager, the Streamlit app and the HTTP API, as one service.

The manager runs here, in the service's main process, never inside a page: it
dispatches queued jobs, watches workers and sweeps orphans whether or not a
browser tab is open, and a page rerun or code reload cannot start a second one.
The web app and the API run as child processes that only read the store, queue
jobs and ask for stops; either is started again if it exits. A lock file makes
sure only one service runs per data directory.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..config import Settings
from ..exceptions import TTServiceError
from ..jobs import Runner, open_store
from ..platform import exit_fd
from .process_manager import ProcessManager, worker_env
from .waiting import Interrupt, wait_readable

log = logging.getLogger(__name__)

APP = Path(__file__).parents[1] / "interfaces" / "web" / "app.py"
API_MODULE = "ttservice.interfaces.api"
RESTART_DELAY = 2.0
API_DRAIN = 5.0  # seconds the API has, after the jobs are stopped, to answer its requests and exit
WHAT = {"ui": "web app", "api": "API"}


class ServiceAlreadyRunning(TTServiceError):
    """Another service holds this data directory's lock."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api(settings: Settings, host: str, port: int) -> None:
    """Refuse, in one sentence, an API that anyone on the network could use, or a port taken."""
    if not is_loopback(host) and not settings.api_keys:
        raise TTServiceError("service.api_without_key", host=host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise TTServiceError("service.api_port", host=host, port=port, error=error.strerror) from None


def _lock_path(settings: Settings) -> Path:
    return settings.data_dir / "service.lock"


def _info_path(settings: Settings) -> Path:
    return settings.data_dir / "service.json"


def running_service(settings: Settings) -> dict | None:
    """The running service's pid/host/port, or None when no service holds the lock."""
    lock = _lock_path(settings)
    if not lock.exists():
        return None
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(_info_path(settings).read_text())
            except (OSError, ValueError):
                return {}
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


class Service:
    def __init__(
        self,
        settings: Settings,
        host: str = "127.0.0.1",
        port: int = 8501,
        ui: bool = True,
        api_port: int | None = None,
    ) -> None:
        self.settings, self.host, self.port, self.ui, self.api_port = settings, host, port, ui, api_port
        self.stop_requested = Interrupt()  # set by SIGINT/SIGTERM; wakes the main loop at once
        self._lock_handle = None
        self._children: dict[str, subprocess.Popen] = {}  # "ui", "api"

    def _acquire_lock(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_handle = open(_lock_path(self.settings), "a")
        try:
            fcntl.flock(self._lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = running_service(self.settings) or {}
            raise ServiceAlreadyRunning(
                "service.already_running", pid=info.get("pid", "?"), data_dir=str(self.settings.data_dir)
            ) from None
        info = {"pid": os.getpid(), "host": self.host, "port": self.port, "started_at": time.time()}
        _info_path(self.settings).write_text(json.dumps(info))

    def _start_ui(self) -> subprocess.Popen:
        cmd = [
            sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", self.host,
            "--server.port", str(self.port),
            "--server.headless", "true",
            "--server.fileWatcherType", "none",
            "--server.maxUploadSize", str(max(1, int(self.settings.max_upload_mb))),
            "--browser.gatherUsageStats", "false",
            "--theme.base", "light",
            "--client.toolbarMode", "minimal",
        ]  # fmt: skip
        return subprocess.Popen(cmd, env=worker_env(self.settings), stdin=subprocess.DEVNULL)

    def _start_api(self) -> subprocess.Popen:
        cmd = [sys.executable, "-m", API_MODULE, "--host", self.host, "--port", str(self.api_port)]
        env = worker_env(self.settings, secrets=True)
        return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)

    def _start(self, name: str) -> None:
        self._children[name] = self._start_ui() if name == "ui" else self._start_api()

    def _handle_signal(self, signum: int, frame: object) -> None:
        self.stop_requested.set()  # the main loop does the work

    def run(self) -> int:
        if self.api_port is not None:
            check_api(self.settings, self.host, self.api_port)
        self._acquire_lock()
        store = open_store(self.settings)
        for backup in store.migration_backups:
            log.warning("database migrated; backup at %s", backup)
        pm = ProcessManager(store, self.settings, runner=Runner.SERVICE)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle_signal)
        self.stop_requested.wake_on_signals()
        pm.start(dispatch=True)
        for name, wanted in (("ui", self.ui), ("api", self.api_port is not None)):
            if wanted:
                self._start(name)
        self._announce()
        try:
            while not self.stop_requested.is_set():
                self._wait_for_stop_or_child_exit()
                for name, child in list(self._children.items()):
                    if child.poll() is not None and not self.stop_requested.is_set():
                        log.error("the %s exited with %s; restarting it", WHAT[name], child.returncode)
                        time.sleep(RESTART_DELAY)
                        self._start(name)
        finally:
            # The API stops taking requests first; its requests answer once their jobs are interrupted.
            self._signal_child("api")
            self._stop_child("ui")
            pm.shutdown(stop_jobs=True)
            self._stop_child("api", self.settings.kill_grace + API_DRAIN)
            _info_path(self.settings).unlink(missing_ok=True)
        return 0

    def _announce(self) -> None:
        lines = []
        if self.ui:
            lines.append(f"TTService is running at http://{self.host}:{self.port}")
        else:
            lines.append(f"TTService is running without its web app (pid {os.getpid()})")
        if self.api_port is not None:
            lines.append(f"API: http://{self.host}:{self.api_port}/v1 (docs at /docs)")
        print("\n".join(lines), file=sys.stderr, flush=True)

    def _wait_for_stop_or_child_exit(self) -> None:
        """Asleep until a stop is asked or a child exits (its exit descriptor; else a look each 0.5 s)."""
        fds = {name: exit_fd(child.pid) for name, child in self._children.items()}  # unreaped: their own
        blind = any(fd is None for fd in fds.values())
        try:
            wait_readable(
                [self.stop_requested.fileno(), *(fd for fd in fds.values() if fd is not None)],
                0.5 if blind else None,
            )
        finally:
            for fd in fds.values():
                if fd is not None:
                    os.close(fd)

    def _signal_child(self, name: str) -> None:
        child = self._children.get(name)
        if child is not None and child.poll() is None:
            child.terminate()

    def _stop_child(self, name: str, wait: float | None = None) -> None:
        child = self._children.get(name)
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(timeout=wait if wait is not None else self.settings.kill_grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
