"""A central machine and agents on simulated hosts, on one PostgreSQL store, with the real model.

Every guarantee of one machine holds across machines: a job runs on one host at a time;
a dead or cut-off host's job is interrupted after the orphan timeout and resumes on a host
that answers, with the transcript of an uninterrupted run; a stop asked anywhere is carried
out by the host that runs the job, and no other host is signalled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from dataclasses import replace

import psutil
import pytest

from ttservice.jobs import JobStatus, open_store

from ..conftest import JFK_WAV, gone, own_cluster, sweeper_holders, ttservice, wait_for, wer
from .conftest import NAMESPACES, NETWORKS, Network, central_service, running_on, scale_settings, submit

pytestmark = pytest.mark.model


@pytest.fixture
def central(tmp_path, postgres_url):
    """The central machine: its service (sweeps, serves the API the agents fetch media from, runs
    no job itself), its settings for the CLI and a store."""
    settings = scale_settings(tmp_path / "central", postgres_url)
    store = open_store(settings)
    with central_service(settings) as url:
        yield replace(settings, api_url=url, shared_media=False), store
    store.close()


def fetched(host, media):
    """The copy of `media` the host fetched into its cache (none: None)."""
    sha256 = hashlib.sha256(media.read_bytes()).hexdigest()
    path = host.settings.media_cache_dir / sha256 / media.name
    return path if path.is_file() and path.read_bytes() == media.read_bytes() else None


def registered(store, *names):
    wait_for(lambda: set(names) <= {h.name for h in store.list_hosts()}, 60, what=f"{names} registered")


def completed(store, job_id, timeout=240.0):
    return wait_for(
        lambda: (job := store.get_job(job_id)).finished and job, timeout, what=f"job {job_id} to finish"
    )


def assert_one_unbroken_transcript(store, job_id, kept, reference):
    segments = store.segments(job_id)
    assert segments[: len(kept)] == kept  # what the first host committed is untouched
    starts = [s.start for s in segments]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # no segment twice
    for before, after in zip(segments, segments[1:], strict=False):
        assert after.start >= before.end - 0.01, (before, after)  # none overlaps: none missing twice
    assert wer(reference, " ".join(s.text for s in segments)) <= 0.02


def test_a_job_runs_on_an_agent_and_every_machine_is_listed(central, hosts):
    settings, store = central
    alpha, beta = hosts("alpha", settings), hosts("beta", settings)
    registered(store, "alpha", "beta")
    job_id = submit(store, JFK_WAV)
    job = completed(store, job_id, 120)
    assert job.status is JobStatus.COMPLETED, (job.error, alpha.tail(), beta.tail())
    assert job.host in {"alpha", "beta"} and job.attempt == 1
    listed = json.loads(ttservice(settings, "jobs", "--json").stdout)
    assert (listed[0]["host"], listed[0]["attempt"]) == (job.host, 1)
    machines = json.loads(ttservice(settings, "hosts", "--json").stdout)
    listed = [(m["name"], m["slots"], m["running"], m["sweeper"]) for m in machines]
    # The service runs no job itself; started first, it is the sweeper.
    assert listed == [("alpha", 1, 0, False), ("beta", 1, 0, False), ("central", 0, 0, True)]
    assert [name for _, name in sweeper_holders(settings.database_url)] == ["ttservice sweeper central"]
    assert "country" in " ".join(s.text for s in store.segments(job_id)).lower()
    ran_it = alpha if job.host == "alpha" else beta
    assert fetched(ran_it, JFK_WAV)  # over HTTP, with its attempt's token, checked by hash
    assert not (beta if ran_it is alpha else alpha).settings.media_cache_dir.exists()
    shown = ttservice(settings, "logs", str(job_id))  # the central machine has no file of it
    assert shown.returncode == 0 and not (settings.log_dir / f"job_{job_id}.log").exists()
    assert f"started for job {job_id} (attempt 1)" in shown.stdout and "Fetched the media" in shown.stdout
    hosts.invariants.check(store)


@pytest.mark.skipif(not NAMESPACES, reason="simulated hosts need root and unshare")
def test_a_dead_hosts_job_resumes_on_another_and_ends_as_one_run(central, hosts, long_speech, reference):
    settings, store = central
    alpha = hosts("alpha", settings)
    job_id = submit(store, long_speech)
    running_on(store, job_id, "alpha", segments=2)
    worker = alpha.workers()[0]
    assert store.get_job(job_id).process_id != worker.pid  # its PID inside alpha's namespace
    beta = hosts("beta", settings)
    registered(store, "beta")
    kept = hosts.invariants.remember(store, job_id)
    hosts.invariants.fault("SIGKILL a whole host")
    alpha.power_off()
    assert alpha.processes() == [] and gone(worker.pid)  # nothing of it left on the dead host
    job = completed(store, job_id)
    assert job.status is JobStatus.COMPLETED, (job.error, beta.tail())
    assert (job.host, job.attempt) == ("beta", 2)
    assert_one_unbroken_transcript(store, job_id, kept, reference)
    assert fetched(alpha, long_speech) and fetched(beta, long_speech)  # each machine its own copy
    shown = ttservice(settings, "logs", str(job_id), "--lines", "1000").stdout
    assert f"job {job_id} (attempt 1)" in shown and f"job {job_id} (attempt 2)" in shown  # both machines'
    hosts.invariants.check(store)


@pytest.mark.skipif(not NAMESPACES, reason="simulated hosts need root and unshare")
def test_a_stop_asked_on_the_central_machine_is_carried_out_by_the_host(central, hosts, long_speech):
    settings, store = central
    alpha = hosts("alpha", settings)
    job_id = submit(store, long_speech)
    running_on(store, job_id, "alpha")
    beta = hosts("beta", settings)
    worker = alpha.workers()[0]
    bystanders = [p.pid for p in beta.processes()]
    hosts.invariants.fault("stop asked on the central machine")
    done = ttservice(settings, "stop", str(job_id))  # this machine is "central": it only asks
    assert done.returncode == 0, done.stderr
    job = wait_for(lambda: (j := store.get_job(job_id)).finished and j, 30, what="the stop")
    assert (job.status, job.error) == (JobStatus.CANCELLED, "Stopped by the user.")
    wait_for(lambda: gone(worker.pid), 10, what="alpha's worker to be gone")
    assert alpha.workers() == [] and alpha.process.poll() is None  # the agent itself goes on
    assert all(psutil.pid_exists(pid) for pid in bystanders)  # beta was not touched
    hosts.invariants.check(store)


@pytest.fixture
def network():
    """A network namespace for a simulated host, joined to this machine by a veth pair."""
    if not NETWORKS:
        pytest.skip("simulated networks need root, unshare and ip")
    net = Network()
    yield net
    net.remove()


@contextlib.contextmanager
def alpha_over_its_link(tmp_path, hosts, network, media, segments):
    """A PostgreSQL server of the test's own, and host alpha reaching it over `network` (which the
    test may cut) while it runs a job of `media` that has committed `segments`: the cluster, the
    settings and a store for the test's side, alpha, the job and its worker."""
    with own_cluster(also=(network.address,)) as cluster:
        settings = scale_settings(tmp_path / "central", cluster.url)
        store = open_store(settings)
        try:
            over_its_link = cluster.url.replace("127.0.0.1", network.address)
            alpha = hosts("alpha", replace(settings, database_url=over_its_link), network)
            job_id = submit(store, media)
            running_on(store, job_id, "alpha", segments=segments)
            yield cluster, settings, store, alpha, job_id, alpha.workers()[0]
        finally:
            store.close()


def test_a_host_cut_off_stops_its_worker_and_the_job_resumes_elsewhere(
    tmp_path, hosts, network, long_speech, reference
):
    with alpha_over_its_link(tmp_path, hosts, network, long_speech, segments=2) as running:
        cluster, settings, store, alpha, job_id, worker = running
        # The first service started is the sweeper: the cut takes it off with its host.
        assert [name for _, name in sweeper_holders(cluster.url)] == ["ttservice sweeper alpha"]
        beta = hosts("beta", settings)
        registered(store, "beta")
        kept_before = len(hosts.invariants.remember(store, job_id))
        hosts.invariants.fault("a host's network cut")
        network.cut()
        # Half the orphan timeout without a heartbeat, and the worker stops itself; its agent lives on.
        wait_for(lambda: gone(worker.pid), settings.orphan_timeout, what="the cut-off worker to stop")
        assert alpha.process.poll() is None
        job = completed(store, job_id)
        assert job.status is JobStatus.COMPLETED, (job.error, beta.tail())
        assert (job.host, job.attempt) == ("beta", 2)
        # The server ended alpha's session by its keepalives, and beta took the lock.
        assert [name for _, name in sweeper_holders(cluster.url)] == ["ttservice sweeper beta"]
        kept = store.segments(job_id)[:kept_before]
        assert_one_unbroken_transcript(store, job_id, kept, reference)
        # The cable goes back in: alpha's agent finds its connections again by itself (with beta
        # gone, the next job is its), and the job it lost is as beta finished it.
        segments = store.segments(job_id)
        network.mend()
        beta.stop()
        again = submit(store, JFK_WAV)
        assert completed(store, again, 180).host == "alpha", alpha.tail()
        assert store.get_job(job_id).status is JobStatus.COMPLETED and store.segments(job_id) == segments
        hosts.invariants.check(store)
        # Stopped while its database answers: stopped after this cluster was, alpha went on
        # trying to connect past the 30 s `Host.stop` waits, and was killed (CI's slowest teardown).
        alpha.stop()


@pytest.mark.skipif(not NAMESPACES, reason="simulated hosts need root and unshare")
def test_agents_and_workers_go_on_through_restarts_of_the_database(tmp_path, cluster, hosts, long_speech):
    settings = scale_settings(tmp_path / "central", cluster.url)
    store = open_store(settings)
    try:
        alpha, beta = hosts("alpha", settings), hosts("beta", settings)
        registered(store, "alpha", "beta")
        job_id = submit(store, long_speech)
        wait_for(lambda: store.segments(job_id), 120, what="the first segment")
        for _ in range(2):
            job = store.get_job(job_id)
            assert not job.finished, (
                "the job ended before the restart",
                job.error,
                alpha.tail(),
                beta.tail(),
            )
            hosts.invariants.remember(store, job_id)
            hosts.invariants.fault("PostgreSQL restarted while jobs run")
            cluster.pg_ctl("restart", "-m", "fast")
            time.sleep(1.0)
        job = completed(store, job_id)
        assert job.status is JobStatus.COMPLETED, (job.error, alpha.tail(), beta.tail())
        # A restart slower than half the orphan timeout (a busy machine) makes the worker stop itself,
        # and its job continue as attempt 2 from its last segment; a quick one, it writes on.
        assert job.attempt in (1, 2)
        segments = store.segments(job_id)
        assert len({s.start for s in segments}) == len(segments)  # none written twice
        assert segments[-1].end > job.duration - 10  # to the end of the speech
        # Both engines reconnected: with the other agent frozen, each takes a new job by itself
        # (after a restart psycopg's pool may take some seconds to hand the engine a connection).
        for taker, frozen in ((alpha, beta), (beta, alpha)):
            frozen.freeze()
            try:
                again = completed(store, submit(store, JFK_WAV), 180)
            finally:
                frozen.thaw()
            assert (again.status, again.host) == (JobStatus.COMPLETED, taker.name), taker.tail()
        assert store.active_jobs() == []
        hosts.invariants.check(store)
    finally:
        store.close()


def test_a_host_stopped_while_cut_off_stops_its_worker_and_exits(tmp_path, hosts, network, long_speech):
    """`systemctl stop` of an agent whose database is cut off: it used to wait on its dead
    connections for the system's TCP timeout (over two minutes, then killed); now it stops its
    worker unrecorded within seconds. The job is left `processing` with its worker gone, as a cut
    leaves it: the test above sees a host that answers recover such a job."""
    with alpha_over_its_link(tmp_path, hosts, network, long_speech, segments=1) as running:
        _, _, store, alpha, job_id, worker = running
        hosts.invariants.fault("a cut-off host stopped")
        network.cut()
        os.kill(alpha.first_process().pid, signal.SIGTERM)
        # systemd kills a unit that takes 90 s to stop; it took about 15 s here
        assert alpha.process.wait(timeout=60) == 0, alpha.tail()
        assert gone(worker.pid)
        said = f"job {job_id}: stopped, not recorded (the database does not answer)"
        assert said in alpha.log.read_text()
        assert store.get_job(job_id).status is JobStatus.PROCESSING  # nothing could say otherwise
