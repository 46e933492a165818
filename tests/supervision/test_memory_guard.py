"""The memory limit kept while jobs run: real processes that take real memory, measured."""

import sys

import psutil
import pytest

from ttservice.jobs import JobStatus, TranscribeOptions
from ttservice.models import memory
from ttservice.supervision import guard
from ttservice.supervision.process_manager import ProcessManager

from ..conftest import DUMMY, JFK_WAV, gone, make_settings, wait_for


def tight(settings, over_estimate_mb: float):
    """Settings whose memory limit is the default job's estimate (on jfk.wav) plus `over_estimate_mb`."""
    expected = memory.job_estimate_mb(TranscribeOptions(), memory.file_seconds(JFK_WAV))
    return make_settings(settings.data_dir, memory_limit_mb=expected + over_estimate_mb), expected


def start_hog(pm: ProcessManager, make_job, mb: float, ready: bool = True) -> tuple[int, int]:
    """A job whose worker takes `mb` of memory; with `ready`, once it has."""
    job_id = make_job()
    assert pm.start_job(job_id, cmd=[sys.executable, str(DUMMY), "hog", str(int(mb))])
    if ready:
        wait_for(lambda: "ready" in "".join(pm.get_logs(job_id)), 60, what="the memory taken")
    return job_id, pm.store.get_job(job_id).process_id


def test_a_job_that_takes_more_than_the_limit_is_stopped_and_fails_saying_so(settings, store, make_job):
    limited, _ = tight(settings, 100)
    pm = ProcessManager(store, limited)
    pm.start()  # the monitor measures every second
    try:
        job_id, pid = start_hog(pm, make_job, limited.memory_limit_mb + 200, ready=False)
        job = wait_for(lambda: (j := store.get_job(job_id)).finished and j, 30, what="the job stopped")
        assert job.status is JobStatus.FAILED
        assert job.error_detail.code == "memory.over_limit"
        assert f"memory limit of {limited.memory_limit_mb / 1024:.1f} GB" in job.error
        assert job.peak_memory_mb > limited.memory_limit_mb  # what it took when it was stopped
        assert gone(pid)
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_a_job_within_the_limit_runs_on(settings, store, make_job):
    limited, expected = tight(settings, 100)
    pm = ProcessManager(store, limited)
    try:
        job_id, pid = start_hog(pm, make_job, expected / 2)
        assert pm.keep_memory_limit() is None
        assert store.get_job(job_id).status is JobStatus.PROCESSING and not gone(pid)
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def test_the_warm_worker_gives_its_memory_back_before_any_job(settings, store, make_job):
    """A job within its estimate, and the warm worker's model beside it over the limit: the warm
    worker ends, the job runs on, and no warm worker starts again until the next job does."""
    limited, expected = tight(settings, 20)
    pm = ProcessManager(store, limited)
    try:
        pm.warm.keep(slot_free=True)
        wait_for(pm.warm.ready, 120, what="the warm worker loaded its model")
        warm_mb = pm.warm.taken_mb()
        job_id, pid = start_hog(pm, make_job, expected - 50)
        taken = psutil.Process(pid).memory_info().rss / 2**20
        assert taken < expected and taken + warm_mb > limited.memory_limit_mb  # with the warm one, over
        assert pm.keep_memory_limit() is None
        assert pm.warm.taken_mb() == 0.0
        assert store.get_job(job_id).status is JobStatus.PROCESSING and not gone(pid)
        pm.warm.keep(slot_free=True)
        assert pm.warm.taken_mb() == 0.0  # none until a job starts
    finally:
        pm.warm.stop()
        pm.shutdown(stop_jobs=True, wait=0)


@pytest.mark.parametrize(
    ("taken", "expected", "stopped"),
    [
        ({1: 500, 2: 900}, {1: 600, 2: 400}, 2),  # the one over its estimate, not the largest within
        ({1: 900, 2: 700}, {1: 850, 2: 400}, 2),  # the furthest over
        ({1: 500}, {1: 600}, None),  # within its estimate: never stopped
        ({1: 100}, {1: None}, 1),  # no estimate: all it takes is over
    ],
)
def test_the_job_stopped_is_the_one_furthest_over_its_estimate(taken, expected, stopped):
    assert guard.offender(taken, expected) == stopped
