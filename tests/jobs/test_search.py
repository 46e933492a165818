"""Search in any language: Thai inside compounds, short Thai words, mixed queries, long transcripts,
through the store, the CLI (`ttservice jobs --search`) and the earlier app's transcripts; on both stores."""

import json

import pytest

from ttservice.jobs import JobStatus, Segment

from ..conftest import STORES, settings_on, ttservice

TRANSCRIPTS = {
    "budget": ["การประชุมงบประมาณประจำปี เริ่มเวลาสิบโมง", "the budget meeting starts at ten"],
    "greeting": ["สวัสดีครับ ยินดีต้อนรับทุกท่าน"],
    "english": ["ask not what your country can do for you", "100% of the vote_count"],
}


@pytest.fixture(params=STORES)
def settings(request, tmp_path):
    return settings_on(request, tmp_path / "data")


@pytest.fixture
def jobs(store, make_job):
    made = {}
    for name, texts in TRANSCRIPTS.items():
        job_id = made[name] = make_job()
        store.claim(job_id, 5)
        store.add_segments(job_id, [Segment(i, i + 1.0, t) for i, t in enumerate(texts)], len(texts), 1)
        store.transition(job_id, JobStatus.COMPLETED)
    return made


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("ประชุม", {"budget"}),  # inside the compound การประชุม
        ("งบ", {"budget"}),  # two characters: shorter than a trigram
        ("งบประมาณ", {"budget"}),
        ("ประชุมงบประมาณ", {"budget"}),  # unspaced: the segmenter finds ประชุม and งบประมาณ
        ("ประชุม budget", set()),  # every word in one segment, and these are in two
        ("งบ ปี", {"budget"}),  # two short words
        ("meeting ten", {"budget"}),
        ("ยินดี", {"greeting"}),
        ("ครับ", {"greeting"}),
        ("COUNTRY", {"english"}),  # any case
        ("do", {"english"}),
        ("100%", {"english"}),
        ("%", {"english"}),  # LIKE's wildcards are only themselves
        ("e_c", {"english"}),
        ("x%y", set()),
        ("ประชุมประจำวัน", set()),  # ประจำวัน is not in it
        ("   ", {"budget", "greeting", "english"}),  # no words: no filter
    ],
)
def test_search_finds_words_inside_any_text(store, jobs, query, found):
    by_id = {job_id: name for name, job_id in jobs.items()}
    assert {by_id[j.id] for j in store.list_jobs(search=query)} == found
    assert store.page_of_jobs(search=query)[0] == len(found)
    total, page = store.page_of_jobs(search=query, limit=2)  # one evaluation, History's page
    assert total == len(found) and page == store.list_jobs(limit=2, search=query)


def test_a_page_of_jobs_counts_them_all_and_holds_its_page(store, jobs):
    everything = store.list_jobs()
    assert store.page_of_jobs(limit=2) == (3, everything[:2])
    assert store.page_of_jobs(limit=2, offset=2) == (3, everything[2:])
    assert store.page_of_jobs(search="ประชุม", limit=2, offset=5) == (1, [])  # past the last page
    assert store.page_of_jobs(search="ประชุม", status=JobStatus.FAILED) == (0, [])


def test_search_in_a_long_transcript(store, make_job):
    job_id = make_job()
    store.claim(job_id, 5)
    filler = [Segment(i, i + 1.0, f"segment {i} เรื่องทั่วไป") for i in range(3000)]
    filler[2718] = Segment(2718, 2719, "ปิดท้ายด้วยการอนุมัติงบ")
    store.add_segments(job_id, filler, 3000, 1)
    assert [j.id for j in store.list_jobs(search="อนุมัติงบ")] == [job_id]
    assert [j.id for j in store.list_jobs(search="segment 2999")] == [job_id]
    assert store.list_jobs(search="อนุมัติงบประมาณ") == []


def test_the_cli_searches_thai(store, jobs, settings):
    run = ttservice(settings, "jobs", "--search", "งบ", "--json")
    assert run.returncode == 0, run.stderr
    assert [job["id"] for job in json.loads(run.stdout)] == [jobs["budget"]]
    assert ttservice(settings, "jobs", "--search", "ประชุม").stdout.count("\n") >= 1
