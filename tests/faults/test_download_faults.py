"""The fault suite's faults, injected into a model download (a supervised process like a job's
worker), against a local hub that serves the real base model slowly enough to be caught
half-way. Each case ends with the same four invariants, which look at downloads too."""

from __future__ import annotations

import os
import signal

import pytest

from ttservice import actions
from ttservice.jobs import JobStatus
from ttservice.models import catalog, hub
from ttservice.supervision import proctree

from ..conftest import gone, wait_for
from ..models.conftest import BASE_REPO
from ..models.conftest import hub as local_hub  # noqa: F401 - the fixture, under its own name
from .conftest import Invariants

pytestmark = pytest.mark.model

RATE = 4e6  # bytes a second the hub sends: base (~145 MB) takes about half a minute


@pytest.fixture
def slow_hub(local_hub):  # noqa: F811 - the fixture imported above
    local_hub.rate = RATE
    return local_hub


def asked(store) -> int:
    """A download asked for as the web app asks (nobody's until the service takes it), running."""
    row = actions.models.request_download(store, "base")
    wait_for(lambda: store.get_download(row.id).bytes_done > 2e6, 60, what="2 MB of base")
    return row.id


def fetcher(store, download_id: int):
    row = store.get_download(download_id)
    proc, why = proctree.find(proctree.Identity(row.process_id, row.process_create_time))
    assert proc is not None, why
    return proc


def caught_half_way(service, invariants: Invariants, fault: str):
    """The service running, a download of base half-way, its process; and the fault announced."""
    running = service()
    download_id = asked(invariants.store)
    proc = fetcher(invariants.store, download_id)
    invariants.fault(fault)
    return running, download_id, proc


def ended(store, download_id: int, timeout: float = 60.0):
    return wait_for(lambda: (row := store.get_download(download_id)).finished and row, timeout)


def test_sigkill_download_process_then_the_next_download_continues(
    service, invariants: Invariants, fault_settings, slow_hub
):
    _, download_id, proc = caught_half_way(service, invariants, "SIGKILL a download process")
    store = invariants.store
    proc.send_signal(signal.SIGKILL)
    row = ended(store, download_id)
    assert row.status is JobStatus.FAILED and row.error == "The download process was killed by SIGKILL."
    assert hub.installed_folder(catalog.resolve("base")) is None  # its partial files are not a model
    invariants.check()
    slow_hub.rate = None
    again = actions.models.request_download(store, "base")
    assert ended(store, again.id).status is JobStatus.COMPLETED
    assert hub.installed_folder(catalog.resolve("base")) is not None
    size = sum(p.stat().st_size for p in slow_hub.repos[BASE_REPO].files.values())
    assert slow_hub.sent_for(BASE_REPO) < size * 1.5  # continued, not fetched again from the start
    invariants.check()


def test_sigstop_download_process_is_stopped_as_silent(service, invariants: Invariants, slow_hub):
    _, download_id, proc = caught_half_way(service, invariants, "SIGSTOP a download process")
    store = invariants.store
    proc.send_signal(signal.SIGSTOP)
    try:
        row = ended(store, download_id, timeout=60)
    finally:
        if not gone(proc.pid):
            proc.send_signal(signal.SIGCONT)
    assert row.status is JobStatus.FAILED and row.error.startswith("No heartbeat for")
    assert wait_for(lambda: gone(proc.pid), 30)
    invariants.check()


def test_sigkill_service_during_a_download_ends_it_with_its_service(
    service, invariants: Invariants, fault_settings, slow_hub
):
    running, download_id, proc = caught_half_way(service, invariants, "SIGKILL the service during a download")
    store = invariants.store
    running.signal(signal.SIGKILL)
    running.wait(30)
    row = ended(store, download_id, timeout=30)
    assert row.status is JobStatus.INTERRUPTED and wait_for(lambda: gone(proc.pid), 30)
    invariants.check()
    service()  # a new service: asked again, the download continues where it stopped
    slow_hub.rate = None
    again = actions.models.request_download(store, "base")
    assert ended(store, again.id).status is JobStatus.COMPLETED
    invariants.check()


def test_a_download_stopped_leaves_nothing_running(service, invariants: Invariants, slow_hub):
    _, download_id, proc = caught_half_way(service, invariants, "stop a download")
    store = invariants.store
    assert actions.models.stop_download(store, invariants.settings, download_id)
    row = store.get_download(download_id)
    assert row.status is JobStatus.CANCELLED and row.error == "The download was stopped."
    assert wait_for(lambda: gone(proc.pid), 30) and os.getpgid(os.getpid()) != proc.pid
    invariants.check()
