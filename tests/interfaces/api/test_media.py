"""An agent's fetch of its job's media from the central service: the token, the hash, `Range`, the cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import time

import pytest
from fastapi.testclient import TestClient

from ttservice.exceptions import MediaError
from ttservice.interfaces.api.app import create_app
from ttservice.jobs import JobStatus, Runner
from ttservice.transcription import remote
from ttservice.transcription.remote import SHA256_HEADER, TOKEN_HEADER, Fetch

from ...conftest import JFK_WAV, make_settings


@pytest.fixture
def media(tmp_path):
    path = tmp_path / "talk.wav"
    shutil.copy(JFK_WAV, path)
    return path


@pytest.fixture
def running(store, make_job, media):
    """A job claimed (attempt 1) whose media is `media`, and its attempt's token."""
    job_id = make_job(media=media)
    assert store.claim(job_id, 2) == 1
    return job_id, store.media_token(job_id, 1)


@pytest.fixture
def client(settings, store):
    """The API in this process, and every request it was sent."""
    sent = []
    with TestClient(create_app(settings)) as c:
        c.event_hooks = {"request": [sent.append], "response": []}
        c.sent = sent
        yield c


def fetch(client, job_id, token, cache):
    return Fetch(str(client.base_url), job_id, token, cache, client=client).run("talk.wav")


def test_the_media_goes_only_to_the_running_attempt_with_its_token(client, store, running):
    job_id, token = running
    url = f"/internal/media/{job_id}"
    assert client.get(url).status_code == 403
    wrong = client.get(url, headers={TOKEN_HEADER: token[::-1]})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "media.only_for_its_worker"
    sent = client.get(url, headers={TOKEN_HEADER: token})
    assert sent.status_code == 200 and sent.content == JFK_WAV.read_bytes()
    assert sent.headers[SHA256_HEADER] == hashlib.sha256(sent.content).hexdigest()
    part = client.get(url, headers={TOKEN_HEADER: token, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == sent.content[100:200]
    # Another attempt claimed: the first one's token opens nothing; the new one's does.
    assert store.transition(job_id, JobStatus.INTERRUPTED, attempt=1)
    assert client.get(url, headers={TOKEN_HEADER: token}).status_code == 403  # not running
    store.requeue_for_resume(job_id, Runner.SERVICE)
    assert store.claim(job_id, 2) == 2
    assert store.media_token(job_id, 1) is None
    assert client.get(url, headers={TOKEN_HEADER: token}).status_code == 403
    assert client.get(url, headers={TOKEN_HEADER: store.media_token(job_id, 2)}).status_code == 200


def test_the_media_is_not_open_to_an_api_key(tmp_path):
    keyed = make_settings(tmp_path / "keyed", api_key="k1")
    with TestClient(create_app(keyed)) as c:
        assert c.get("/api/v1/jobs").status_code == 401
        answer = c.get("/internal/media/1", headers={"Authorization": "Bearer k1"})
        assert answer.status_code == 403  # the key opens the API, not a job's media


def test_a_fetch_is_cached_by_hash_and_a_cut_one_continues(client, running, tmp_path):
    job_id, token = running
    cache = tmp_path / "cache"
    data = JFK_WAV.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    # A fetch cut halfway left its first half.
    (cache / sha256).mkdir(parents=True)
    (cache / sha256 / "talk.wav.part").write_bytes(data[: len(data) // 2])
    path = fetch(client, job_id, token, cache)
    assert path == cache / sha256 / "talk.wav" and path.read_bytes() == data
    assert [r.headers.get("range") for r in client.sent] == ["bytes=0-0", f"bytes={len(data) // 2}-"]
    client.sent.clear()
    assert fetch(client, job_id, token, cache) == path  # again: from the disk
    assert [r.headers.get("range") for r in client.sent] == ["bytes=0-0"]
    client.sent.clear()
    same = Fetch(str(client.base_url), job_id, token, cache, client=client).run("same-bytes.wav")
    assert same.read_bytes() == data and same.stat().st_ino == path.stat().st_ino  # linked, not fetched
    assert [r.headers.get("range") for r in client.sent] == ["bytes=0-0"]


def test_a_corrupt_partial_fetch_is_fetched_again_and_a_changed_file_fails(client, running, media, tmp_path):
    job_id, token = running
    cache = tmp_path / "cache"
    data = media.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    (cache / sha256).mkdir(parents=True)
    (cache / sha256 / "talk.wav.part").write_bytes(b"\0" * len(data))  # complete, but not the file
    assert fetch(client, job_id, token, cache).read_bytes() == data
    # The file changes on the central service after its hash was recorded: no attempt reads it.
    media.write_bytes(data[:-4] + b"XXXX")
    with pytest.raises(MediaError, match="does not match the hash"):
        fetch(client, job_id, token, tmp_path / "elsewhere")
    assert list((tmp_path / "elsewhere" / sha256).glob("*.wav*")) == []  # nothing half-fetched kept


def test_a_job_whose_media_is_gone_fails_with_one_sentence(client, running, media, tmp_path):
    job_id, token = running
    media.unlink()
    with pytest.raises(MediaError, match="no longer on the central service"):
        fetch(client, job_id, token, tmp_path / "cache")


def test_unused_cached_media_is_pruned(tmp_path):
    cache = tmp_path / "cache"
    (cache / "abc").mkdir(parents=True)
    old, new = cache / "abc" / "old.wav", cache / "abc" / "new.wav"
    old.write_bytes(b"1")
    new.write_bytes(b"2")
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    assert remote.prune(cache, keep_days=2) == 1
    assert not old.exists() and new.exists()
