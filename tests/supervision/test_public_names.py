"""The source document's names stay where a user of it looks for them."""

import pytest

import ttservice
from ttservice.jobs import JobStatus
from ttservice.supervision import foreground, process_manager

from ..conftest import JFK_WAV


def test_process_manager_and_run_transcription_import_from_the_package():
    from ttservice import ProcessManager, run_transcription

    assert ProcessManager is process_manager.ProcessManager
    assert run_transcription is foreground.run_transcription
    with pytest.raises(AttributeError):
        ttservice.NoSuchName  # noqa: B018


@pytest.mark.model
def test_use_process_tracking_flag_turns_tracking_off(monkeypatch, settings):
    assert settings.use_process_tracking  # the setting says track...
    monkeypatch.setattr(foreground, "USE_PROCESS_TRACKING", False)  # ...the emergency switch says no
    job = ttservice.run_transcription(JFK_WAV, settings=settings)
    assert job.status is JobStatus.COMPLETED and job.process_id is None
