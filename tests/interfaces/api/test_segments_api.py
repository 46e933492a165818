"""Correcting a transcript over HTTP: PATCH a segment, read its revisions, restore it."""

from ttservice.jobs import JobStatus, Runner, Segment, TranscribeOptions


def finished_job(store) -> int:
    job_id = store.create_job("jfk.wav", None, TranscribeOptions(), Runner.API)
    store.claim(job_id, 5)
    spoken = [
        Segment(0.0, 4.9, "And so my fellow Americans"),
        Segment(4.9, 10.5, "ask not what your country"),
    ]
    store.add_segments(job_id, spoken, 10.5, 1.0)
    store.transition(job_id, JobStatus.COMPLETED, exit_code=0)
    return job_id


def test_a_segment_is_corrected_read_back_everywhere_and_restored(api):
    job_id = finished_job(api.store)
    with api.client() as client:
        listed = client.get(f"/api/v1/jobs/{job_id}/segments").json()
        assert [s["index"] for s in listed] == [0, 1] and not any(s["edited"] for s in listed)
        done = client.patch(
            f"/api/v1/jobs/{job_id}/segments/1",
            json={"text": "ask not what your country can do", "speaker": "Kennedy"},
        )
        assert done.status_code == 200, done.text
        corrected = {"text": "ask not what your country can do", "speaker": "Kennedy", "edited": True}
        assert done.json() == {"index": 1, "start": 4.9, "end": 10.5, **corrected}
        vtt = client.get(f"/api/v1/jobs/{job_id}/transcript", params={"format": "vtt"}).text
        assert "<v Kennedy>ask not what your country can do" in vtt
        assert (
            "Kennedy: ask not what your country can do"
            in client.get(f"/api/v1/jobs/{job_id}/transcript").text
        )
        found = client.get("/api/v1/jobs", params={"search": "country can do"}).json()
        assert job_id in [j["id"] for j in found["jobs"]]
        revisions = client.get(f"/api/v1/jobs/{job_id}/segments/1/revisions").json()
        assert [r["kind"] for r in revisions] == ["original", "edit"] and revisions[1]["at"].endswith(
            "+00:00"
        )
        back = client.patch(f"/api/v1/jobs/{job_id}/segments/1", json={"restore": True}).json()
        assert back["text"] == "ask not what your country" and back["speaker"] is None and not back["edited"]


def test_corrections_that_cannot_be_made_answer_in_the_apis_shape(api):
    job_id = finished_job(api.store)
    with api.client() as client:
        missing = client.patch(f"/api/v1/jobs/{job_id}/segments/7", json={"text": "x"})
        assert missing.status_code == 404
        assert (
            missing.json()["error"]["message"]
            == f"Job {job_id} has no segment 7: its segments are numbered 0 to 1."
        )
        empty = client.patch(f"/api/v1/jobs/{job_id}/segments/0", json={"text": "   "})
        assert empty.status_code == 400 and "cannot be empty" in empty.json()["error"]["message"]
        nothing = client.patch(f"/api/v1/jobs/{job_id}/segments/0", json={})
        assert nothing.status_code == 400
        unknown = client.patch(f"/api/v1/jobs/{job_id}/segments/0", json={"start": 3})
        assert unknown.status_code in (400, 422)
        assert client.patch("/api/v1/jobs/999999/segments/0", json={"text": "x"}).status_code == 404
        assert (
            client.patch(
                f"/api/v1/jobs/{job_id}/segments/0",
                json={"text": "x"},
                headers={"Authorization": "Bearer wrong"},
            ).status_code
            == 401
        )


def test_speakers_are_listed_renamed_and_merged(api):
    job_id = finished_job(api.store)
    with api.client() as client:
        assert client.get(f"/api/v1/jobs/{job_id}/speakers").json() == []
        for index, label in ((0, "SPEAKER_1"), (1, "SPEAKER_2")):
            client.patch(f"/api/v1/jobs/{job_id}/segments/{index}", json={"speaker": label})
        named = client.patch(f"/api/v1/jobs/{job_id}/speakers", json={"rename": {"SPEAKER_1": "คุณสมชาย"}})
        assert named.status_code == 200, named.text
        assert [(s["label"], s["name"]) for s in named.json()] == [
            ("SPEAKER_1", "คุณสมชาย"),
            ("SPEAKER_2", None),
        ]
        merged = client.patch(
            f"/api/v1/jobs/{job_id}/speakers", json={"merge": {"SPEAKER_2": "คุณสมชาย"}}
        ).json()
        assert merged == [{"label": "SPEAKER_1", "name": "คุณสมชาย", "talk_seconds": 10.5, "segments": 2,
                           "first_start": 0.0}]  # fmt: skip
        txt = client.get(f"/api/v1/jobs/{job_id}/transcript").text
        assert txt == "คุณสมชาย: And so my fellow Americans ask not what your country\n"
        missing = client.patch(f"/api/v1/jobs/{job_id}/speakers", json={"rename": {"SPEAKER_9": "x"}})
        assert (
            missing.status_code == 404 and "has no speaker 'SPEAKER_9'" in missing.json()["error"]["message"]
        )
