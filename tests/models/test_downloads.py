"""Model downloads from a local hub (HF_ENDPOINT), supervised as jobs are, with the real model files."""

import json
import os
import signal
import subprocess
import sys

import pytest

from ttservice.jobs import JobStatus, Runner, TranscribeOptions, open_store
from ttservice.models import catalog
from ttservice.models import hub as cache
from ttservice.models.download import PARTIAL_SUFFIX

from ..conftest import (
    JFK_TXT,
    JFK_WAV,
    env_for,
    gone,
    headless_service,
    stop_process,
    tmpfs,
    ttservice,
    wait_for,
)
from ..conftest import words as words_of
from .conftest import BASE_REPO, TINY_REPO

pytestmark = pytest.mark.model


def base_size(hub) -> int:
    return sum(p.stat().st_size for p in hub.repos[BASE_REPO].files.values())


def installed(name: str):
    return cache.installed_folder(catalog.resolve(name))


def test_download_with_progress_then_list_load_and_transcribe(hub, settings, store):
    done = ttservice(settings, "models", "download", "base", "--json")
    assert done.returncode == 0, done.stderr
    folder = json.loads(done.stdout)["path"]
    assert folder == str(installed("base")) and "Downloading the model base" in done.stderr
    row = store.list_downloads()[0]
    assert row.status is JobStatus.COMPLETED and row.bytes_done == row.bytes_total == base_size(hub)
    listed = {m["name"]: m for m in json.loads(ttservice(settings, "models", "list", "--json").stdout)}
    assert listed["base"]["installed"] and listed["base"]["multilingual"] is True
    assert listed["base"]["size_bytes"] == base_size(hub) and listed["base"]["path"] == folder
    assert listed["tiny.en"]["bundled"] and listed["tiny.en"]["multilingual"] is False
    assert not listed["small"]["installed"] and listed["small"]["size_bytes"] is None
    # the hub's own library finds it in its cache: other tools share it
    from huggingface_hub import snapshot_download

    assert snapshot_download(BASE_REPO, cache_dir=cache.cache_dir(), local_files_only=True) == folder
    again = ttservice(settings, "models", "download", "base")
    assert again.returncode == 0 and "ready" in again.stderr and len(store.list_downloads()) == 1
    text = ttservice(settings, "transcribe", str(JFK_WAV), "--model", "base")
    assert text.returncode == 0, text.stderr
    assert words_of(text.stdout) == words_of(JFK_TXT.read_text())


def test_a_download_killed_half_way_resumes_and_fetches_little_twice(hub, settings, store):
    hub.rate = 12e6  # bytes a second: about 12 s for base
    cli = subprocess.Popen(
        [sys.executable, "-m", "ttservice", "models", "download", "base"],
        env=env_for(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = wait_for(
            lambda: [d for d in store.list_downloads() if d.bytes_done > 10e6], 60, what="10 MB"
        )[0]
        later = wait_for(lambda: store.get_download(first.id).bytes_done > first.bytes_done + 10e6, 60)
        assert later and store.get_download(first.id).status is JobStatus.PROCESSING  # progress moves
        fetcher = store.get_download(first.id).process_id
        cli.send_signal(signal.SIGKILL)
        cli.wait()
        wait_for(lambda: gone(fetcher), 30, what="the download to end with its command")
    finally:
        cli.kill()
    stopped = wait_for(
        lambda: (d := store.get_download(first.id)).finished and d, 30, what="its end recorded"
    )
    assert stopped.status is JobStatus.INTERRUPTED and "ended" in stopped.error
    assert installed("base") is None  # a half model never looks installed
    partials = list(cache.repo_folder(BASE_REPO).glob(f"blobs/*{PARTIAL_SUFFIX}"))
    assert partials and sum(p.stat().st_size for p in partials) > 15e6
    hub.rate = None
    done = ttservice(settings, "models", "download", "base")
    assert done.returncode == 0, done.stderr
    assert installed("base") is not None
    fetched_twice = hub.sent_for(BASE_REPO) - base_size(hub)
    assert 0 <= fetched_twice < 16 * 2**20, fetched_twice
    resumed = store.list_downloads()[0]
    assert resumed.started_bytes > 20e6 and resumed.status is JobStatus.COMPLETED


@pytest.mark.parametrize(
    "model, env, sentence",
    [
        ("nobody/no-such-model", {}, "There is no model nobody/no-such-model on the hub at"),
        ("small", {"HF_HUB_OFFLINE": "1"}, "The model small is not downloaded and HF_HUB_OFFLINE is set"),
        ("not a model", {}, "'not a model' is not a model name TTService knows"),
    ],
)
def test_a_model_that_cannot_be_had_fails_at_submit_in_one_sentence(
    hub, settings, store, model, env, sentence
):
    run = subprocess.run(
        [sys.executable, "-m", "ttservice", "transcribe", str(JFK_WAV), "--model", model],
        env=env_for(settings) | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and sentence in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    job = store.list_jobs()[0]
    assert job.status is JobStatus.FAILED and sentence in job.error and job.process_id is None
    assert store.list_downloads() == [] and not any(r.startswith("GET /" + BASE_REPO) for r in hub.requests)


def test_a_folder_that_is_not_a_model_and_a_missing_download_are_one_sentence(hub, settings, tmp_path):
    (tmp_path / "notes").mkdir()
    run = ttservice(settings, "transcribe", str(JFK_WAV), "--model", str(tmp_path / "notes"))
    assert run.returncode == 2 and "is not a CTranslate2 Whisper model folder" in run.stderr
    run = ttservice(settings, "models", "download", "nobody/nothing")
    assert run.returncode == 2 and "There is no model nobody/nothing on the hub" in run.stderr


def test_transcribe_downloads_a_missing_model_first(hub, settings):
    run = ttservice(settings, "transcribe", str(JFK_WAV), "--model", TINY_REPO)
    assert run.returncode == 0, run.stderr
    assert f"Downloading the model {TINY_REPO}" in run.stderr
    assert words_of(run.stdout) == words_of(JFK_TXT.read_text())


def test_remove_is_refused_while_a_job_uses_the_model(hub, settings, store):
    assert ttservice(settings, "models", "download", TINY_REPO).returncode == 0
    job_id = store.create_job("jfk.wav", str(JFK_WAV), TranscribeOptions(model=TINY_REPO), Runner.FOREGROUND)
    refused = ttservice(settings, "models", "remove", TINY_REPO)
    assert refused.returncode == 1 and f"in use by job {job_id}" in refused.stderr
    assert installed(TINY_REPO) is not None
    store.transition(job_id, JobStatus.CANCELLED)
    removed = ttservice(settings, "models", "remove", TINY_REPO)
    assert removed.returncode == 0, removed.stderr
    assert installed(TINY_REPO) is None and not cache.repo_folder(TINY_REPO).exists()
    bundled = ttservice(settings, "models", "remove", "tiny.en")
    assert bundled.returncode == 1 and "ships with TTService and cannot be removed" in bundled.stderr


def test_jobs_wait_queued_for_one_download_then_run(hub, settings, store):
    hub.rate = 25e6
    serve = headless_service(settings)
    try:
        options = TranscribeOptions.from_settings(settings, model="base")
        from ttservice import actions

        first = actions.submit_file(store, settings, JFK_WAV, options)
        second = actions.submit_file(store, settings, JFK_WAV, options)
        wait_for(lambda: store.list_downloads(active_only=True), 30, what="a download")
        shown = json.loads(ttservice(settings, "show", str(first), "--json").stdout)
        assert shown["status"] == "queued" and shown["waiting_for"] == "download"
        assert shown["waiting_reason"].startswith("Waiting for the model base")
        assert shown["download"]["repo_id"] == BASE_REPO
        wait_for(lambda: all(store.get_job(j).finished for j in (first, second)), 180, what="both jobs")
        for job_id in (first, second):
            job = store.get_job(job_id)
            assert job.status is JobStatus.COMPLETED, job.error
            assert job.detected_language == "en" and job.language_probability > 0.5
        assert len(store.list_downloads()) == 1  # one download, however many jobs waited
    finally:
        stop_process(serve)


def test_a_sigkilled_download_fails_its_jobs_and_the_next_job_works(hub, settings, store):
    from ttservice import actions

    hub.rate = 8e6
    serve = headless_service(settings)
    try:
        options = TranscribeOptions.from_settings(settings, model="base")
        job_id = actions.submit_file(store, settings, JFK_WAV, options)
        row = wait_for(
            lambda: [d for d in store.list_downloads() if d.process_id and d.bytes_done > 5e6], 60
        )[0]
        os.kill(row.process_id, signal.SIGKILL)
        job = wait_for(lambda: (j := store.get_job(job_id)).finished and j, 30, what="the job failed")
        assert job.status is JobStatus.FAILED
        assert (
            job.error == "The model base could not be downloaded: the download process was killed by SIGKILL."
        )
        assert installed("base") is None and serve.poll() is None
        hub.rate = None
        again = actions.submit_file(store, settings, JFK_WAV, options)
        job = wait_for(lambda: (j := store.get_job(again)).finished and j, 180, what="the next job")
        assert job.status is JobStatus.COMPLETED, job.error
        assert store.list_downloads()[0].started_bytes > 5e6  # it continued the partial files
    finally:
        stop_process(serve)


def test_a_full_disk_stops_a_download_in_one_sentence(hub, settings, store, tmp_path, monkeypatch):
    with tmpfs(tmp_path / "small-cache", "100m") as small:  # tiny.en (75 MB) fits, base (143 MB) does not
        monkeypatch.setenv("HF_HUB_CACHE", str(small))
        run = ttservice(settings, "models", "download", "base")
        assert run.returncode == 1 and "needs" in run.stderr and "MB free; free some space" in run.stderr
        assert installed("base") is None
        row = store.list_downloads()[0]
        assert row.status is JobStatus.FAILED and "free some space" in row.error
        assert ttservice(settings, "models", "download", TINY_REPO).returncode == 0  # the next one works


def test_the_store_allows_one_running_download_per_repo(store):
    first, created = store.start_download("base", BASE_REPO, Runner.SERVICE)
    second, again = store.start_download("Systran/faster-whisper-base", BASE_REPO, Runner.FOREGROUND)
    assert created and not again and first == second
    assert store.finish_download(first, JobStatus.FAILED, "x") and not store.download_progress(first, 1, 2)
    third, created = store.start_download("base", BASE_REPO, Runner.SERVICE)
    assert created and third != first


def test_a_file_that_arrives_corrupted_is_deleted_and_never_installed(hub, settings, store):
    hub.repos[TINY_REPO].sha256["model.bin"] = "0" * 64  # the hub's hash no longer matches the bytes
    run = ttservice(settings, "models", "download", TINY_REPO)
    assert (
        run.returncode == 1 and "model.bin of Systran/faster-whisper-tiny.en came out corrupted" in run.stderr
    )
    assert installed(TINY_REPO) is None
    assert not list(cache.repo_folder(TINY_REPO).glob(f"blobs/*{PARTIAL_SUFFIX}"))  # nothing bad kept


def test_ctrl_c_stops_a_download_cleanly_and_the_next_one_continues(hub, settings, store):
    hub.rate = 12e6
    cli = subprocess.Popen(
        [sys.executable, "-m", "ttservice", "models", "download", "base"],
        env=env_for(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        row = wait_for(lambda: [d for d in store.list_downloads() if d.bytes_done > 10e6], 60, what="10 MB")[
            0
        ]
        cli.send_signal(signal.SIGINT)
        _, stderr = cli.communicate(timeout=30)
    finally:
        cli.kill()
    assert cli.returncode == 130 and "was stopped; download it again to continue it" in stderr
    stopped = store.get_download(row.id)
    assert stopped.status is JobStatus.CANCELLED and gone(stopped.process_id)
    assert installed("base") is None
    hub.rate = None
    assert ttservice(settings, "models", "download", "base").returncode == 0
    assert store.list_downloads()[0].started_bytes >= 10e6 and installed("base") is not None


def test_stop_ends_a_running_download_from_another_process(hub, settings, store):
    from ttservice.actions import models
    from ttservice.supervision import ProcessManager

    hub.rate = 8e6
    pm = ProcessManager(store, settings, runner=Runner.FOREGROUND)
    try:
        download_id = pm.downloads.ensure(catalog.resolve("base"))
        wait_for(lambda: store.get_download(download_id).bytes_done > 5e6, 60, what="5 MB")
        fetcher = store.get_download(download_id).process_id
        assert models.stop_download(open_store(settings), settings, download_id)  # as the web page does
        assert gone(fetcher) and store.get_download(download_id).status is JobStatus.CANCELLED
        assert installed("base") is None
    finally:
        pm.shutdown()


def test_a_download_asked_for_by_the_web_app_is_taken_by_the_service_or_a_command(hub, settings, store):
    from ttservice.actions import models

    asked = models.request_download(store, "base")
    assert asked.runner is Runner.UNCLAIMED and asked.process_id is None  # nobody's yet
    done = ttservice(settings, "models", "download", "base")  # a command that needs it takes it
    assert done.returncode == 0, done.stderr
    row = store.get_download(asked.id)
    assert (
        row.status is JobStatus.COMPLETED
        and row.runner is Runner.FOREGROUND
        and len(store.list_downloads()) == 1
    )
    asked = models.request_download(store, TINY_REPO)
    serve = headless_service(settings)
    try:
        taken = wait_for(
            lambda: (d := store.get_download(asked.id)).finished and d, 60, what="the service's download"
        )
        assert taken.status is JobStatus.COMPLETED and taken.runner is Runner.SERVICE
        assert installed(TINY_REPO) is not None
    finally:
        stop_process(serve)
