"""A worker's heartbeat: only a database out of reach counts as being cut off.

A fault is injected into real workers running the real model: each worker imports a
`sitecustomize` (through PYTHONPATH) that makes the store's heartbeat raise.
"""

from __future__ import annotations

import textwrap

import pytest

from ttservice.jobs import JobStatus, Runner, TranscribeOptions, open_store
from ttservice.supervision.lifeline import EXIT_CUT_OFF, EXIT_FAILED
from ttservice.supervision.process_manager import ProcessManager

from ..conftest import gone, make_settings, wait_for

pytestmark = pytest.mark.model


def inject(folder, error: str) -> None:
    (folder / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""
            from ttservice.jobs.sql import lifecycle

            def heartbeat(self, job_id, now=None, attempt=None):
                from ttservice.exceptions import StoreUnavailable
                raise {error}

            lifecycle.Lifecycle.heartbeat = heartbeat
            """
        )
    )


@pytest.mark.parametrize(
    "error, exit_code, status",
    [
        # A bug in the beat: the job fails once, with its reason, instead of being queued again.
        ('RuntimeError("injected fault")', EXIT_FAILED, JobStatus.FAILED),
        # The database out of reach: the worker stops itself and its job waits to continue.
        ('StoreUnavailable("store.locked")', EXIT_CUT_OFF, JobStatus.QUEUED),
    ],
)
def test_a_failing_heartbeat_has_one_clear_outcome(
    tmp_path, monkeypatch, long_speech, error, exit_code, status
):
    site = tmp_path / "site"
    site.mkdir()
    inject(site, error)
    monkeypatch.setenv("PYTHONPATH", str(site))
    settings = make_settings(tmp_path / "data", orphan_timeout=4.0, heartbeat_interval=0.5)
    store = open_store(settings)
    manager = ProcessManager(store, settings)
    manager.start()  # watches its worker's exit, as the service does
    try:
        # Sequential on one core: tens of seconds, where the beat gives up after 2 s (batched, on
        # a fast machine, the job once completed first).
        slow = TranscribeOptions(batch_size=0, cpu_threads=1)
        job_id = store.create_job(long_speech.name, str(long_speech), slow, Runner.SERVICE)
        assert manager.start_job(job_id)
        pid = store.get_job(job_id).process_id
        job = wait_for(lambda: store.get_job(job_id).exit_code is not None and store.get_job(job_id), 120)
        assert job.exit_code == exit_code
        wait_for(lambda: gone(pid), 10, what="the worker to exit")  # a failing worker records its end first
        job = store.get_job(job_id)
        assert job.status is status and job.attempt == 1
        if status is JobStatus.FAILED:
            assert job.error == "Its heartbeat failed for 2 s: RuntimeError: injected fault."
        # Nothing runs it again behind the scenes.
        assert not wait_for_change(store, job_id, job.status, 3)
    finally:
        manager.shutdown(stop_jobs=True, wait=0)
        store.close()


def wait_for_change(store, job_id: int, status: JobStatus, seconds: float) -> bool:
    try:
        wait_for(lambda: store.get_job(job_id).status is not status, seconds)
    except AssertionError:
        return False
    return True
