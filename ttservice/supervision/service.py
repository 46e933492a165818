"""`ttservice serve`: one ProcessManager and the Streamlit app, as one service.

The manager runs here, in the service's main process, never inside a page: it
dispatches queued jobs, watches workers and sweeps orphans whether or not a
browser tab is open, and a page rerun or code reload cannot start a second one.
The web app runs as a child process and only reads the store and asks for stops.
A lock file makes sure only one service runs per data directory.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..config import Settings
from ..jobs import Runner, open_store
from ..platform import exit_fd
from .process_manager import ProcessManager, worker_env
from .waiting import Interrupt, wait_readable

log = logging.getLogger(__name__)

APP = Path(__file__).parents[1] / "interfaces" / "web" / "app.py"
RESTART_DELAY = 2.0


class ServiceAlreadyRunning(RuntimeError):
    pass


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
        self, settings: Settings, host: str = "127.0.0.1", port: int = 8501, ui: bool = True
    ) -> None:
        self.settings, self.host, self.port, self.ui = settings, host, port, ui
        self.stop_requested = Interrupt()  # set by SIGINT/SIGTERM; wakes the main loop at once
        self._lock_handle = None
        self._ui: subprocess.Popen | None = None

    def _acquire_lock(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_handle = open(_lock_path(self.settings), "a")
        try:
            fcntl.flock(self._lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = running_service(self.settings) or {}
            raise ServiceAlreadyRunning(
                f"TTService is already running (pid {info.get('pid', '?')}) for {self.settings.data_dir}."
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

    def _handle_signal(self, signum: int, frame: object) -> None:
        self.stop_requested.set()  # the main loop does the work

    def run(self) -> int:
        self._acquire_lock()
        store = open_store(self.settings)
        for backup in store.migration_backups:
            log.warning("database migrated; backup at %s", backup)
        pm = ProcessManager(store, self.settings, runner=Runner.SERVICE)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle_signal)
        self.stop_requested.wake_on_signals()
        pm.start(dispatch=True)
        if self.ui:
            self._ui = self._start_ui()
            print(f"TTService is running at http://{self.host}:{self.port}", file=sys.stderr, flush=True)
        else:
            print(
                f"TTService is running without its web app (pid {os.getpid()})", file=sys.stderr, flush=True
            )
        try:
            while not self.stop_requested.is_set():
                self._wait_for_stop_or_ui_exit()
                if self._ui is not None and self._ui.poll() is not None and not self.stop_requested.is_set():
                    log.error("the web app exited with %s; restarting it", self._ui.returncode)
                    time.sleep(RESTART_DELAY)
                    self._ui = self._start_ui()
        finally:
            self._stop_ui()
            pm.shutdown(stop_jobs=True)
            _info_path(self.settings).unlink(missing_ok=True)
        return 0

    def _wait_for_stop_or_ui_exit(self) -> None:
        """Asleep until a stop is asked or the web app exits (its exit descriptor; else a look each 0.5 s)."""
        ui = exit_fd(self._ui.pid) if self._ui is not None else None  # unreaped, so the PID is its own
        blind = self._ui is not None and ui is None
        try:
            wait_readable(
                [self.stop_requested.fileno(), *([ui] if ui is not None else [])], 0.5 if blind else None
            )
        finally:
            if ui is not None:
                os.close(ui)

    def _stop_ui(self) -> None:
        if self._ui is None or self._ui.poll() is not None:
            return
        self._ui.terminate()
        try:
            self._ui.wait(timeout=self.settings.kill_grace)
        except subprocess.TimeoutExpired:
            self._ui.kill()
            self._ui.wait()
