import sqlite3
import threading

import pytest

from ttservice.exceptions import JobNotFound, StoreError
from ttservice.jobs import JobStatus, Runner, Segment, TranscribeOptions, open_store
from ttservice.jobs.sqlite import SQLiteStore as Store


def test_database_is_wal_with_indexes(store, settings):
    assert store.db_path == settings.data_dir / "transcriptor.db"
    conn = sqlite3.connect(store.db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {r[1] for r in conn.execute("PRAGMA index_list(transcription_jobs)")}
    assert {"idx_jobs_status_id", "idx_jobs_process_id"} <= indexes
    assert "idx_jobs_status_heartbeat" not in indexes  # a heartbeat writes one page, not two
    cols = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(transcription_jobs)")}
    assert cols["process_id"] == "INTEGER"
    assert cols["log_file_path"] == "TEXT"
    assert cols["last_heartbeat"] == "TIMESTAMP"
    for query in (
        "SELECT * FROM transcription_jobs WHERE status = 'processing' ORDER BY last_heartbeat",
        "SELECT * FROM transcription_jobs WHERE status = 'processing'"
        " AND (last_heartbeat IS NULL OR last_heartbeat < 5)",
    ):
        plan = " ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert "USING INDEX idx_jobs_status_id" in plan  # indexed, never a table scan


def test_job_round_trip_keeps_full_options(store):
    options = TranscribeOptions(model="tiny.en", language="en", task="translate", word_timestamps=True)
    job_id = store.create_job("a.wav", "/x/a.wav", options, Runner.FOREGROUND)
    job = store.get_job(job_id)
    assert job.status is JobStatus.QUEUED
    assert job.options == options
    assert job.runner is Runner.FOREGROUND
    assert job.filename == "a.wav" and job.media_path == "/x/a.wav"
    assert job.created_at is not None


def test_missing_job_raises_readable_error(store):
    with pytest.raises(JobNotFound, match="There is no job 99"):
        store.get_job(99)


def test_named_transitions_refuse_illegal_moves(store, make_job):
    job_id = make_job()
    assert not store.transition(job_id, JobStatus.COMPLETED)  # queued -> completed is not a move
    assert store.claim(job_id, max_concurrent=2)
    assert store.get_job(job_id).started_at is not None
    assert store.transition(job_id, JobStatus.COMPLETED, exit_code=0)
    job = store.get_job(job_id)
    assert job.status is JobStatus.COMPLETED and job.finished_at is not None
    # a finished job is never brought back by a late write
    assert not store.transition(job_id, JobStatus.FAILED, error_message="late")
    assert not store.heartbeat(job_id)
    assert not store.add_segments(job_id, [Segment(0, 1, "late")], 1, 1)
    assert store.get_job(job_id).status is JobStatus.COMPLETED
    assert store.segments(job_id) == []


def test_claim_respects_concurrency_limit(store, make_job):
    ids = [make_job() for _ in range(3)]
    assert store.claim(ids[0], 2) and store.claim(ids[1], 2)
    assert not store.claim(ids[2], 2)
    assert store.get_job(ids[2]).status is JobStatus.QUEUED
    assert not store.claim(ids[0], 5)  # already processing
    store.transition(ids[0], JobStatus.FAILED, error_message="x")
    assert store.claim(ids[2], 2)


def test_segments_are_committed_with_progress(store, make_job):
    job_id = make_job()
    store.claim(job_id, 1)
    assert store.add_segments(job_id, [Segment(0.0, 2.0, "hello", [{"word": "hello"}])], 2.0, 0.2)
    assert store.add_segments(job_id, [Segment(2.0, 4.0, "world")], 4.0, 0.4)
    job = store.get_job(job_id)
    assert job.progress == pytest.approx(0.4) and job.processed_seconds == 4.0
    # another connection (another process) sees them at once
    other = Store(store.db_path)
    assert [s.text for s in other.segments(job_id)] == ["hello", "world"]
    assert other.segments(job_id)[0].words == [{"word": "hello"}]


def test_stale_and_active_queries(store, make_job):
    fresh, stale = make_job(), make_job()
    store.claim(fresh, 5, now=1000.0)
    store.claim(stale, 5, now=100.0)
    assert {j.id for j in store.active_jobs()} == {fresh, stale}
    assert [j.id for j in store.stale_jobs(older_than=500.0)] == [stale]


def test_concurrent_writers_never_see_locked(store, make_job):
    """Six threads with their own connections hammer the store while one reads."""
    ids = [make_job() for _ in range(6)]
    for job_id in ids:
        store.claim(job_id, 10)
    errors = []

    def write(job_id):
        try:
            for i in range(100):
                store.heartbeat(job_id)
                store.add_segments(job_id, [Segment(i, i + 1, f"s{i}")], i + 1, 0.01 * i)
        except Exception as error:  # noqa: BLE001 - any error fails the test below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(j,)) for j in ids]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        store.list_jobs(limit=20)
    assert errors == []
    assert all(len(store.segments(j)) == 100 for j in ids)


def test_writes_wait_for_a_lock_held_elsewhere_and_say_so_when_it_never_frees(store, make_job, monkeypatch):
    job_id = make_job()
    store.claim(job_id, 1)
    other = sqlite3.connect(store.db_path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, other.rollback).start()
    assert store.list_jobs() != []  # readers never wait under WAL
    assert store.heartbeat(job_id)  # waited for the other writer, then wrote
    other.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr("ttservice.jobs.sqlite.connection.LOCK_RETRY_SECONDS", 0.2)
    with pytest.raises(StoreError, match="stayed locked by another program"):
        store.heartbeat(job_id)
    other.rollback()
    assert store.heartbeat(job_id)


def test_delete_job_removes_segments(store, make_job):
    job_id = make_job()
    store.claim(job_id, 1)
    store.add_segments(job_id, [Segment(0, 1, "x")], 1, 1)
    store.delete_job(job_id)
    with pytest.raises(JobNotFound):
        store.get_job(job_id)
    assert store.segments(job_id) == []


def test_full_text_search_and_counts(store, make_job):
    a, b = make_job(), make_job()
    for job_id, text in ((a, "ask not what your country can do"), (b, "สวัสดีครับ ประชุมวันนี้")):
        store.claim(job_id, 5)
        store.add_segments(job_id, [Segment(0, 1, text)], 1, 1)
    assert [j.id for j in store.list_jobs(search="country")] == [a]
    assert [j.id for j in store.list_jobs(search="coun")] == [a]  # prefix
    assert [j.id for j in store.list_jobs(search="สวัสดีครับ")] == [b]
    assert store.list_jobs(search='"unbalanced (quote') == []  # never a syntax error
    assert [j.id for j in store.list_jobs(search="coun\x00try\x1b")] == [a]  # nor a control character
    assert [j.id for j in store.list_jobs(search="\x00country")] == [a]
    assert store.count_jobs(search="\x00") == 2
    assert store.count_jobs() == 2 and store.count_jobs(search="country") == 1
    assert store.count_jobs(status=JobStatus.PROCESSING, search="country") == 1
    store.delete_job(a)
    assert store.list_jobs(search="country") == []


def test_leases_lapse(store, make_job):
    job_id = make_job()
    store.renew_lease(job_id, now=100.0)
    assert store.lapsed_leases(30, now=120.0) == []
    assert store.lapsed_leases(30, now=131.0) == [job_id]
    store.transition(job_id, JobStatus.CANCELLED)
    assert store.lapsed_leases(30, now=131.0) == []


def test_stats_follow_statuses(store, make_job):
    done, failed = make_job(), make_job()
    store.claim(done, 5, now=110.0)
    store.add_segments(done, [], 60.0, 1.0)
    store.transition(done, JobStatus.COMPLETED, now=140.0)
    store.claim(failed, 5)
    store.transition(failed, JobStatus.FAILED, error_message="x")
    stats = store.stats()
    assert stats["by_status"] == {"completed": 1, "failed": 1}
    assert stats["speed_by_model"][0]["speed"] == pytest.approx(2.0)
    assert stats["mean_running_s"] == pytest.approx(30.0)


def test_options_from_settings_keep_unchosen_defaults(settings):
    from dataclasses import replace

    tuned = replace(settings, beam_size=3, vad=False, model="base")
    options = TranscribeOptions.from_settings(tuned, model=None, language="th", word_timestamps=True)
    assert (options.model, options.beam_size, options.vad) == ("base", 3, False)
    assert (options.language, options.word_timestamps, options.task) == ("th", True, "transcribe")


def test_change_mark_moves_with_any_commit_and_only_then(store, settings):
    other = open_store(settings)  # another connection, as another process would have
    before = store.change_mark()
    assert store.change_mark() == before
    store.list_jobs()  # reading changes nothing
    assert store.change_mark() == before
    other.create_job("a.wav", "/x/a.wav", TranscribeOptions())
    assert store.change_mark() != before


def test_queuing_a_service_job_rings_the_listening_service(store, settings, make_job):
    from ttservice.supervision.waiting import wait_readable

    other = open_store(settings)  # as the web app or a CLI would
    other.create_job("a.wav", "/a.wav", TranscribeOptions())  # nobody listens: no error, no wait
    bell = store.listen_for_queued()
    assert bell is not None
    try:
        assert not wait_readable([bell.fileno()], 0)
        make_job(Runner.FOREGROUND)  # a CLI's own job is none of the service's business
        assert not wait_readable([bell.fileno()], 0)
        job_id = other.create_job("b.wav", "/b.wav", TranscribeOptions())
        assert wait_readable([bell.fileno()], 10)
        bell.drain()
        assert not wait_readable([bell.fileno()], 0)
        other.transition(job_id, JobStatus.CANCELLED)
        assert other.requeue_for_resume(job_id, Runner.SERVICE)
        assert wait_readable([bell.fileno()], 10)
    finally:
        bell.close()


def test_an_upload_is_nobodys_to_start_until_its_file_is_saved(store, settings):
    from ttservice import actions

    job_id = store.create_job("talk.wav", None, TranscribeOptions(), Runner.UPLOAD)
    assert store.next_queued(Runner.SERVICE) is None
    store.hand_upload_to_service(job_id, "/uploads/talk.wav")
    assert store.next_queued(Runner.SERVICE) == job_id
    saved = actions.submit_upload(store, settings, "talk.wav", b"RIFF....", TranscribeOptions())
    job = store.get_job(saved)
    assert job.runner is Runner.SERVICE and job.media_path.endswith("talk.wav")
