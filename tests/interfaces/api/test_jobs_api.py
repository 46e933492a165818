"""The jobs API over httpx: everything the CLI does, with the same guarantees."""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest

from ttservice.jobs import CALLBACK_DELIVERED, JobStatus, Runner, Segment, TranscribeOptions, open_store

from ...conftest import JFK_WAV, gone, group_members, stop_process, wait_for, words
from ...hub_server import Hub
from .conftest import incoming, start_api

pytestmark = pytest.mark.model


def submit(client: httpx.Client, media=JFK_WAV, **fields) -> dict:
    with open(media, "rb") as audio:
        reply = client.post("/api/v1/jobs", files={"file": (media.name, audio)}, data=fields)
    assert reply.status_code == 201, reply.text
    return reply.json()


def events(client: httpx.Client, job_id: int) -> list[tuple[str, dict]]:
    """The job's SSE stream, read to its end."""
    seen, name = [], None
    with client.stream("GET", f"/api/v1/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                seen.append((name, json.loads(line[6:])))
    return seen


def test_submit_follow_export_and_delete(api):
    with api.client() as client:
        job = submit(client)
        # the job as it was when the reply was made: the service's warm worker may have it already
        assert job["status"] in ("queued", "processing") and job["runner"] == "api"
        stream = events(client, job["id"])
        names = [n for n, _ in stream]
        assert names[-1] == "status" and stream[-1][1]["status"] == "completed"
        segments = [d for n, d in stream if n == "segment"]
        assert [s["index"] for s in segments] == list(range(len(segments))) and segments
        assert "progress" in names

        shown = client.get(f"/api/v1/jobs/{job['id']}").json()
        assert shown["status"] == "completed" and shown["segments"] == len(segments)
        assert shown["text"] == " ".join(s["text"] for s in segments)
        assert {"alive", "cpu_percent", "memory_mb", "heartbeat_age", "stalled"} <= shown.keys()

        txt = client.get(f"/api/v1/jobs/{job['id']}/transcript", params={"format": "txt"})
        assert txt.headers["content-type"].startswith("text/plain")
        assert words(txt.text) == words(shown["text"])
        srt = client.get(f"/api/v1/jobs/{job['id']}/transcript", params={"format": "srt"}).text
        assert srt.startswith("1\n00:00:0") and " --> " in srt
        vtt = client.get(f"/api/v1/jobs/{job['id']}/transcript", params={"format": "vtt"}).text
        assert vtt.startswith("WEBVTT")
        exported = client.get(f"/api/v1/jobs/{job['id']}/transcript", params={"format": "json"}).json()
        assert len(exported["segments"]) == len(segments)
        lines = client.get(f"/api/v1/jobs/{job['id']}/logs", params={"tail": 5}).json()["lines"]
        assert 0 < len(lines) <= 5 and any("exiting with code 0" in line for line in lines)

        found = client.get("/api/v1/jobs", params={"search": "country", "status": "completed"}).json()
        assert job["id"] in [j["id"] for j in found["jobs"]] and found["total"] >= 1
        store = open_store(api.settings)
        thai = store.create_job("meeting.wav", None, TranscribeOptions(), Runner.FOREGROUND)
        store.claim(thai, 5)
        store.add_segments(thai, [Segment(0, 2, "การประชุมงบประมาณ")], 2, 1)
        store.transition(thai, JobStatus.COMPLETED)
        for query in ("งบ", "ประชุม", "ประชุมงบประมาณ"):  # Thai inside a compound, and a short word
            found = client.get("/api/v1/jobs", params={"search": query}).json()
            assert [j["id"] for j in found["jobs"]] == [thai] and found["total"] == 1
        assert client.get("/api/v1/stats").json()["by_status"]["completed"] >= 1

        assert client.delete(f"/api/v1/jobs/{job['id']}").json() == {"id": job["id"], "deleted": True}
        missing = client.get(f"/api/v1/jobs/{job['id']}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "job.not_found"
        assert not Path(shown["media_path"]).exists()


def test_a_job_runs_on_the_engine_it_names(api):
    with api.client() as client:
        job = submit(client, engine="whisper.cpp")
        assert [n for n, _ in events(client, job["id"])][-1] == "status"
        shown = client.get(f"/api/v1/jobs/{job['id']}").json()
        assert shown["status"] == "completed" and shown["engine"] == "whisper.cpp"
        assert shown["options"]["engine"] == "whisper.cpp" and words(shown["text"])[:3] == ["and", "so", "my"]
        with open(JFK_WAV, "rb") as audio:
            reply = client.post("/api/v1/jobs", files={"file": audio}, data={"engine": "metal"})
        assert reply.status_code == 400 and "engine" in reply.json()["error"]["message"]


def test_a_finished_jobs_speakers_are_labelled_by_the_service_without_transcribing_again(api):
    with api.client() as client:
        job = submit(client)
        events(client, job["id"])
        before = [s["text"] for s in client.get(f"/api/v1/jobs/{job['id']}/segments").json()]
        assert client.post(f"/api/v1/jobs/{job['id']}/speakers/label", json={"num": 0}).status_code == 400
        queued = client.post(f"/api/v1/jobs/{job['id']}/speakers/label", json={"num": 1})
        assert queued.status_code == 202, queued.text
        assert queued.json()["status"] in ("queued", "processing") and queued.json()["progress"] == 1.0
        assert [n for n, _ in events(client, job["id"])][-1] == "status"
        shown = client.get(f"/api/v1/jobs/{job['id']}").json()
        assert shown["status"] == "completed" and shown["warnings"] == []
        assert [s["text"] for s in client.get(f"/api/v1/jobs/{job['id']}/segments").json()] == before
        [speaker] = client.get(f"/api/v1/jobs/{job['id']}/speakers").json()
        assert speaker["label"] == "SPEAKER_1" and speaker["talk_seconds"] > 5
        logs = client.get(f"/api/v1/jobs/{job['id']}/logs", params={"tail": 50}).json()["lines"]
        assert any("only its speakers are labelled" in line for line in logs)


def test_stop_leaves_no_process_and_resume_finishes_the_transcript(api, minute_speech):
    with api.client() as client:
        job = submit(client, minute_speech)
        running = wait_for(lambda: api.store.segments(job["id"]) and api.store.get_job(job["id"]), 120)
        pid = running.process_id
        stopped = client.post(f"/api/v1/jobs/{job['id']}/stop").json()
        assert stopped["status"] == "cancelled" and not stopped["alive"]
        assert gone(pid) and group_members(pid) == []
        again = client.post(f"/api/v1/jobs/{job['id']}/stop")
        assert again.status_code == 409 and "not running" in again.json()["error"]["message"]
        kept = len(api.store.segments(job["id"]))

        resumed = client.post(f"/api/v1/jobs/{job['id']}/resume")
        assert resumed.status_code == 202 and resumed.json()["resumed_from"] > 0
        final = [d for n, d in events(client, job["id"]) if n == "status"][-1]
        assert final["status"] == "completed"
        assert len(api.store.segments(job["id"])) > kept


def test_health_needs_no_key_and_says_what_it_checked(api):
    wait_for(lambda: not api.store.active_jobs(), 120)
    reply = httpx.get(api.url + "/api/v1/health")
    assert reply.status_code == 200
    assert reply.json() == {
        "status": "ok",
        "dispatcher": True,
        "database": "ok",
        "database_writable": True,
        "slots": 2,
        "slots_free": 2,
    }
    assert httpx.get(api.url + "/api/v1/ready").json() == reply.json()
    for path in ("/api/v1/jobs", "/openapi.json", "/docs", "/v1/models"):
        refused = httpx.get(api.url + path)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "api.key_missing"


def test_health_answers_while_another_program_holds_the_database(api):
    """The liveness probe answers while SQLite's write lock is held; readiness waits for it."""
    holder = sqlite3.connect(api.settings.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    readiness: list[httpx.Response] = []
    waiting = threading.Thread(
        target=lambda: readiness.append(httpx.get(api.url + "/api/v1/ready", timeout=120)), daemon=True
    )
    try:
        # Held for as long as the client would wait: an answer at all means the probe did not wait.
        reply = httpx.get(api.url + "/api/v1/health", timeout=30)
        assert reply.status_code == 200
        assert reply.json() == {
            "status": "degraded",
            "dispatcher": True,
            "database": "busy",
            "database_writable": False,
            "slots": 2,
            "slots_free": None,
        }
        waiting.start()
        waiting.join(3)
        assert waiting.is_alive() and not readiness  # /ready waits for the database
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    waiting.join(60)
    assert readiness and readiness[0].status_code == 200 and readiness[0].json()["database"] == "ok"
    assert wait_for(lambda: httpx.get(api.url + "/api/v1/health").json()["database"] == "ok", 30)


class Receiver(BaseHTTPRequestHandler):
    """Fails the first callback (500), takes the second."""

    calls: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Receiver.calls.append(body)
        self.send_response(500 if len(Receiver.calls) == 1 else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_callback_is_retried_until_delivered(api):
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with api.client() as client:
            url = f"http://127.0.0.1:{server.server_port}/done"
            job = submit(client, callback_url=url)
            done = wait_for(lambda: api.store.get_job(job["id"]).callback_status == CALLBACK_DELIVERED, 60)
        assert done and len(Receiver.calls) == 2
        assert Receiver.calls[-1]["id"] == job["id"] and Receiver.calls[-1]["status"] == "completed"
        assert api.store.get_job(job["id"]).callback_attempts == 2
        with api.client() as client, open(JFK_WAV, "rb") as audio:
            bad = client.post(
                "/api/v1/jobs", files={"file": audio}, data={"callback_url": "file:///etc/passwd"}
            )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "callback_url"
    finally:
        server.shutdown()


def test_callbacks_are_refused_unless_turned_on(tmp_path):

    server = start_api(tmp_path / "data", api_callbacks=False)
    try:
        with server.client() as client, open(JFK_WAV, "rb") as audio:
            reply = client.post("/api/v1/jobs", files={"file": audio}, data={"callback_url": "http://x/"})
        assert reply.status_code == 400 and "TTSERVICE_API_CALLBACKS=1" in reply.json()["error"]["message"]
        assert server.store.page_of_jobs()[0] == 0
        assert incoming(server.settings) == []
    finally:
        stop_process(server.process)


def test_models_endpoints(api):
    with api.client() as client:
        listed = client.get("/api/v1/models").json()
        assert any(m["name"] == "tiny.en" and m["installed"] for m in listed)
        bundled = client.post("/api/v1/models/tiny.en/download")
        assert bundled.status_code == 200 and bundled.json()["status"] == "installed"
        refused = client.delete("/api/v1/models/tiny.en")
        assert refused.status_code == 400 and "ships with TTService" in refused.json()["error"]["message"]
        offline = client.post("/api/v1/models/no-such-model/download")
        assert offline.status_code == 400 and offline.json()["error"]["param"] == "model"


def test_a_model_is_downloaded_by_the_service_then_listed_then_removed(tmp_path, base_model_dir):
    with Hub({"Systran/faster-whisper-base": base_model_dir}) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(tmp_path / "hf-cache"), "HF_HUB_OFFLINE": "0"}
        server = start_api(tmp_path / "data", hub_env=env)
        try:
            with server.client() as client:
                asked = client.post("/api/v1/models/base/download")
                assert asked.status_code == 202 and asked.json()["repo_id"] == "Systran/faster-whisper-base"

                def installed() -> bool:
                    models = {m["name"]: m for m in client.get("/api/v1/models").json()}
                    return models["base"]["installed"]

                wait_for(installed, 120, what="base installed")
                assert "base" in [m["id"] for m in client.get("/v1/models").json()["data"]]
                removed = client.delete("/api/v1/models/base")
                assert removed.status_code == 200 and not installed()
        finally:
            stop_process(server.process)


def test_a_model_that_never_fits_the_memory_limit_is_refused_and_leaves_no_job(tmp_path):
    server = start_api(tmp_path / "data", memory_limit_mb=200)
    try:
        with server.client() as client:
            for path in ("/api/v1/jobs", "/v1/audio/transcriptions"):
                with open(JFK_WAV, "rb") as audio:
                    reply = client.post(path, files={"file": ("jfk.wav", audio)}, data={"model": "tiny.en"})
                error = reply.json()["error"]
                assert reply.status_code == 400 and error["code"] == "memory.never_fits"
                assert "memory limit of 0.2 GB" in error["message"]
        assert server.store.list_jobs() == []
    finally:
        stop_process(server.process)
