"""The Store contract: what every store guarantees, run on SQLite and on PostgreSQL alike.

Each test runs twice (`[sqlite]`, `[postgres]`); on PostgreSQL in a schema of its own.
"""

import threading
import time

import pytest

from ttservice.exceptions import JobNotFound
from ttservice.jobs import HostId, JobStatus, Runner, Segment, TranscribeOptions, open_store

from ..conftest import JFK_WAV, STORES, settings_on, wait_for


@pytest.fixture(params=STORES)
def settings(request, tmp_path):
    return settings_on(request, tmp_path / "data")


@pytest.fixture
def other(settings):
    """A second store on the same database, as another process would have."""
    store = open_store(settings)
    yield store
    store.close()


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


def test_segments_are_committed_with_progress(store, make_job, other):
    job_id = make_job()
    store.claim(job_id, 1)
    assert store.add_segments(job_id, [Segment(0.0, 2.0, "hello", [{"word": "hello"}])], 2.0, 0.2)
    assert store.add_segments(job_id, [Segment(2.0, 4.0, "world")], 4.0, 0.4)
    job = store.get_job(job_id)
    assert job.progress == pytest.approx(0.4) and job.processed_seconds == 4.0
    # another connection (another process) sees them at once
    assert [s.text for s in other.segments(job_id)] == ["hello", "world"]
    assert other.segments(job_id)[0].words == [{"word": "hello"}]


def test_a_follower_reads_only_the_segments_after_the_last_it_read(store, make_job, other):
    job_id = make_job()
    store.claim(job_id, 1)
    store.add_segments(job_id, [Segment(0.0, 1.0, "a"), Segment(1.0, 2.0, "b")], 2.0, 0.2)
    first = other.segments(job_id)
    assert [s.text for s in first] == ["a", "b"] and other.segments(job_id, after=first[-1]) == []
    # two segments starting at the same time keep their commit order
    store.add_segments(job_id, [Segment(2.0, 2.5, "c"), Segment(2.0, 3.0, "d")], 3.0, 0.3)
    new = other.segments(job_id, after=first[-1])
    assert [s.text for s in new] == ["c", "d"]
    assert [s.text for s in other.segments(job_id, after=new[0])] == ["d"]
    assert [s.text for s in other.latest_segments(job_id, 3)] == ["b", "c", "d"]
    assert [s.text for s in other.latest_segments(job_id, 10)] == ["a", "b", "c", "d"]


def test_active_jobs_come_longest_silent_first(store, make_job):
    fresh, stale = make_job(), make_job()
    store.claim(fresh, 5, now=1000.0)
    store.claim(stale, 5, now=100.0)
    assert [j.id for j in store.active_jobs()] == [stale, fresh]  # the longest silent first


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
    assert store.page_of_jobs(search="\x00")[0] == 2
    assert store.page_of_jobs()[0] == 2 and store.page_of_jobs(search="country")[0] == 1
    assert store.page_of_jobs(status=JobStatus.PROCESSING, search="country")[0] == 1
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


def test_change_mark_moves_with_any_commit_and_only_then(store, other):
    before = settled_mark(store)
    assert store.change_mark() == before
    store.list_jobs()  # reading changes nothing
    assert store.change_mark() == before
    other.create_job("a.wav", "/x/a.wav", TranscribeOptions())
    wait_for(lambda: store.change_mark() != before, 10, what="the mark to move")  # at once on SQLite


def settled_mark(store):
    """The mark once it holds still: a mark may move once more than the commits did (PostgreSQL's
    moves when its listener starts, since something could have been missed before)."""
    marks = [store.change_mark()]
    while len(marks) < 2 or marks[-1] != marks[-2]:
        time.sleep(0.3)
        marks.append(store.change_mark())
        assert len(marks) < 30, "the change mark never held still"
    return marks[-1]


def test_queuing_a_service_job_rings_the_listening_service(store, other, make_job):
    from ttservice.supervision.waiting import wait_readable

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
    assert store.queued_jobs({Runner.SERVICE}) == []
    store.hand_upload_to_service(job_id, "/uploads/talk.wav")
    assert store.queued_jobs({Runner.SERVICE}) == [job_id]
    saved = actions.submit_upload(store, settings, "talk.wav", b"RIFF....", TranscribeOptions())
    job = store.get_job(saved)
    assert job.runner is Runner.SERVICE and job.media_path.endswith("talk.wav")


def all_at_once(act, stores) -> None:
    """`act(n, store)` in a thread per store, all released at once; then the stores are closed."""
    start = threading.Barrier(len(stores))

    def run(n, store):
        start.wait()
        act(n, store)

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in enumerate(stores)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for store in stores:
            store.close()


def test_racing_claims_take_each_job_once_and_never_more_than_the_limit(store, settings, make_job):
    """Eight claimers, each with its own connections (as eight machines would), race for six jobs
    with room for three."""
    ids = [make_job() for _ in range(6)]
    claimers = [open_store(settings) for _ in range(8)]
    won: list[tuple[int, int]] = []

    def race(n, claimer):
        for job_id in ids:
            if claimer.claim(job_id, max_concurrent=3):
                won.append((n, job_id))

    all_at_once(race, claimers)
    claimed = [job_id for _, job_id in won]
    assert len(claimed) == 3 and len(set(claimed)) == 3
    assert {j.id for j in store.active_jobs()} == set(claimed)


def test_a_superseded_worker_changes_nothing(store, other, make_job):
    """Once another process has ended the job, the worker's heartbeat, segments and media info are
    refused, and what it wrote before stays."""
    job_id = make_job()
    assert store.claim(job_id, 1)
    assert store.add_segments(job_id, [Segment(0, 1, "kept")], 1, 0.5)
    assert other.transition(job_id, JobStatus.INTERRUPTED, error_message="host gone")
    assert not store.heartbeat(job_id)
    assert not store.add_segments(job_id, [Segment(1, 2, "late")], 2, 1.0)
    store.set_media_info(job_id, 99.0, "th")
    job = other.get_job(job_id)
    assert (job.status, job.progress, job.duration) == (JobStatus.INTERRUPTED, 0.5, None)
    assert [s.text for s in other.segments(job_id)] == ["kept"]


HOST_A, HOST_B = HostId("alpha", "boot-1"), HostId("beta", "boot-7")


def test_slots_are_each_machines_own(store, make_job):
    """A machine's claims count the jobs running on it, not those of other machines."""
    ids = [make_job() for _ in range(4)]
    assert store.claim(ids[0], 1, host=HOST_A) == 1
    assert store.claim(ids[1], 1, host=HOST_A) is None  # alpha's one slot is taken
    assert store.claim(ids[1], 1, host=HOST_B) == 1
    job = store.get_job(ids[1])
    assert (job.host, job.host_boot_id, job.attempt) == ("beta", "boot-7", 1)
    assert job.to_dict()["host"] == "beta" and job.to_dict()["attempt"] == 1


def test_writes_of_a_superseded_attempt_change_nothing(store, other, make_job):
    """Attempt 1 lost its machine and the job runs again as attempt 2: every write attempt 1 still
    makes (heartbeat, segments, media info, its end) is refused, and attempt 2's go through."""
    job_id = make_job()
    first = store.claim(job_id, 1, host=HOST_A)
    assert store.add_segments(job_id, [Segment(0, 1, "one")], 1, 0.25, attempt=first)
    assert other.recover_lost(job_id, first, "alpha went silent", resume=True) is JobStatus.QUEUED
    queued = other.get_job(job_id)
    assert (queued.status, queued.resumed_from, queued.processed_seconds) == (JobStatus.QUEUED, 1, 1)
    second = other.claim(job_id, 1, host=HOST_B)
    assert second == 2
    assert not store.heartbeat(job_id, attempt=first)
    assert not store.add_segments(job_id, [Segment(1, 2, "late")], 2, 0.5, attempt=first)
    store.set_media_info(job_id, 99.0, "th", attempt=first)
    assert not store.transition(job_id, JobStatus.COMPLETED, attempt=first, exit_code=0)
    assert not store.transition(job_id, JobStatus.FAILED, attempt=first, error_message="late")
    assert other.heartbeat(job_id, attempt=second)
    assert other.add_segments(job_id, [Segment(1, 2, "two")], 2, 1.0, attempt=second)
    assert other.transition(job_id, JobStatus.COMPLETED, attempt=second, exit_code=0)
    job = store.get_job(job_id)
    assert (job.status, job.host, job.attempt, job.duration) == (JobStatus.COMPLETED, "beta", 2, None)
    assert [s.text for s in store.segments(job_id)] == ["one", "two"]


def test_each_attempt_has_its_own_media_token_and_the_first_hash_is_kept(store, other, make_job):
    job_id = make_job()
    assert store.media_token(job_id, 1) is None and store.media_grant(job_id, "") is None  # queued
    first = store.claim(job_id, 1, host=HOST_A)
    token = store.media_token(job_id, first)
    assert token and store.media_grant(job_id, token) == (str(JFK_WAV), None)
    assert other.media_grant(job_id, token + "x") is None
    assert other.record_media_sha256(job_id, "a" * 64) == "a" * 64
    assert store.record_media_sha256(job_id, "b" * 64) == "a" * 64  # the first machine's hash stays
    other.recover_lost(job_id, first, "alpha went silent", resume=True)
    second = other.claim(job_id, 1, host=HOST_B)
    fresh = other.media_token(job_id, second)
    assert fresh != token and store.media_token(job_id, first) is None
    assert store.media_grant(job_id, token) is None  # the superseded attempt's opens nothing
    assert store.media_grant(job_id, fresh) == (str(JFK_WAV), "a" * 64)
    assert store.transition(job_id, JobStatus.COMPLETED, attempt=second)
    assert store.media_grant(job_id, fresh) is None  # nor one of a job that ended


def test_a_jobs_log_copy_is_read_back_as_its_last_lines_and_deleted_with_it(store, other, make_job):
    job_id, neighbour = make_job(), make_job()
    assert store.log_tail(job_id) == []
    for n in range(120):  # more chunks than one page of the tail's reading
        store.append_log(job_id, 1 + n // 60, f"line {2 * n}\nline {2 * n + 1}\n")
    other.append_log(neighbour, 1, "another job's line\n")
    assert other.log_tail(job_id, 5) == [f"line {n}" for n in range(235, 240)]
    assert store.log_tail(job_id, 1000) == [f"line {n}" for n in range(240)]
    store.delete_job(job_id)
    assert other.log_tail(job_id) == [] and other.log_tail(neighbour) == ["another job's line"]


def test_a_lost_attempt_is_recovered_once_and_a_stop_asked_meanwhile_wins(store, settings, make_job):
    resumed, stopped, kept = make_job(), make_job(), make_job(runner=Runner.FOREGROUND)
    for job_id in (resumed, stopped, kept):
        store.claim(job_id, 5, host=HOST_A)
    store.request_stop(stopped, reason="Stopped from beta.")
    sweepers = [open_store(settings) for _ in range(4)]  # four machines sweep at the same moment
    answers = []
    all_at_once(lambda n, sweeper: answers.append(sweeper.recover_lost(resumed, 1, "gone", True)), sweepers)
    assert (answers.count(JobStatus.QUEUED), answers.count(None)) == (1, 3)
    assert store.get_job(resumed).status is JobStatus.QUEUED
    assert store.recover_lost(stopped, 1, "gone", resume=True) is JobStatus.CANCELLED
    assert store.get_job(stopped).error == "Stopped from beta."
    # Only the service's jobs resume by themselves: a foreground command is not there to run it again.
    assert store.recover_lost(kept, 1, "The job was interrupted: alpha went silent.", resume=True) is (
        JobStatus.INTERRUPTED
    )
    assert store.get_job(kept).error == "The job was interrupted: alpha went silent."
    assert store.recover_lost(kept, 1, "again", resume=True) is None


def test_machines_register_and_a_new_boot_starts_anew(store, other):
    store.register_host(HOST_A, 2, "0.1.0", now=100.0)
    assert store.host_seen(HOST_A, now=160.0)
    assert not store.host_seen(HOST_B)  # never registered
    other.register_host(HOST_B, 1, "0.1.0", now=150.0)
    assert [(h.name, h.slots, h.started_at, h.last_seen) for h in store.list_hosts()] == [
        ("alpha", 2, 100.0, 160.0),
        ("beta", 1, 150.0, 150.0),
    ]
    rebooted = HostId("alpha", "boot-2")
    store.register_host(rebooted, 4, "0.1.0", now=200.0)
    assert not store.host_seen(HOST_A)  # the boot before is over
    alpha = store.list_hosts()[0]
    assert (alpha.boot_id, alpha.slots, alpha.started_at) == ("boot-2", 4, 200.0)
    assert alpha.to_dict()["name"] == "alpha"


def test_stops_asked_are_listed_for_the_machine_that_runs_the_job(store, other, make_job):
    on_a, on_b = make_job(), make_job()
    store.claim(on_a, 5, host=HOST_A)
    store.claim(on_b, 5, host=HOST_B)
    assert store.stop_requests(HOST_A) == []
    other.request_stop(on_a, reason="Stopped by the user.")
    other.request_stop(on_b, reason="Stopped by the user.")
    assert store.stop_requests(HOST_A) == [on_a]
    assert store.stop_requests(HostId("alpha", "boot-2")) == []  # not the boot it runs in


def test_a_resumed_job_keeps_its_segments_and_resumes_after_the_last(store, make_job):
    job_id = make_job()
    store.claim(job_id, 1)
    store.add_segments(job_id, [Segment(0, 2.5, "one", tokens=[1, 2], window=0.0)], 2.5, 0.25)
    store.request_stop(job_id, reason="Stopped by the user.")
    store.transition(job_id, JobStatus.CANCELLED, error_message="Stopped by the user.")
    assert store.resume_point(job_id) == 2.5
    assert store.requeue_for_resume(job_id, Runner.SERVICE)
    assert not store.requeue_for_resume(job_id, Runner.SERVICE)  # queued already
    job = store.get_job(job_id)
    assert (job.status, job.resumed_from, job.stop_requested_at) == (JobStatus.QUEUED, 2.5, None)
    assert store.segments(job_id)[0].tokens == [1, 2]


def test_a_finished_job_is_queued_to_label_its_speakers_only_with_its_transcript_whole(store, make_job):
    from ttservice.messages import Message

    job_id = make_job()
    store.claim(job_id, 1)
    store.add_segments(job_id, [Segment(0, 2.5, "one")], 2.5, 0.5)
    store.transition(job_id, JobStatus.FAILED, error_message="Stopped.")
    labelled = TranscribeOptions(speakers="2")
    assert not store.requeue_for_labelling(job_id, Runner.SERVICE, labelled)  # half its media
    store.transition(job_id, JobStatus.QUEUED)
    store.claim(job_id, 1)
    store.add_segments(job_id, [], 5.0, 1.0)
    store.add_warning(job_id, Message("speakers.failed", error="boom", job_id=job_id))
    store.add_warning(job_id, Message("memory.one_at_a_time"))
    assert not store.requeue_for_labelling(job_id, Runner.SERVICE, labelled)  # still running
    store.transition(job_id, JobStatus.COMPLETED, exit_code=0)
    assert store.requeue_for_labelling(job_id, Runner.FOREGROUND, labelled)
    job = store.get_job(job_id)
    assert (job.status, job.runner, job.options.speakers, job.progress) == (
        JobStatus.QUEUED,
        Runner.FOREGROUND,
        "2",
        1.0,
    )
    assert [w.code for w in job.warnings] == ["memory.one_at_a_time"] and job.finished_at is None
    assert [s.text for s in store.segments(job_id)] == ["one"]


def test_a_stop_keeps_its_first_reason(store, make_job):
    job_id = make_job()
    store.claim(job_id, 1)
    store.request_stop(job_id, reason="Stopped by the user.")
    store.request_stop(job_id, reason="Stopped because its page was left.")
    store.record_exit(job_id, -15)
    store.record_exit(job_id, 0)
    job = store.get_job(job_id)
    assert (job.stop_reason, job.exit_code) == ("Stopped by the user.", -15)


def test_the_sweep_finalises_a_silent_job_by_the_stores_clock(store, settings, make_job):
    """The sweep judges heartbeats by the store's clock: a job silent for longer than the orphan
    timeout is failed, one that heartbeats is left alone, and one whose process is gone is failed
    at once."""
    from ttservice.supervision.process_manager import ProcessManager

    silent, beating, gone = make_job(), make_job(), make_job()
    now = store.clock()
    assert abs(now - time.time()) < 5  # the database's clock and this machine's agree here
    store.claim(silent, 5, now=now - settings.orphan_timeout - 60)
    store.claim(beating, 5, now=now - settings.orphan_timeout - 60)
    assert store.heartbeat(beating)  # by the store's clock: now
    store.claim(gone, 5)
    store.register_process(gone, 2**22 + 12345, 1.0, None)  # a process that does not exist
    result = ProcessManager(store, settings).cleanup_orphaned_processes()
    assert sorted(job for job, _ in result.finalized) == [silent, gone]
    assert store.get_job(beating).status is JobStatus.PROCESSING
    assert "no heartbeat for" in store.get_job(silent).error
    assert store.get_job(gone).status is JobStatus.FAILED


def test_one_download_per_model_however_many_ask_at_once(store, settings):
    askers = [open_store(settings) for _ in range(6)]
    answers = []

    def ask(n, asker):
        answers.append(asker.start_download("base", "Systran/faster-whisper-base", Runner.SERVICE))

    all_at_once(ask, askers)
    assert len({download_id for download_id, _ in answers}) == 1
    assert sorted(created for _, created in answers) == [False] * 5 + [True]
    download_id = answers[0][0]
    assert store.download_progress(download_id, 10, 100)
    assert store.finish_download(download_id, JobStatus.COMPLETED)
    assert not store.download_heartbeat(download_id)  # ended: refused
    again, created = store.start_download("base", "Systran/faster-whisper-base", Runner.SERVICE)
    assert created and again != download_id
    assert store.latest_download("Systran/faster-whisper-base").id == again


def test_opening_again_migrates_nothing_and_keeps_everything(store, settings, make_job):
    job_id = make_job()
    store.claim(job_id, 1)
    store.add_segments(job_id, [Segment(0, 1, "kept")], 1, 1)
    version = store.schema_version()
    reopened = open_store(settings)
    try:
        assert reopened.schema_version() == version
        assert reopened.migration_backups == []
        assert [s.text for s in reopened.segments(job_id)] == ["kept"]
        assert reopened.writable()
    finally:
        reopened.close()


def test_a_correction_is_read_everywhere_keeps_the_original_and_can_be_undone(store, make_job):
    job_id = make_job()
    store.claim(job_id, 5)
    words = [{"start": 2.0, "end": 2.5, "word": " can"}, {"start": 2.5, "end": 4.0, "word": " do for you"}]
    spoken = [Segment(0.0, 2.0, "ask not what your country"), Segment(2.0, 4.0, "can do for you", words)]
    store.add_segments(job_id, spoken, 4.0, 0.5)
    assert store.edit_segment(job_id, 1, {"text": "can do for yourself", "speaker": "คุณสมชาย"}, now=10.0)
    first, second = store.segments(job_id)
    assert (second.text, second.speaker, second.edited) == ("can do for yourself", "คุณสมชาย", True)
    assert second.words is None  # the engine's word timings were for the engine's words
    assert not first.edited and first.speaker is None
    assert store.page_of_jobs(search="yourself")[0] == 1  # search reads the corrected text
    assert store.page_of_jobs(search="คุณสมชาย")[0] == 0  # a speaker's name is not the speech
    assert store.edit_segment(job_id, 1, {"speaker": None}, now=11.0)  # text stays
    assert (
        store.segments(job_id)[1].text == "can do for yourself" and store.segments(job_id)[1].speaker is None
    )
    # stopped and resumed, the job goes on after its last segment: the corrections stay
    store.transition(job_id, JobStatus.CANCELLED)
    assert store.requeue_for_resume(job_id, Runner.SERVICE) and store.claim(job_id, 5)
    store.add_segments(job_id, [Segment(4.0, 5.0, "my fellow Americans")], 5.0, 1.0)
    assert [s.text for s in store.segments(job_id)][1:] == ["can do for yourself", "my fellow Americans"]
    history = store.segment_revisions(job_id, 1)
    assert [(r["kind"], r["text"], r["speaker"]) for r in history] == [
        ("original", "can do for you", None),
        ("edit", "can do for yourself", "คุณสมชาย"),
        ("edit", "can do for yourself", None),
    ]
    assert store.restore_segment(job_id, 1, now=12.0)
    assert store.segments(job_id)[1] == spoken[1] and not store.segments(job_id)[1].edited
    assert store.page_of_jobs(search="yourself")[0] == 0
    assert store.segment_revisions(job_id, 1)[-1]["kind"] == "restore"
    assert not store.edit_segment(job_id, 3, {"text": "no such segment"})
    assert not store.restore_segment(job_id, -1)
    with pytest.raises(ValueError):
        store.edit_segment(job_id, 0, {"start": "0"})


def test_speakers_are_named_merged_and_timed_and_readers_see_the_names(store, make_job):
    job_id = make_job()
    store.claim(job_id, 5)
    labels = ["SPEAKER_1", "SPEAKER_2", "SPEAKER_1", "SPEAKER_3"]
    spoken = [Segment(i * 3.0, i * 3.0 + 2.0, f"line {i}") for i in range(4)]
    store.add_segments(job_id, spoken, 12.0, 1.0)
    for i, label in enumerate(labels):  # as labelling would set them (no correction)
        store.edit_segment(job_id, i, {"speaker": label})
    assert [s["label"] for s in store.speakers(job_id)] == ["SPEAKER_1", "SPEAKER_2", "SPEAKER_3"]
    assert store.speakers(job_id)[0] == {"label": "SPEAKER_1", "name": None, "talk_seconds": 4.0,
                                         "segments": 2, "first_start": 0.0}  # fmt: skip
    assert store.name_speaker(job_id, "SPEAKER_1", "คุณสมชาย")
    assert [s.speaker for s in store.segments(job_id)] == ["คุณสมชาย", "SPEAKER_2", "คุณสมชาย", "SPEAKER_3"]
    assert store.name_speaker(job_id, "คุณสมชาย", "คุณสมชาย ใจดี")  # by the name it has now
    assert store.merge_speakers(job_id, "SPEAKER_3", "คุณสมชาย ใจดี")
    assert [s.speaker for s in store.segments(job_id)] == ["คุณสมชาย ใจดี", "SPEAKER_2"] + ["คุณสมชาย ใจดี"] * 2
    first = store.speakers(job_id)[0]
    assert (first["name"], first["talk_seconds"], first["segments"]) == ("คุณสมชาย ใจดี", 6.0, 3)
    assert store.edit_segment(job_id, 1, {"speaker": "คุณสมชาย ใจดี"})  # a name stands for its label
    assert [s["label"] for s in store.speakers(job_id)] == ["SPEAKER_1"]
    assert store.name_speaker(job_id, "SPEAKER_1", "")  # the name taken away: the label again
    assert {s.speaker for s in store.segments(job_id)} == {"SPEAKER_1"}
    assert not store.name_speaker(job_id, "SPEAKER_9", "x") and not store.merge_speakers(
        job_id, "SPEAKER_1", "x"
    )
