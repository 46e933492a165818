"""`ttservice serve` and `submit`: one manager, dispatch without a browser, clean shutdown."""

import json
import signal
import subprocess
import sys
import time

import pytest

from ttservice import actions
from ttservice.jobs import JobStatus, TranscribeOptions
from ttservice.process_manager import LEASE_LAPSE, ProcessManager
from ttservice.store import Store

from .conftest import DUMMY, JFK_WAV, env_for, gone, group_members, ttservice, wait_for
from .e2e.conftest import free_port, wait_healthy


def test_sanitized_upload_names_stay_in_the_data_dir(settings, store):
    assert actions.sanitize_filename("../../etc/passwd") == "passwd"
    assert actions.sanitize_filename("ประชุม ครั้งที่ 1.m4a") == "ประชุม ครั้งที่ 1.m4a"
    assert actions.sanitize_filename("a;rm -rf $HOME`.wav") == "a_rm -rf _HOME_.wav"
    assert actions.sanitize_filename("..") == "upload"
    job_id = actions.submit_upload(store, settings, "../../evil.wav", b"RIFF", TranscribeOptions())
    job = store.get_job(job_id)
    assert job.media_path == str(settings.upload_dir / str(job_id) / "evil.wav")


def test_upload_over_the_limit_is_refused_before_writing(tmp_path):
    from .conftest import make_settings

    settings = make_settings(tmp_path / "data", max_upload_mb=0.001)
    store = Store.from_settings(settings)
    job_id = actions.submit_upload(store, settings, "big.wav", b"x" * 5000, TranscribeOptions())
    job = store.get_job(job_id)
    assert job.status is JobStatus.FAILED and "over the limit" in job.error
    assert not (settings.upload_dir / str(job_id)).exists()


def test_lapsed_lease_stops_the_job(store, settings, make_job):
    pm = ProcessManager(store, settings)
    job_id = make_job()
    pm.start_job(job_id, cmd=[sys.executable, str(DUMMY), "sleep"])
    pid = store.get_job(job_id).process_id
    try:
        store.renew_lease(job_id)
        assert pm.stop_lapsed_leases() == []
        assert pm.stop_lapsed_leases(now=time.time() + LEASE_LAPSE + 1) == [job_id]
        job = store.get_job(job_id)
        assert job.status is JobStatus.CANCELLED and "page was left" in job.error
        assert gone(pid)
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_submit_without_service_waits_queued(settings):
    done = ttservice(settings, "submit", str(JFK_WAV), "--json")
    assert done.returncode == 0
    job_id = json.loads(done.stdout)["id"]
    assert "No TTService is running" in done.stderr
    assert Store.from_settings(settings).get_job(job_id).status is JobStatus.QUEUED
    bad = ttservice(settings, "submit", "/nowhere.wav")
    assert bad.returncode == 2 and "does not exist" in bad.stderr


@pytest.mark.model
def test_service_runs_jobs_without_a_browser_and_stops_cleanly(settings, long_speech):
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "ttservice.cli", "serve", "--port", str(port)],
        env=env_for(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        second = ttservice(settings, "serve", "--port", str(free_port()), timeout=30)
        assert second.returncode == 1 and "already running" in second.stderr
        store = Store.from_settings(settings)
        quick = json.loads(ttservice(settings, "submit", str(JFK_WAV), "--json").stdout)["id"]
        wait_for(lambda: store.get_job(quick).status is JobStatus.COMPLETED, 120, what="jfk done")
        long_id = json.loads(ttservice(settings, "submit", str(long_speech), "--json").stdout)["id"]
        wait_for(lambda: store.segments(long_id), 120, what="long job running")
        pid = store.get_job(long_id).process_id
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        assert serve.returncode == 0
        job = store.get_job(long_id)
        assert job.status is JobStatus.INTERRUPTED and "shut down" in job.error
        assert gone(pid) and group_members(pid) == []
        assert group_members(serve.pid) == []
    finally:
        if serve.poll() is None:
            serve.kill()
