"""A real service with its API for the API tests: `ttservice serve --no-ui --api-port PORT`.

One service serves a whole test module (its jobs share the two slots like a user's
would); the fault tests that stop the service start their own.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ttservice.config import Settings
from ttservice.jobs import Store, open_store

from ...conftest import env_for, make_settings, stop_process
from ...e2e.conftest import free_port

KEY = "test-key-1"
OTHER_KEY = "test-key-2"
MAX_UPLOAD_MB = 8  # three minutes of 16-kHz speech fit; the oversize test sends more


@dataclass
class Api:
    url: str
    settings: Settings
    store: Store
    process: subprocess.Popen

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {KEY}"}

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=120, **kwargs)


def incoming(settings: Settings) -> list[Path]:
    """Files of uploads still being received (or left behind by one that was refused)."""
    folder = settings.upload_dir / ".incoming"
    return sorted(folder.iterdir()) if folder.exists() else []


def start_api(data_dir: Path, hub_env: dict[str, str] | None = None, **overrides) -> Api:
    """A service with its API; offline (no hub) unless `hub_env` says where a hub is."""
    values = dict(api_key=f"{KEY},{OTHER_KEY}", api_callbacks=True, max_upload_mb=MAX_UPLOAD_MB)
    values.update(overrides)
    settings = make_settings(data_dir, **values)
    port = free_port()
    env = env_for(settings) | {"TTSERVICE_API_KEY": settings.api_key}
    env |= hub_env if hub_env is not None else {"HF_HUB_OFFLINE": "1"}
    log = open(data_dir.parent / "service.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "ttservice", "serve", "--no-ui", "--api-port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise AssertionError(f"the API did not start: {(data_dir.parent / 'service.log').read_text()}")
        time.sleep(0.2)
    return Api(url, settings, open_store(settings), process)


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Api:
    server = start_api(tmp_path_factory.mktemp("api") / "data")
    yield server
    stop_process(server.process)
    server.store.close()


@pytest.fixture
def own_api(tmp_path) -> Api:
    """A service of the test's own, which the test may stop."""
    server = start_api(tmp_path / "data")
    yield server
    stop_process(server.process)
    server.store.close()
