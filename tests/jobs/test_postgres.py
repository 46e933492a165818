"""What is the PostgreSQL store's own: the server's clock, reconnecting, its schema versions, its
sentences, its trigram index, and a whole job through the service on it."""

import signal
import subprocess
import sys
import time

import psycopg
import pytest

from ttservice.exceptions import MigrationError
from ttservice.jobs import HostId, JobStatus, Runner, Segment, open_store
from ttservice.jobs.postgres.connection import placeholders

from ..conftest import (
    JFK_WAV,
    env_for,
    make_settings,
    start_transcribe,
    stop_process,
    sweeper_holders,
    ttservice,
    wait_for,
    words,
)


@pytest.fixture
def settings(tmp_path, postgres_url):
    return make_settings(tmp_path / "data", database_url=postgres_url)


def sql(url: str, query: str, params=()):
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else None


def test_the_shared_queries_placeholders_become_psycopgs():
    assert placeholders("SELECT ? FROM t WHERE a = ? AND b LIKE '%?%'") == (
        "SELECT %s FROM t WHERE a = %s AND b LIKE '%%?%%'"
    )
    assert placeholders("SELECT \"a?b\", 'it''s?' , ?") == "SELECT \"a?b\", 'it''s?' , %s"


def test_times_are_the_database_servers_whatever_this_machines_clock_says(store, make_job, monkeypatch):
    job_id = make_job()
    store.claim(job_id, 1)
    server = sql(store.url, "SELECT extract(epoch FROM clock_timestamp())::float8")[0][0]
    monkeypatch.setattr(time, "time", lambda: server + 3600.0)  # this host's clock is an hour fast
    assert store.heartbeat(job_id)
    beat = store.get_job(job_id).last_heartbeat
    assert abs(beat - server) < 5 and abs(store.clock() - server) < 5


def test_the_store_reconnects_when_the_server_drops_its_connections(store, make_job, settings):
    job_id = make_job()
    store.claim(job_id, 1)
    assert store.change_mark() is not None  # its listener is connected too
    # What a server restart does to every client: each connection is closed under it.
    schema = store.db.read("SELECT current_schema() AS s")[0]["s"]
    dropped = sql(
        store.url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = %s AND pid <> pg_backend_pid()",
        [schema],
    )[0][0]
    assert dropped >= 1
    assert store.heartbeat(job_id)  # a new connection, not an error
    assert store.add_segments(job_id, [Segment(0, 1, "after the restart")], 1, 0.5)
    assert [s.text for s in store.segments(job_id)] == ["after the restart"]
    before = store.change_mark()
    assert store.transition(job_id, JobStatus.COMPLETED)
    wait_for(lambda: store.change_mark() != before, 20, what="the listener back")


def test_a_schema_newer_than_this_ttservice_is_refused(store, settings):
    store.db.execute("INSERT INTO ttservice_schema (version) VALUES (99)")
    with pytest.raises(MigrationError, match="schema version 99, newer than this TTService"):
        open_store(settings)


def test_search_goes_through_the_trigram_index(store, make_job):
    job_id = make_job()
    store.claim(job_id, 1)
    store.add_segments(job_id, [Segment(0, 1, "การประชุมงบประมาณประจำปี")], 1, 1)
    where, params, indexed = store._filters(None, "ประชุม")
    assert indexed
    with store.db.pool.connection() as conn:
        conn.execute("SET enable_seqscan = off")  # a table this small would be scanned otherwise
        plan = conn.execute(
            placeholders(f"EXPLAIN SELECT id FROM transcription_jobs {where}"), params
        ).fetchall()
        conn.execute("RESET enable_seqscan")
    assert "idx_segments_text_trigram" in " ".join(row[0] for row in plan)


def test_an_unreachable_database_is_one_sentence(tmp_path):
    settings = make_settings(tmp_path / "data", database_url="postgresql://postgres@127.0.0.1:1/nowhere")
    run = ttservice(settings, "jobs", timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "Error: The database (PostgreSQL at 127.0.0.1:1/nowhere) could not be reached: connection refused."
    )


def test_backups_are_left_to_the_servers_tools(settings, store):
    run = ttservice(settings, "db", "backup")
    assert run.returncode == 1 and "back it up with pg_dump" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.model
def test_a_job_submitted_by_one_process_runs_in_the_service_of_another(settings):
    """The service sleeps on LISTEN; `ttservice submit` queues a job in another process; the
    service's worker transcribes it, writing heartbeats and segments to PostgreSQL."""
    from ..conftest import headless_service

    serve = headless_service(settings)
    store = open_store(settings)
    try:
        submitted = ttservice(settings, "submit", str(JFK_WAV))
        assert submitted.returncode == 0, submitted.stderr
        job_id = int(submitted.stdout.split()[-1])
        wait_for(lambda: store.get_job(job_id).finished, 180, what="the job done")
        job = store.get_job(job_id)
        assert job.status is JobStatus.COMPLETED, job.error
        said = " ".join(words(" ".join(s.text for s in store.segments(job_id))))
        assert "ask not what your country can do for you" in said
        assert job.last_heartbeat >= job.started_at
        shown = ttservice(settings, "show", str(job_id))
        assert "status: completed" in shown.stdout
    finally:
        stop_process(serve)
        store.close()


@pytest.mark.model
def test_a_job_survives_restarts_of_the_database_server(tmp_path, cluster, long_speech):
    """The server restarts twice while `ttservice transcribe` runs: its worker's heartbeats and
    segments wait for it and go on, and the transcript has every window once."""
    # One thread decodes two clips at a time: after the first segment, three of five are left.
    settings = make_settings(
        tmp_path / "data", database_url=cluster.url, heartbeat_interval=0.2, cpu_threads=1
    )
    proc, store, job = start_transcribe(settings, long_speech)
    try:
        for _ in range(2):
            assert proc.poll() is None, "the job ended before the restart"
            cluster.pg_ctl("restart", "-m", "fast")
            time.sleep(1.0)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        job = store.get_job(job.id)
        assert job.status is JobStatus.COMPLETED and job.progress == 1.0
        segments = store.segments(job.id)
        assert len({(s.start, s.end) for s in segments}) == len(segments)  # none written twice
        assert all(a.end <= b.start + 0.01 for a, b in zip(segments, segments[1:], strict=False))
        assert segments[-1].end > job.duration - 10  # to the end of the speech
    finally:
        if proc.poll() is None:
            proc.kill()
        store.close()


def tasks(url: str) -> list[tuple]:
    return sql(url, "SELECT args->>'job_id', status::text, lock FROM procrastinate_jobs ORDER BY id")


def test_a_queued_service_job_gets_one_engine_task_in_the_transaction_that_queued_it(
    store, make_job, settings
):
    url = settings.database_url
    service = make_job()
    make_job(runner=Runner.FOREGROUND)  # a command runs it itself: no task
    upload = make_job(runner=Runner.UPLOAD)
    assert tasks(url) == [(str(service), "todo", f"ttservice-job-{service}")]
    store.hand_upload_to_service(upload, str(JFK_WAV))  # its file is saved: now the service's
    assert [t[0] for t in tasks(url)] == [str(service), str(upload)]
    with pytest.raises(RuntimeError), store.db.transaction() as conn:  # rolled back: neither exists
        conn.execute(
            "INSERT INTO transcription_jobs (original_filename, status, runner)"
            " VALUES ('x', 'queued', 'service')"
        )
        raise RuntimeError
    assert len(tasks(url)) == 2


def test_a_lost_runs_task_fails_and_frees_the_lock_for_the_next_attempts(store, make_job, settings):
    url = settings.database_url
    job_id = make_job()
    sql(url, "UPDATE procrastinate_jobs SET status = 'doing'")  # an agent took it ...
    store.claim(job_id, 1, host=HostId("alpha", "boot-1"))  # ... and ran it, then went silent
    assert store.recover_lost(job_id, 1, "alpha went silent", resume=True) is JobStatus.QUEUED
    assert [t[1] for t in tasks(url)] == ["failed", "todo"]


def test_the_periodic_look_gives_a_task_to_a_queued_job_left_without_one(store, make_job, settings):
    url = settings.database_url
    orphaned, waiting = make_job(), make_job()
    # The first job's task is running on an engine worker that is gone; the second's ended unrun.
    sql(url, "UPDATE procrastinate_jobs SET status = 'doing' WHERE args->>'job_id' = %s", [str(orphaned)])
    sql(url, "UPDATE procrastinate_jobs SET status = 'succeeded' WHERE args->>'job_id' = %s", [str(waiting)])
    assert store.ensure_tasks() == 2
    assert sorted(tasks(url)) == sorted(
        [
            (str(orphaned), "failed", f"ttservice-job-{orphaned}"),
            (str(waiting), "succeeded", f"ttservice-job-{waiting}"),
            (str(orphaned), "todo", f"ttservice-job-{orphaned}"),
            (str(waiting), "todo", f"ttservice-job-{waiting}"),
        ]
    )
    assert store.ensure_tasks() == 0  # each has its task now


def sweeper_sessions(url: str) -> list[int]:
    return [pid for pid, _ in sweeper_holders(url)]


def service(store, settings, name: str):
    """A manager of one of the machines (registered, as `serve` and `agent` make theirs)."""
    from ttservice.supervision.process_manager import ProcessManager

    pm = ProcessManager(store, settings)
    pm.host = HostId(name, "boot-1")
    pm.register_host()
    return pm


def test_other_machines_silent_jobs_are_recovered_by_the_sweeper_alone(store, settings, make_job):
    """The service holding the sweeper's lock recovers another machine's silent job; a second
    service, and a command, leave it alone until the holder goes; then the second takes the lock."""
    from ttservice.supervision.process_manager import ProcessManager

    holder, second = open_store(settings), open_store(settings)
    try:
        assert holder.is_sweeper("gamma") and holder.is_sweeper("gamma")  # taken, and kept
        assert len(sweeper_sessions(settings.database_url)) == 1
        job_id = make_job()
        store.claim(
            job_id, 1, host=HostId("alpha", "boot-1"), now=store.clock() - settings.orphan_timeout - 60
        )
        assert service(second, settings, "delta").cleanup_orphaned_processes().finalized == []
        assert ProcessManager(store, settings).cleanup_orphaned_processes().finalized == []  # a command
        assert store.get_job(job_id).status is JobStatus.PROCESSING
        holder.close()  # its service stopped: the server let the lock go with the session
        finalized = service(second, settings, "delta").cleanup_orphaned_processes().finalized
        assert [(i, str(why)) for i, why in finalized] == [(job_id, "alpha went silent")]
        job = store.get_job(job_id)
        assert (job.status, job.resumed_from) == (JobStatus.QUEUED, 0)
        assert second.is_sweeper("delta") and not store.is_sweeper("epsilon") and not store.is_sweeper(None)
    finally:
        holder.close()
        second.close()


def test_a_sweeper_whose_session_was_ended_takes_the_lock_again_on_a_new_one(store, settings):
    assert store.is_sweeper("gamma")
    [ended] = sweeper_sessions(settings.database_url)
    sql(settings.database_url, "SELECT pg_terminate_backend(%s)", [ended])  # a server restart does this
    assert store.is_sweeper("gamma")
    [now] = sweeper_sessions(settings.database_url)
    assert now != ended


HOLD = """
import sys, time
from ttservice.jobs import open_store
from ttservice.config import Settings
store = open_store(Settings.from_env())
print(store.is_sweeper(sys.argv[1]), flush=True)
time.sleep(600)
"""


def holding_process(settings, name: str) -> subprocess.Popen:
    """Another service's process that takes the sweeper's lock as `name`, then does nothing."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, name], env=env_for(settings), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "True"
    return proc


def test_the_lock_of_a_sweeper_killed_outright_goes_to_the_next_service(store, settings):
    proc = holding_process(settings, "gamma")
    try:
        assert not store.is_sweeper("delta")
        proc.kill()  # its machine closes the socket: the server ends the session, and the lock
        proc.wait()
        assert wait_for(lambda: store.is_sweeper("delta"), 30)
    finally:
        stop_process(proc)


def test_a_hung_sweeper_whose_machine_stopped_renewing_its_contact_loses_the_lock(store, settings):
    from ttservice.jobs.postgres.sweeper import HUNG_AFTER

    now = store.clock()
    store.register_host(HostId("gamma", "boot-1"), 1, now=now - HUNG_AFTER + 30)
    proc = holding_process(settings, "gamma")
    try:
        proc.send_signal(signal.SIGSTOP)  # alive to the server (its kernel answers), but doing nothing
        assert not store.is_sweeper("delta")  # gamma's contact is 60 s old: not hung yet
        store.host_seen(HostId("gamma", "boot-1"), now=now - HUNG_AFTER - 30)
        assert store.is_sweeper("delta")
        assert len(sweeper_sessions(settings.database_url)) == 1
    finally:
        proc.send_signal(signal.SIGCONT)
        stop_process(proc)


def test_a_segment_commit_cut_by_a_lost_connection_is_sent_again_once(store, make_job, monkeypatch):
    """The server ends the connection in the middle of the commit (as a restart does): the commit is
    sent again on a new one, and its segment is written once."""
    job_id = make_job()
    store.claim(job_id, 1)
    real = store._add_segments
    cut = []

    def cut_once(conn, *args):
        if not cut:
            cut.append(True)
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return real(conn, *args)

    monkeypatch.setattr(store, "_add_segments", cut_once)
    assert store.add_segments(job_id, [Segment(0, 2, "once")], 2, 0.1, attempt=1)
    assert cut and [s.text for s in store.segments(job_id)] == ["once"]


def test_a_segment_commit_that_arrived_before_its_connection_was_lost_is_not_written_twice(
    store, make_job, monkeypatch
):
    from contextlib import contextmanager

    from ttservice.exceptions import ConnectionLost

    job_id = make_job()
    store.claim(job_id, 1)
    real = store.db.transaction
    lost = []

    @contextmanager
    def reply_lost_once():
        with real() as conn:
            yield conn
        if not lost:  # committed, but the answer never came back
            lost.append(True)
            raise ConnectionLost(
                "store.unreachable", where="PostgreSQL", error="server closed the connection"
            )

    monkeypatch.setattr(store.db, "transaction", reply_lost_once)
    assert store.add_segments(job_id, [Segment(0, 2, "once")], 2, 0.1, attempt=1)
    assert lost and [s.text for s in store.segments(job_id)] == ["once"]
    assert store.get_job(job_id).processed_seconds == 2
