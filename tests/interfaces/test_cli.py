"""The `ttservice` command as a user runs it, with real workers and the real model."""

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import replace

import numpy as np
import psutil
import pytest

from ttservice.config import AHEAD, STANDBY
from ttservice.interfaces.cli import starts_ahead
from ttservice.jobs import JobStatus, open_store

from ..conftest import (
    JFK_TXT,
    JFK_WAV,
    gone,
    group_members,
    start_transcribe,
    ttservice,
    words,
    write_wav,
)
from ..media import bad_inputs, video_with_audio

pytestmark = pytest.mark.model


def test_transcribe_to_stdout_and_files(settings, tmp_path):
    done = ttservice(settings, "transcribe", str(JFK_WAV))
    assert done.returncode == 0, done.stderr
    assert words(done.stdout) == words(JFK_TXT.read_text())
    srt = tmp_path / "jfk.srt"
    done = ttservice(settings, "transcribe", str(JFK_WAV), "--format", "srt", "-o", str(srt))
    assert done.returncode == 0 and done.stdout == ""
    first = srt.read_text().split("\n\n")[0].splitlines()
    assert first[0] == "1" and re.fullmatch(r"00:00:0\d,\d{3} --> 00:00:\d\d,\d{3}", first[1]), first


def test_jobs_show_logs_export_and_cleanup(settings, tmp_path):
    assert ttservice(settings, "transcribe", str(JFK_WAV)).returncode == 0
    listed = json.loads(ttservice(settings, "jobs", "--json").stdout)
    assert len(listed) == 1
    job = listed[0]
    for key in (
        "id",
        "status",
        "filename",
        "created_at",
        "started_at",
        "finished_at",
        "process_id",
        "last_heartbeat",
        "progress",
        "error",
    ):
        assert key in job
    assert job["status"] == "completed" and job["filename"] == "jfk.wav" and job["progress"] == 1.0
    assert json.loads(ttservice(settings, "jobs", "--status", "failed", "--json").stdout) == []

    shown = json.loads(ttservice(settings, "show", str(job["id"]), "--json").stdout)
    assert shown["alive"] is False and "ask not what your country" in shown["text"]
    logs = ttservice(settings, "logs", str(job["id"]), "-n", "3").stdout.splitlines()
    assert len(logs) == 3 and "Worker exiting with code 0" in logs[-1]
    vtt = ttservice(settings, "export", str(job["id"]), "--format", "vtt").stdout
    assert re.match(r"WEBVTT\n\n00:00:0\d\.\d{3} --> 00:00:\d\d\.\d{3}\n", vtt), vtt
    data = json.loads(ttservice(settings, "export", str(job["id"]), "--format", "json").stdout)
    assert data["job"]["id"] == job["id"] and len(data["segments"]) >= 2
    sweep = json.loads(ttservice(settings, "cleanup", "--json").stdout)
    assert sweep == {"finalized": [], "killed": [], "logs_removed": 0, "downloads": []}
    missing = ttservice(settings, "show", "999")
    assert missing.returncode == 1 and "There is no job 999." in missing.stderr


def test_every_bad_input_fails_clearly_and_the_next_job_works(settings, tmp_path):
    for name, (path, message) in bad_inputs(tmp_path, JFK_WAV).items():
        done = ttservice(settings, "transcribe", str(path))
        assert done.returncode == 2, (name, done.stderr)
        assert message in done.stderr, name
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, name
    store = open_store(settings)
    failed = store.list_jobs(status=JobStatus.FAILED, limit=100)
    assert len(failed) == 6 and all(j.error for j in failed)
    assert ttservice(settings, "transcribe", str(JFK_WAV)).returncode == 0


def standby_workers(settings) -> list[psutil.Process]:
    """Warm workers, or workers started ahead, of this test's data folder."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            ours = proc.environ().get("TTSERVICE_DATA_DIR") == str(settings.data_dir)
        except psutil.Error:
            continue
        if ours and {STANDBY, AHEAD} & set(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_transcribe_starts_its_worker_before_it_checks_the_request(settings):
    """The job's worker is older than the job: started first, it imports while the command checks
    the request, and is handed the job. A command that fails leaves no worker behind."""
    for job_id, args in enumerate(([], ["-m", "tiny.en"]), 1):  # whichever model the job asks for
        done = ttservice(settings, "transcribe", *args, str(JFK_WAV))
        assert done.returncode == 0, done.stderr
        assert words(done.stdout) == words(JFK_TXT.read_text())
        assert "started ahead, runs job" in (settings.log_dir / f"job_{job_id}.log").read_text()
    without = replace(settings, warm_worker=False)  # the setting that keeps no worker waiting
    service_log = settings.log_dir / "standby.log"  # a running service's warm worker's
    service_log.write_text("Standby worker ready\n")
    assert ttservice(without, "transcribe", str(JFK_WAV)).returncode == 0
    assert service_log.exists()  # a command that started no worker ahead leaves it be
    assert "started for job 3" in (settings.log_dir / "job_3.log").read_text()
    assert ttservice(settings, "transcribe", str(JFK_WAV) + ".missing").returncode == 2
    assert standby_workers(settings) == []
    assert not list(settings.log_dir.glob("ahead_*.log"))


@pytest.mark.parametrize(
    ("args", "ahead"),
    [
        (["transcribe", "a.wav"], True),
        (["transcribe", "-m", "base", "--format", "srt", "a.wav"], True),
        (["resume", "3"], True),
        (["resume", "3", "--service"], False),
        (["transcribe", "--help"], False),
        (["jobs"], False),
        ([], False),
    ],
)
def test_only_a_command_that_runs_a_job_here_starts_its_worker_ahead(args, ahead):
    assert starts_ahead(args) is ahead


def test_file_over_the_size_limit(settings, tmp_path):
    from dataclasses import replace

    small = replace(settings, max_upload_mb=0.1)
    done = ttservice(small, "transcribe", str(JFK_WAV))
    assert done.returncode == 2 and "over the limit of 0 MB" in done.stderr
    job = open_store(settings).list_jobs()[0]
    assert job.status is JobStatus.FAILED and "over the limit" in job.error


def test_silence_completes_with_empty_transcript(settings, tmp_path):
    silence = write_wav(tmp_path / "silence.wav", np.zeros(16000 * 5))
    done = ttservice(settings, "transcribe", str(silence))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert open_store(settings).list_jobs()[0].status is JobStatus.COMPLETED


def test_video_file_is_transcribed(settings, tmp_path):
    movie = video_with_audio(tmp_path / "speech.mp4", JFK_WAV)
    done = ttservice(settings, "transcribe", str(movie))
    assert done.returncode == 0, done.stderr
    assert "ask not what your country can do for you" in " ".join(words(done.stdout))


def test_sigterm_to_cli_stops_the_worker_tree(settings, long_speech):
    proc, store, job = start_transcribe(settings, long_speech)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "cancelled" in stderr and "Traceback" not in stderr
    assert store.get_job(job.id).status is JobStatus.CANCELLED
    assert gone(job.process_id) and group_members(job.process_id) == []


def test_cli_reports_a_worker_that_died(settings, long_speech):
    proc, store, job = start_transcribe(settings, long_speech)
    os.kill(job.process_id, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "killed by SIGKILL" in stderr
    assert store.get_job(job.id).status is JobStatus.FAILED


def test_db_commands(settings):
    from ..jobs.test_migrations import make_legacy

    make_legacy(settings.db_path)
    migrated = ttservice(settings, "db", "migrate")
    assert migrated.returncode == 0 and "transcriptor.db.backup" in migrated.stderr
    backup = ttservice(settings, "db", "backup")
    assert backup.returncode == 0 and "manual" in backup.stderr
    rolled = ttservice(settings, "db", "rollback")
    assert rolled.returncode == 0 and "schema version 0" in rolled.stderr


def test_an_agent_without_a_shared_store_or_a_way_to_the_media_says_so(settings):
    from dataclasses import replace

    alone = ttservice(settings, "agent")
    assert alone.returncode != 0 and "set TTSERVICE_DATABASE_URL" in alone.stderr
    no_media = ttservice(replace(settings, database_url="postgresql://nobody@127.0.0.1:1/none"), "agent")
    assert no_media.returncode != 0 and "set TTSERVICE_API_URL" in no_media.stderr
    assert "Traceback" not in alone.stderr + no_media.stderr


def test_help_lists_every_setting(settings):
    from ttservice.config import SETTINGS

    text = ttservice(settings, "--help").stdout
    for setting in SETTINGS:
        assert setting.env in text


def test_version_says_what_supervision_uses_here(settings):
    from ttservice import __version__, platform

    linux = ttservice(settings, "--version")
    assert linux.returncode == 0 and f"ttservice {__version__}" in linux.stdout
    assert "process exit seen by: pidfd" in linux.stdout or platform.portable()
    assert "jobs run on: faster-whisper on the CPU (int8)" in linux.stdout or "CUDA" in linux.stdout
    env = dict(os.environ, **{platform.PORTABLE_ENV: "1"})
    portable = subprocess.run(
        [sys.executable, "-m", "ttservice", "--version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "portable mode" in portable.stdout and "a check of its parent" in portable.stdout


def test_an_interrupted_job_says_how_to_continue_it(settings, store, make_job, capsys):
    from ttservice.interfaces.cli.run import _finish

    job_id = make_job()
    store.claim(job_id, 1)
    reason = "The job was interrupted: its worker could not reach the database and stopped itself."
    assert store.transition(job_id, JobStatus.INTERRUPTED, error_message=reason)
    with pytest.raises(SystemExit) as exited:
        _finish(store.get_job(job_id), "txt", None, settings, store)
    assert exited.value.code == 1
    said = " ".join(capsys.readouterr().err.split())
    assert said == f"Error: {reason} Continue it with: ttservice resume {job_id}"


def test_edit_corrects_segments_and_every_export_reads_the_names(settings, store, make_job):
    from ttservice.jobs import Segment

    job_id = make_job()
    store.claim(job_id, 5)
    said = ["สวัสดีครับ", "วันนี้ประชุม", "เรื่องงบประมาณ", "Thank you."]
    store.add_segments(
        job_id, [Segment(i * 2.0, i * 2.0 + 2.0, text) for i, text in enumerate(said)], 8.0, 1.0
    )
    store.transition(job_id, JobStatus.COMPLETED, exit_code=0)
    for index, who in ((0, "คุณสมชาย"), (1, "คุณสมชาย"), (2, "คุณสมชาย"), (3, "Anna")):
        done = ttservice(settings, "edit", str(job_id), str(index), "--speaker", who)
        assert done.returncode == 0, done.stderr
    fixed = ttservice(settings, "edit", str(job_id), "2", "--text", "เรื่องงบประมาณปีหน้า", "--json")
    assert json.loads(fixed.stdout) == {"index": 2, "start": 4.0, "end": 6.0, "text": "เรื่องงบประมาณปีหน้า",
                                        "speaker": "คุณสมชาย", "edited": True}  # fmt: skip
    txt = ttservice(settings, "export", str(job_id), "--format", "txt").stdout
    assert txt == "คุณสมชาย: สวัสดีครับวันนี้ประชุมเรื่องงบประมาณปีหน้า\n\nAnna: Thank you.\n"
    srt = ttservice(settings, "export", str(job_id), "--format", "srt").stdout
    assert "00:00:06,000 --> 00:00:08,000\nAnna: Thank you." in srt and "\nคุณสมชาย: สวัสดีครับ" in srt
    vtt = ttservice(settings, "export", str(job_id), "--format", "vtt").stdout
    assert "<v คุณสมชาย>สวัสดีครับ" in vtt and "<v Anna>Thank you." in vtt
    segments = json.loads(ttservice(settings, "export", str(job_id), "--format", "json").stdout)["segments"]
    assert [s["speaker"] for s in segments] == ["คุณสมชาย"] * 3 + ["Anna"] and segments[2]["edited"]
    history = json.loads(ttservice(settings, "edit", str(job_id), "2", "--history", "--json").stdout)
    assert [h["kind"] for h in history] == ["original", "edit", "edit"] and history[0][
        "text"
    ] == "เรื่องงบประมาณ"
    assert ttservice(settings, "edit", str(job_id), "2", "--restore").returncode == 0
    restored = ttservice(settings, "export", str(job_id), "--format", "txt").stdout  # no one's: a paragraph
    assert restored == "คุณสมชาย: สวัสดีครับวันนี้ประชุม\n\nเรื่องงบประมาณ\n\nAnna: Thank you.\n"
    assert store.segments(job_id)[2].text == "เรื่องงบประมาณ" and store.segments(job_id)[2].speaker is None
    wrong = ttservice(settings, "edit", str(job_id), "9", "--text", "x")
    assert wrong.returncode == 2 and "has no segment 9: its segments are numbered 0 to 3" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    for bad, sentence in (
        (["edit", "999", "0", "--text", "x"], "There is no job 999"),
        (["edit", str(job_id), "0", "--text", " "], "A segment's text cannot be empty"),
        (["speakers", str(job_id), "--label", "--num", "0"], "0 is not in the range"),
        (["speakers", "999"], "There is no job 999"),
    ):
        run = ttservice(settings, *bad)
        assert run.returncode == 2 and sentence in run.stderr, (bad, run.stderr)
