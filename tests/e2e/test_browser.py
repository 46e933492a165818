"""Browser tests through the real UI: tests 30 and 31 of the source document, and a full transcription."""

from __future__ import annotations

import re
import subprocess
import time

import psutil
import pytest
from selenium.webdriver.common.by import By

from ttservice.jobs import JobStatus, Runner, TranscribeOptions, open_store
from ttservice.supervision.process_manager import ProcessManager

from ..conftest import JFK_WAV, SPEECH, gone, group_members, wait_for
from .conftest import body_text, click_button, cut_labels, find, open_page, screenshot, wait_text

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def lecture(tmp_path_factory):
    """About eight minutes of speech: long enough to watch it run with one CPU thread."""
    path = tmp_path_factory.mktemp("lecture") / "lecture.wav"
    subprocess.run(["espeak-ng", "-s", "165", "-w", str(path), SPEECH * 24], check=True, capture_output=True)
    return path


def upload(browser, server, path) -> int:
    open_page(browser, server.url, "Transcribe")
    find(browser, "input[type='file']").send_keys(str(path))
    wait_text(browser, path.name)
    click_button(browser, "Start transcription")
    wait_text(browser, "Your jobs")
    store = open_store(server.settings)
    return wait_for(lambda: store.list_jobs(limit=1), 30, what="job row")[0].id


def log_text(browser) -> str:
    """The Live Logs panel's newest log lines."""
    blocks = browser.find_elements(
        By.XPATH, "//*[normalize-space(.)='Newest log lines']/following::*[@data-testid='stCode'][1]"
    )
    return blocks[0].text if blocks else ""


def listed_progress(browser) -> int | None:
    found = re.search(r"(\d+)% done", body_text(browser))
    return int(found.group(1)) if found else None


def test_30_monitor_a_processing_job_from_history(slow_server, browser, lecture):
    server = slow_server
    job_id = upload(browser, server, lecture)
    screenshot(browser, "transcribe")
    store = open_store(server.settings)
    wait_for(lambda: store.get_job(job_id).status is JobStatus.PROCESSING, 60, what="processing")

    find(browser, "a[data-testid='stSidebarNavLink'][href$='/history']").click()
    wait_text(browser, "lecture.wav")
    screenshot(browser, "history")
    # the list redraws itself while a job on it runs: its progress moves without a click
    wait_for(lambda: listed_progress(browser) is not None, 30, what="progress listed")
    first = listed_progress(browser)
    wait_for(lambda: (listed_progress(browser) or 0) > first, 90, 0.5, what="History refreshes itself")
    assert cut_labels(browser) == []  # "View" whole, not "V.."
    click_button(browser, "View")
    wait_text(browser, "Live Logs")
    wait_text(browser, "Processing chunk", 120)
    first_log, first_progress = log_text(browser), store.get_job(job_id).progress
    # the panel refreshes itself: new log lines and progress come without a click
    wait_for(lambda: log_text(browser) not in ("", first_log), 30, 0.5, what="log moves on")
    wait_for(lambda: store.get_job(job_id).progress > first_progress, 30, 0.5, what="progress moves on")
    text = body_text(browser)
    assert re.search(r"CPU\s+[\d.]+%", text) and re.search(r"Memory\s+\d+ MB", text)
    assert re.search(r"Speed\s+[\d.]+×", text) and "ETA" in text
    screenshot(browser, "live_logs")

    pid = store.get_job(job_id).process_id
    assert psutil.pid_exists(pid)
    click_button(browser, "Stop Transcription")
    click_button(browser, "Yes, stop it")
    wait_text(browser, "cancelled")
    screenshot(browser, "stopped")
    assert store.get_job(job_id).status is JobStatus.CANCELLED
    wait_for(lambda: gone(pid), 10, what="worker gone")
    assert group_members(pid) == []
    wait_text(browser, "Partial transcript")


def test_31_cleanup_of_orphaned_jobs(server, browser, lecture):
    store = open_store(server.settings)
    # A job run by another manager whose worker is killed out of band (nobody watching it) ...
    outsider = ProcessManager(store, server.settings)
    killed = store.create_job("killed.wav", str(lecture), TranscribeOptions(), Runner.FOREGROUND)
    assert outsider.start_job(killed)
    wait_for(lambda: store.segments(killed), 120, what="worker running")
    pid = store.get_job(killed).process_id
    psutil.Process(pid).kill()
    wait_for(lambda: gone(pid), 10, what="worker dead")
    # ... and a fake stale row with no process at all.
    stale = store.create_job("stale.wav", "/nowhere/stale.wav", TranscribeOptions(), Runner.FOREGROUND)
    store.claim(stale, 10, now=time.time() - 3600)

    open_page(browser, server.url + "/history", "History")
    wait_text(browser, "stale.wav")
    assert body_text(browser).count("processing") >= 2
    screenshot(browser, "before_cleanup")
    click_button(browser, "Clean up now")
    wait_text(browser, "Clean-up fixed 2 job(s)")
    screenshot(browser, "after_cleanup")
    for job_id in (killed, stale):
        assert store.get_job(job_id).status is JobStatus.FAILED
    assert "The job was orphaned" in store.get_job(stale).error

    open_page(browser, server.url + "/statistics", "Statistics")
    wait_text(browser, "Failed")
    metrics = {
        m.find_element(By.CSS_SELECTOR, "[data-testid='stMetricLabel']").text: m.find_element(
            By.CSS_SELECTOR, "[data-testid='stMetricValue']"
        ).text
        for m in browser.find_elements(By.CSS_SELECTOR, "[data-testid='stMetric']")
    }
    assert metrics["Failed"] == "2" and metrics["Processing"] == "0"
    assert metrics["Failure rate"] == "100%"
    screenshot(browser, "statistics")
    outsider.shutdown(wait=0)


def test_upload_jfk_to_completed_transcript_and_srt(server, browser):
    job_id = upload(browser, server, JFK_WAV)
    store = open_store(server.settings)
    wait_for(lambda: store.get_job(job_id).finished, 120, what="jfk finished")
    assert store.get_job(job_id).status is JobStatus.COMPLETED
    open_page(browser, f"{server.url}/history?job={job_id}", f"Job {job_id}: jfk.wav")
    wait_text(browser, "ask not what your country can do for you")
    screenshot(browser, "finished_job")
    click_button(browser, "Download SRT")
    srt = wait_for(lambda: [p for p in browser.downloads.glob("*.srt")], 30, what="SRT download")[0]
    blocks = srt.read_text().strip().split("\n\n")
    assert len(blocks) >= 2
    for number, block in enumerate(blocks, 1):
        lines = block.splitlines()
        assert lines[0] == str(number)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
        assert lines[2].strip()
    said = " ".join(line for block in blocks for line in block.splitlines()[2:])
    assert "ask not what your country" in said
