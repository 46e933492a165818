"""Item 16 of bench/run.py: one follower of a job with 1,500 segments, as the API's event stream
follows it (`interfaces/api/follow.follow`), against a worker committing one segment at a time
with its progress.

Figures: segment rows the follower read for each segment it gave (1 when each is read once), the
rows the follower before this change would have read at the same reads (it read the whole
transcript again at every progress change: every segment committed so far), and the time from the
worker's last commit to the follower's final change.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from ttservice.config import Settings
from ttservice.interfaces.api.follow import POLL, follow
from ttservice.jobs import JobStatus, Runner, Segment, TranscribeOptions, open_store

SEGMENTS = 1500
# Seconds between a worker's commits: longer than the follower's look (follow.POLL), so that, as
# with a real worker (about one commit a second), the follower sees each commit as a change.
COMMIT_EVERY = POLL * 1.2


class Counting:
    """The store, counting the segment rows its reads return."""

    def __init__(self, store) -> None:
        self.store, self.rows, self.whole = store, 0, 0

    def segments(self, job_id: int, after: Segment | None = None) -> list[Segment]:
        found = self.store.segments(job_id, after)
        self.whole += self.rows + len(found)  # what reading the whole transcript would have read
        self.rows += len(found)
        return found

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def _work(store, job_id: int, ended: list[float]) -> None:
    for i in range(SEGMENTS):
        store.add_segments(job_id, [Segment(float(i), i + 0.9, f"segment {i}")], i + 1.0, (i + 1) / SEGMENTS)
        time.sleep(COMMIT_EVERY)
    store.transition(job_id, JobStatus.COMPLETED, exit_code=0)
    ended.append(time.monotonic())


async def _follow(store, job_id: int) -> tuple[int, float]:
    given = 0
    async for change in follow(store, job_id):
        given += len(change.segments)
    return given, time.monotonic()


def follow_bench(figures, work: Path, runs: int) -> None:
    ratios, lags, naive = [], [], []
    for run in range(runs):
        store = open_store(Settings.from_env({}, data_dir=work / f"follow-{run}"))
        job_id = store.create_job("long.wav", None, TranscribeOptions(), Runner.API)
        store.claim(job_id, 1)
        counting = Counting(store)
        ended: list[float] = []
        worker = threading.Thread(target=_work, args=(store, job_id, ended))
        worker.start()
        given, followed = asyncio.run(_follow(counting, job_id))
        worker.join()
        assert given == SEGMENTS, f"the follower gave {given} of {SEGMENTS} segments"
        ratios.append(counting.rows / given)
        naive.append(counting.whole)
        lags.append((followed - ended[0]) * 1000)
        store.close()
    figures.add(
        "16", f"segment rows read per segment given ({SEGMENTS})", ratios, "rows", "1", lambda v: v <= 1
    )
    figures.add("16", "rows the same reads took when each read the whole transcript (before)", naive, "rows")
    figures.add("16", "last commit to the follower's end", lags, "ms")
