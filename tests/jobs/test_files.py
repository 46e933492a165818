"""Uploads stored by content hash: one copy of the same bytes, deleted with the last job naming it."""

import hashlib
import threading
from pathlib import Path

import pytest

from ttservice import actions
from ttservice.jobs import HostId, JobStatus, TranscribeOptions, open_store

from ..conftest import JFK_WAV, STORES, settings_on

AUDIO = JFK_WAV.read_bytes()
SHA256 = hashlib.sha256(AUDIO).hexdigest()


@pytest.fixture(params=STORES)
def settings(request, tmp_path):
    return settings_on(request, tmp_path / "data")


def upload(store, settings, name: str, data: bytes = AUDIO) -> int:
    return actions.submit_upload(store, settings, name, data, TranscribeOptions())


def finished(store, job_id: int) -> None:
    store.claim(job_id, 5)
    assert store.transition(job_id, JobStatus.COMPLETED, exit_code=0)


def test_an_upload_is_stored_under_its_hash_which_its_job_records(store, settings):
    job_id = upload(store, settings, "../../talk.wav")
    job = store.get_job(job_id)
    assert job.media_path == str(settings.upload_dir / SHA256 / "talk.wav")
    assert Path(job.media_path).read_bytes() == AUDIO
    attempt = store.claim(job_id, 5, host=HostId("alpha", "boot-1"))
    token = store.media_token(job_id, attempt)
    assert store.media_grant(job_id, token) == (job.media_path, SHA256)  # no hashing at the first fetch
    assert not (settings.upload_dir / ".incoming").exists() or not any(
        (settings.upload_dir / ".incoming").iterdir()
    )


def test_the_same_bytes_uploaded_again_are_one_copy_on_disk(store, settings):
    first, same_name, other_name = (upload(store, settings, n) for n in ("talk.wav", "talk.wav", "ประชุม.wav"))
    other_bytes = upload(store, settings, "talk.wav", AUDIO + b"\0")
    paths = [Path(store.get_job(j).media_path) for j in (first, same_name, other_name, other_bytes)]
    assert paths[0] == paths[1] and paths[2] == settings.upload_dir / SHA256 / "ประชุม.wav"
    assert paths[0].stat().st_ino == paths[2].stat().st_ino  # a hard link, not a copy
    assert paths[3].parent.name == hashlib.sha256(AUDIO + b"\0").hexdigest()


def test_a_stored_file_is_deleted_with_the_last_job_that_names_it(store, settings):
    first, second = upload(store, settings, "talk.wav"), upload(store, settings, "talk.wav")
    rerun = actions.rerun(store, first)  # a re-run reads the same file
    path = Path(store.get_job(first).media_path)
    for job_id in (first, second, rerun):
        finished(store, job_id)
    actions.delete(store, settings, first)
    actions.delete(store, settings, second)
    assert path.read_bytes() == AUDIO  # the re-run still names it
    actions.delete(store, settings, rerun)
    assert not path.exists() and not path.parent.exists()


def test_a_file_of_the_users_own_is_never_deleted_with_its_job(store, settings, tmp_path):
    own = tmp_path / "mine.wav"
    own.write_bytes(AUDIO)
    job_id = actions.submit_file(store, settings, own, TranscribeOptions())
    finished(store, job_id)
    actions.delete(store, settings, job_id)
    assert own.read_bytes() == AUDIO


def test_uploads_and_deletes_racing_never_take_a_jobs_file(store, settings):
    """Uploads of the same bytes while the jobs before them are deleted: each job still standing
    reads its file, whichever process deleted the one before at the same moment."""
    errors = []

    def upload_and_delete(name: str) -> None:
        own = open_store(settings)
        try:
            for _ in range(15):
                job_id = upload(own, settings, name)
                path = Path(own.get_job(job_id).media_path)
                if not path.is_file():
                    errors.append(f"job {job_id}: {path.name} missing right after its upload")
                finished(own, job_id)
                actions.delete(own, settings, job_id)
        finally:
            own.close()

    threads = [threading.Thread(target=upload_and_delete, args=(n,)) for n in ("a.wav", "a.wav", "b.wav")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not (settings.upload_dir / SHA256).exists()  # the last delete took the folder
