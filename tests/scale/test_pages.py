"""The web app over a store shared by several machines: each job's machine, and the machines."""

import pytest

from ttservice.jobs import HostId, JobStatus, Segment

from ..conftest import make_settings
from ..conftest import run_page as run

ALPHA, BETA = HostId("alpha", "boot-a"), HostId("beta", "boot-b")


@pytest.fixture
def settings(tmp_path, postgres_url):
    return make_settings(tmp_path / "data", database_url=postgres_url)


def test_history_and_statistics_show_every_machines_jobs(web_env, store, make_job):
    store.register_host(ALPHA, 2, "0.1.0")
    store.register_host(BETA, 1, "0.1.0", now=store.clock() - 3600)  # not heard from for an hour
    running = make_job()
    store.claim(running, 5, host=ALPHA)
    resumed = make_job()
    store.claim(resumed, 5, host=BETA)
    store.add_segments(resumed, [Segment(0, 2, "first part")], 2, 0.5, attempt=1)
    assert store.recover_lost(resumed, 1, "beta went silent", resume=True) is JobStatus.QUEUED
    store.claim(resumed, 5, host=ALPHA)
    store.add_segments(resumed, [Segment(2, 4, "second part")], 4, 1.0, attempt=2)
    assert store.transition(resumed, JobStatus.COMPLETED, attempt=2, exit_code=0)

    assert store.is_sweeper("alpha")  # alpha's service holds the sweeper's lock
    at = run("statistics.py")
    assert not at.exception
    machines = next(d.value for d in at.dataframe if "Machine" in d.value.columns)
    assert machines["Machine"].tolist() == ["alpha", "beta"]
    assert machines["Slots"].tolist() == [2, 1] and machines["Running now"].tolist() == [1, 0]
    assert machines["Contact"].tolist() == ["in contact", "away"]
    assert machines["Recovers lost jobs"].tolist() == ["✓", ""]

    at = run("history.py")
    captions = [c.value for c in at.caption]
    assert any("on alpha · attempt 2" in c for c in captions)  # the resumed job, second run
    assert sum("on alpha" in c for c in captions) == 2

    at = run("history.py", job=running)  # another machine's job: its processes are not looked for here
    assert any("It runs on alpha" in i.value for i in at.info)
    assert not at.warning
    assert [m.value for m in at.metric[:2]] == ["-", "-"]  # its CPU and memory are not measured here
