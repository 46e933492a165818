"""Following a job from the API: its status, progress and new segments as they are committed.

The store is the only channel between the API and the workers, so a request follows
its job by reading it again whenever the database has changed (`change_mark`, a
stat of its files: no query while nothing happens). A request that waits for its
job renews the job's lease, so that if the API process dies the service stops the
job (LEASE_LAPSE later) rather than transcribe for nobody.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from anyio import to_thread
from starlette.requests import Request

from ...jobs import Job, Segment, Store

POLL = 0.1  # seconds between looks at the database's change mark
KEEPALIVE = 5.0  # seconds after which a follower is given an empty change (an SSE comment)
LEASE_RENEW = 5.0  # seconds between lease renewals of a waited-for job (the lapse is 30 s)


class ClientGone(Exception):
    """The client that asked disconnected."""


def connected(request: Request) -> Callable[[], Awaitable[bool]]:
    """Whether the request's client is still there (its body read, a hang-up is a message)."""

    async def check() -> bool:
        return not await request.is_disconnected()

    return check


@dataclass
class Change:
    job: Job
    segments: list[tuple[int, Segment]] = field(default_factory=list)  # new ones, with their index
    status_changed: bool = False
    progress_changed: bool = False

    @property
    def empty(self) -> bool:
        return not (self.segments or self.status_changed or self.progress_changed)


async def follow(
    store: Store,
    job_id: int,
    connected: Callable[[], Awaitable[bool]] | None = None,
    lease: bool = False,
) -> AsyncIterator[Change]:
    """Changes of the job until it has finished (the last change has the final status).

    `connected` is asked at each look; when it says False, ClientGone is raised.
    The first change brings every segment committed so far.
    """
    mark: object = None
    seen = 0  # segments given so far
    last: Segment | None = None  # the last of them: only what comes after it is read
    status = progress = None
    quiet_since = renewed = time.monotonic()
    if lease:
        await to_thread.run_sync(store.renew_lease, job_id)
    while True:
        if connected is not None and not await connected():
            raise ClientGone
        now = time.monotonic()
        if lease and now - renewed >= LEASE_RENEW:
            await to_thread.run_sync(store.renew_lease, job_id)
            renewed = now
        current = store.change_mark()
        if current != mark:
            mark = current
            job = await to_thread.run_sync(store.get_job, job_id)
            change = Change(
                job, status_changed=job.status != status, progress_changed=job.progress != progress
            )
            status, progress = job.status, job.progress
            if change.status_changed or change.progress_changed:
                segments = await to_thread.run_sync(store.segments, job_id, last)
                change.segments = list(enumerate(segments, start=seen))
                seen += len(segments)
                last = segments[-1] if segments else last
            if not change.empty or job.finished:
                quiet_since = now
                yield change
            if job.finished:
                return
        if now - quiet_since >= KEEPALIVE:
            quiet_since = now
            yield Change(await to_thread.run_sync(store.get_job, job_id))
        await anyio.sleep(POLL)
