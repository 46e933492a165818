"""Item 13 of bench/run.py: the PostgreSQL store against the SQLite store.

Figures: a heartbeat and a segment commit (three segments with the job's progress, what a
worker commits per window), p50 and p95, written by four worker processes at once as four
running jobs are, each write after a pause as a worker's are; the first statement and the first
transaction after a server restart, with the pool's four connections all closed by it (on a
server of the bench's own); then item 12's search over 10,000 jobs and a million segments, on
PostgreSQL.

PostgreSQL is the one `TTSERVICE_BENCH_DATABASE_URL` names (default: the test database on
127.0.0.1), in a schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ttservice.config import Settings
from ttservice.jobs import TranscribeOptions, open_store
from ttservice.jobs.postgres.connection import Database

from .search import search

DATABASE_URL = os.environ.get("TTSERVICE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
WRITERS, WRITES, PAUSE = 4, 300, 0.02

WRITER = """
import sys, time
from pathlib import Path
from ttservice.config import Settings
from ttservice.jobs import Segment, open_store
data_dir, url, job, kind, count, pause = sys.argv[1:7]
store = open_store(Settings.from_env({}, data_dir=Path(data_dir), database_url=url))
job, out = int(job), []
for i in range(int(count)):
    start = time.perf_counter()
    if kind == "heartbeat":
        ok = store.heartbeat(job)
    else:
        window = [Segment(i * 3.0 + k, i * 3.0 + k + 1, f"segment {i} part {k}") for k in range(3)]
        ok = store.add_segments(job, window, i * 3.0 + 3, min(i / int(count), 1.0))
    out.append((time.perf_counter() - start) * 1000)
    assert ok, "the write was refused"
    time.sleep(float(pause))
store.close()
print(" ".join(f"{v:.4f}" for v in out))
"""


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A schema of its own on the bench's PostgreSQL database, as a connection string."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield make_conninfo(DATABASE_URL, options=f"-csearch_path={schema},public")
    finally:
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _writes(data_dir: Path, url: str, kind: str) -> list[float]:
    """Milliseconds per write, from WRITERS processes each writing for its own running job."""
    store = open_store(Settings.from_env({}, data_dir=data_dir, database_url=url))
    jobs = []
    for _ in range(WRITERS):
        job_id = store.create_job("talk.wav", "/m/talk.wav", TranscribeOptions())
        store.claim(job_id, WRITERS)
        jobs.append(job_id)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(data_dir), url, str(j), kind, str(WRITES), str(PAUSE)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for j in jobs
    ]
    values = [float(v) for w in writers for v in w.communicate()[0].split()]
    if any(w.returncode for w in writers):
        raise RuntimeError(f"a {kind} writer failed")
    if url:
        store.db.execute("TRUNCATE transcription_jobs CASCADE")
    store.close()
    return values


def stores(figures, work: Path, runs: int) -> None:
    with postgres_schema() as url:
        for kind in ("heartbeat", "segment commit"):
            for name, where in (("SQLite", ""), ("PostgreSQL", url)):
                p50s, p95s = [], []
                for run in range(runs):  # each run on a new database (SQLite) or emptied schema
                    data_dir = work / f"stores-{kind}-{name}-{run}".replace(" ", "-")
                    values = _writes(data_dir, where, kind)
                    p50s.append(statistics.median(values))
                    p95s.append(statistics.quantiles(values, n=20)[18])
                figures.add("13 stores", f"{kind}, {name}, {WRITERS} writers: p50", p50s, "ms")
                figures.add("13 stores", f"{kind}, {name}, {WRITERS} writers: p95", p95s, "ms")
        after_restart(figures, runs)
        search(figures, work, runs, database_url=url, item="13 search on PostgreSQL")


def after_restart(figures, runs: int) -> None:
    from tests.conftest import own_cluster

    statement, transaction = [], []
    with own_cluster() as cluster:
        db = Database(cluster.url, lambda error: None)
        db.open()
        db.execute("CREATE TABLE IF NOT EXISTS bench_restart (x int)")
        try:
            for _ in range(runs):
                for took, write in ((statement, _statement), (transaction, _transaction)):
                    _fill(db)
                    cluster.pg_ctl("restart", "-m", "fast")  # returns once the server answers again
                    started = time.perf_counter()
                    write(db)
                    took.append(time.perf_counter() - started)
        finally:
            db.close()
    figures.add("13 stores", "first statement after a restart (4 pooled connections closed)", statement, "s")
    figures.add("13 stores", "first transaction after a restart", transaction, "s")


def _fill(db: Database) -> None:
    """Four connections in the pool at once, so that the restart closes four."""

    def hold() -> None:
        with db.pool.connection() as conn:
            conn.execute("SELECT pg_sleep(0.2)")

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _statement(db: Database) -> None:
    db.execute("SELECT 1")


def _transaction(db: Database) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT INTO bench_restart VALUES (1)")
