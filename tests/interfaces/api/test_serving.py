"""How the service serves its API: refused where it would be open to anyone, keys checked right."""

from __future__ import annotations

import socket

from ttservice.interfaces.api.keys import valid
from ttservice.supervision.service import running_service

from ...conftest import ttservice


def test_the_api_is_not_served_beyond_loopback_without_a_key(settings):
    refused = ttservice(settings, "serve", "--no-ui", "--host", "0.0.0.0", timeout=60)
    assert refused.returncode == 1
    message = refused.stderr.strip()
    assert message.startswith("Error:") and "TTSERVICE_API_KEY" in message and "\n" not in message
    assert running_service(settings) is None and not settings.db_path.exists()  # nothing was started


def test_a_taken_api_port_is_said_in_one_sentence(settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = ttservice(settings, "serve", "--no-ui", "--api-port", str(port), timeout=60)
    assert refused.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in refused.stderr and "--no-api" in refused.stderr


def test_a_key_is_one_of_the_keys_after_bearer():
    keys = [b"alpha", b"beta"]
    assert valid(b"Bearer beta", keys) and valid(b"bearer alpha", keys)
    assert not valid(b"Bearer gamma", keys)
    assert not valid(b"Basic alpha", keys)
    assert not valid(b"alpha", keys)
    assert not valid(b"", keys)
