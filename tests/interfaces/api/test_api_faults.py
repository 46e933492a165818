"""Faults at the API: clients that go away, crowds, bad uploads, a service stopped mid-request."""

from __future__ import annotations

import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import openai
import psutil
import pytest

from ttservice.jobs import JobStatus

from ...conftest import JFK_WAV, gone, wait_for
from .conftest import KEY, MAX_UPLOAD_MB, incoming

pytestmark = pytest.mark.model

TRANSCRIBE = "/v1/audio/transcriptions"


def raw_request(api, body: bytes, content_type: str) -> socket.socket:
    """A POST /v1/audio/transcriptions sent on a socket of the test's own, so it can hang up."""
    host, port = urlsplit(api.url).hostname, urlsplit(api.url).port
    conn = socket.create_connection((host, port))
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    conn.sendall(head.encode() + body)
    return conn


def form(path, **fields) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", files={"file": (path.name, path.read_bytes())}, data=fields)
    return request.read(), request.headers["content-type"]


@pytest.mark.parametrize("stream", ["false", "true"])
def test_a_client_that_hangs_up_stops_its_job(api, minute_speech, stream):
    before = {j.id for j in api.store.list_jobs(limit=1000)}
    conn = raw_request(api, *form(minute_speech, model="whisper-1", stream=stream))
    job = wait_for(lambda: [j for j in api.store.list_jobs(limit=5) if j.id not in before], 30)[0]
    running = wait_for(lambda: api.store.segments(job.id) and api.store.get_job(job.id), 120, what="segment")
    assert running.status is JobStatus.PROCESSING
    conn.close()
    ended = wait_for(lambda: (j := api.store.get_job(job.id)).finished and j, 30, what="the job to stop")
    assert ended.status is JobStatus.CANCELLED and "client disconnected" in ended.error
    assert gone(running.process_id)


def test_three_requests_with_two_slots_all_complete(api):
    client = openai.OpenAI(base_url=api.url + "/v1", api_key=KEY, max_retries=0, timeout=300)

    def one(_: int) -> str:
        with open(JFK_WAV, "rb") as audio:
            return client.audio.transcriptions.create(file=audio, model="whisper-1").text

    with ThreadPoolExecutor(3) as pool:
        texts = list(pool.map(one, range(3)))
    assert len(set(texts)) == 1 and "country" in texts[0]


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(api, tmp_path):
    jobs_before = api.store.page_of_jobs()[0]
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * ((MAX_UPLOAD_MB + 2) * 2**20))
    with api.client() as client:
        declared = client.post(
            "/v1/audio/transcriptions", files={"file": big.open("rb")}, data={"model": "x"}
        )
        assert declared.status_code == 413 and "over the limit" in declared.json()["error"]["message"]

        def chunks():  # no Content-Length: the limit is found while the file streams in
            body, content_type = form(big, model="whisper-1")
            chunks.content_type = content_type
            for i in range(0, len(body), 2**20):
                yield body[i : i + 2**20]

        body = chunks()
        first = next(body)
        streamed = client.post(
            "/api/v1/jobs",
            content=(part for part in [first, *body]),
            headers={"Content-Type": chunks.content_type},
        )
        assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "media.upload_too_large"
    assert incoming(api.settings) == [] and api.store.page_of_jobs()[0] == jobs_before


def test_bad_uploads_get_one_sentence_and_the_next_request_works(api, tmp_path):
    with api.client() as client:
        boundary = "x1x2x3"
        cut = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'.encode()
            + JFK_WAV.read_bytes()[:5000]
        )
        truncated = client.post(
            "/v1/audio/transcriptions",
            content=cut,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert truncated.status_code == 400 and "ended before" in truncated.json()["error"]["message"]

        empty = tmp_path / "empty.wav"
        empty.write_bytes(b"")
        refused = client.post(
            "/v1/audio/transcriptions", files={"file": empty.open("rb")}, data={"model": "whisper-1"}
        )
        assert refused.status_code == 400
        message = refused.json()["error"]["message"]
        assert "empty" in message and message.count(". ") == 0

        text = tmp_path / "notes.mp3"
        text.write_text("these are not sounds\n" * 100)
        refused = client.post("/api/v1/jobs", files={"file": text.open("rb")})
        assert refused.status_code == 415 and refused.json()["error"]["code"] == "media.unreadable"
        failed = api.store.list_jobs(limit=1)[0]
        assert failed.status is JobStatus.FAILED and "not an audio or video file" in failed.error

        plain = client.post(
            "/v1/audio/transcriptions", content=b"hello", headers={"Content-Type": "text/plain"}
        )
        assert plain.status_code == 415 and "multipart/form-data" in plain.json()["error"]["message"]

        works = client.post(
            "/v1/audio/transcriptions", files={"file": JFK_WAV.open("rb")}, data={"model": "whisper-1"}
        )
        assert works.status_code == 200 and "country" in works.json()["text"]
    assert incoming(api.settings) == []


def test_sigterm_to_the_service_mid_request_interrupts_the_job_and_tells_the_client(own_api, minute_speech):
    api = own_api
    client = openai.OpenAI(base_url=api.url + "/v1", api_key=KEY, max_retries=0, timeout=120)
    outcome: dict = {}

    def request() -> None:
        try:
            with open(minute_speech, "rb") as audio:
                outcome["text"] = client.audio.transcriptions.create(file=audio, model="whisper-1").text
        except openai.OpenAIError as error:
            outcome["error"] = error

    thread = threading.Thread(target=request)
    thread.start()
    job = wait_for(lambda: (api.store.list_jobs(limit=1) or [None])[0], 30)
    running = wait_for(lambda: api.store.segments(job.id) and api.store.get_job(job.id), 120, what="segment")
    family = [p.pid for p in psutil.Process(api.process.pid).children(recursive=True)]
    api.process.send_signal(signal.SIGTERM)
    thread.join(60)
    assert not thread.is_alive()
    error = outcome.get("error")
    assert isinstance(error, openai.APIStatusError) and error.status_code == 503, outcome
    assert "resume" in error.body["message"]
    assert api.process.wait(60) == 0
    assert api.store.get_job(job.id).status is JobStatus.INTERRUPTED
    assert running.process_id in family and all(gone(pid) for pid in family)
