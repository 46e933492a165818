"""The scale-out issue's prototype: does Procrastinate keep TTService's invariants?

Not part of the suite (Procrastinate is not a dependency yet). Run it against a scratch database:

    python3 -m venv /tmp/proto && /tmp/proto/bin/pip install procrastinate "psycopg[binary,pool]"
    psql -h 127.0.0.1 -U postgres -c 'create database proto'
    /tmp/proto/bin/python bench/prototypes/procrastinate_invariants.py

It checks, with real worker processes (one slot each, standing for two hosts):
1. a task is enqueued in the job's own transaction (the SQL function, not the app's own
   connection): rolled back, neither the job row nor the task exists;
2. a job has at most one queued task (`queueing_lock`);
3. a worker takes a task only when its slot is free (no prefetch);
4. two attempts of one job never run at once (`lock`), even when the worker running the first
   is SIGKILLed: the second waits until the sweeper finishes the dead attempt's task, and then runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import procrastinate
import psycopg

DSN = os.environ.get("PROTO_DSN", "postgresql://postgres@127.0.0.1/proto")
RUNS = Path(tempfile.gettempdir()) / "proto_runs.log"
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=DSN))
DEFER = (
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW('default', 'run_job', 0, %s, %s, %s::jsonb, NULL)"
    "::procrastinate_job_to_defer_v1])"
)


@app.task(name="run_job", pass_context=True)
async def run_job(context, job_id: int, attempt: int) -> None:
    with RUNS.open("a") as log:
        log.write(f"start {job_id}.{attempt} on {context.worker_name} at {time.time():.2f}\n")
    await asyncio.sleep(1.0)
    with RUNS.open("a") as log:
        log.write(f"end {job_id}.{attempt} at {time.time():.2f}\n")


def submit(conn: psycopg.Connection, job_id: int, attempt: int, commit: bool = True) -> None:
    """Our job row and its task, in one transaction."""
    with conn.transaction() as tx:
        conn.execute(
            "INSERT INTO our_jobs VALUES (%s, 'queued') ON CONFLICT (id) DO UPDATE SET status = 'queued'",
            (job_id,),
        )
        args = json.dumps({"job_id": job_id, "attempt": attempt})
        conn.execute(DEFER, (f"job-{job_id}", f"job-{job_id}-queued", args))
        if not commit:
            raise psycopg.Rollback(tx)


def worker(name: str) -> subprocess.Popen:
    here = Path(__file__).parent
    cmd = [sys.executable, "-m", "procrastinate", f"--app={Path(__file__).stem}.app", "worker"]
    return subprocess.Popen(
        [*cmd, "--concurrency=1", f"--name={name}"],
        cwd=here,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def tasks(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT args->>'job_id', args->>'attempt', status FROM procrastinate_jobs ORDER BY id"
    ).fetchall()


async def finish_stalled() -> list[dict]:
    """What the sweeper does once it has declared a host dead: the dead attempt's task ends."""
    async with app.open_async():
        stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=1)
        for job in stalled:
            await app.job_manager.finish_job(job, status=procrastinate.jobs.Status.FAILED, delete_job=False)
        return [job.task_kwargs for job in stalled]


def main() -> None:
    with app.open():
        app.schema_manager.apply_schema()
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS our_jobs")
        conn.execute("CREATE TABLE our_jobs (id int PRIMARY KEY, status text)")
        conn.execute("DELETE FROM procrastinate_jobs")
    RUNS.write_text("")
    with psycopg.connect(DSN) as conn:
        submit(conn, 1, 1)
        submit(conn, 2, 1, commit=False)
        ours = conn.execute("SELECT id FROM our_jobs ORDER BY id").fetchall()
        print("1. rolled back: job 2 has", "no row and no task" if ours == [(1,)] else f"rows {ours}")
        try:
            submit(conn, 1, 2)
            print("2. a second queued task for job 1 was ACCEPTED")
        except psycopg.errors.UniqueViolation:
            print("2. a second queued task for job 1 is refused (queueing_lock)")
        for job_id in (3, 4, 5):
            submit(conn, job_id, 1)
    hosts = [worker("host1"), worker("host2")]
    time.sleep(1.0)
    with psycopg.connect(DSN) as conn:
        doing = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'").fetchone()[0]
    print(f"3. running after 1 s with two one-slot workers: {doing} (no prefetch: the rest wait as todo)")
    time.sleep(4)
    with psycopg.connect(DSN, autocommit=True) as conn:
        submit(conn, 7, 1)
        time.sleep(0.5)
        submit(conn, 7, 2)  # the resume attempt, queued while the first runs
        time.sleep(0.2)
        for host in hosts:
            host.send_signal(signal.SIGKILL)  # whichever runs 7.1 dies with its host
            host.wait()
        third = worker("host3")
        time.sleep(3)
        print("4. 3 s after a SIGKILL, host3 sees:", tasks(conn), "(7.2 waits on the lock)")
        print("   the sweeper finishes the dead attempt:", asyncio.run(finish_stalled()))
        time.sleep(3)
        print("   then:", tasks(conn))
        third.terminate()
        third.wait()
    print(RUNS.read_text())


if __name__ == "__main__":
    main()
