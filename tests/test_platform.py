"""The platform module: which primitives supervision gets, and the portable mode that turns them off."""

import os
import subprocess
import sys
import time

import pytest

from ttservice import platform

LINUX = sys.platform.startswith("linux")


@pytest.fixture
def child():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize(
    "value, expected", [("", False), ("0", False), ("off", False), ("1", True), ("yes", True)]
)
def test_portable_is_read_from_the_environment_at_each_call(monkeypatch, value, expected):
    monkeypatch.setenv(platform.PORTABLE_ENV, value)
    assert platform.portable() is expected


@pytest.mark.skipif(not LINUX, reason="pidfds are Linux's")
def test_exit_fd_is_a_pidfd_that_wakes_when_the_process_exits(monkeypatch, child):
    monkeypatch.delenv(platform.PORTABLE_ENV, raising=False)
    fd = platform.exit_fd(child.pid)
    assert fd is not None
    try:
        assert not platform.wait_readable([fd], 0)
        child.kill()
        assert platform.wait_readable([fd], 30)
    finally:
        os.close(fd)


def test_portable_mode_has_no_linux_primitive(monkeypatch, child):
    monkeypatch.setenv(platform.PORTABLE_ENV, "1")
    if LINUX:  # the code a Mac runs where it has no equivalent
        assert platform.exit_fd(child.pid) is None
        assert "a look" in platform.describe()["process exit seen by"]
    assert platform.die_with_parent(0) is False
    assert "heartbeat" in platform.describe()["a foreground worker ends with its command by"]


@pytest.mark.parametrize("portable", ["0", "1"])
def test_wait_readable_wakes_on_data_and_times_out_without(monkeypatch, portable):
    monkeypatch.setenv(platform.PORTABLE_ENV, portable)  # poll() on Linux, select() in portable mode
    read, write = os.pipe()
    try:
        os.set_blocking(read, False)
        started = time.monotonic()
        assert not platform.wait_readable([read], 0.2)
        assert time.monotonic() - started >= 0.15
        os.write(write, b"!")
        assert platform.wait_readable([read], 30)
        platform.drain(read)
        assert not platform.wait_readable([read], 0)
    finally:
        os.close(read)
        os.close(write)


def test_the_worker_tells_the_kernel_to_signal_it_only_on_linux_without_portable(monkeypatch):
    script = (
        "import os, sys; from ttservice import platform; import signal;"
        "print(platform.die_with_parent(signal.SIGUSR1))"
    )
    for portable, expected in (("0", str(LINUX)), ("1", "False")):
        env = dict(os.environ, **{platform.PORTABLE_ENV: portable})
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected
