"""Callbacks: a finished job POSTed to the `callback_url` its client named.

Delivery runs in a thread of the API process and never holds up a job: the job is
finished in the store before its callback is tried. A callback is kept in the job's
row (pending, delivered or failed, with its attempts), so a restart of the API
carries on where it was. Each failure waits twice as long as the last before the
next try, up to ATTEMPTS tries.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request

from ...exceptions import TTServiceError
from ...jobs import CALLBACK_DELIVERED, CALLBACK_FAILED, CALLBACK_PENDING, Job
from .context import Context

log = logging.getLogger(__name__)

ATTEMPTS = 6
FIRST_DELAY = 1.0  # seconds after the first failure; then 2, 4, 8, 16
TIMEOUT = 10.0  # seconds a receiver has to answer
LOOK_EVERY = 1.0  # seconds between looks for jobs that have finished


class Callbacks:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="callbacks", daemon=True)
        self._next_try: dict[int, float] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT + 1)

    def _run(self) -> None:
        while not self._stop.wait(LOOK_EVERY):
            try:
                for job in self.ctx.store.due_callbacks():
                    if time.monotonic() >= self._next_try.get(job.id, 0.0):
                        self.deliver(job)
            except TTServiceError as error:
                log.warning("callbacks: %s", error)

    def deliver(self, job: Job) -> bool:
        """One try; True once the receiver has answered 2xx."""
        assert job.callback_url is not None
        attempts = job.callback_attempts + 1
        try:
            body = json.dumps(self.ctx.details(job.id), ensure_ascii=False)
            request = urllib.request.Request(
                job.callback_url,
                data=body.encode(),
                headers={"Content-Type": "application/json", "User-Agent": "TTService"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                delivered = 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError) as error:
            log.info("job %s: callback to %s failed (try %s): %s", job.id, job.callback_url, attempts, error)
            delivered = False
        if delivered:
            status = CALLBACK_DELIVERED
        else:
            status = CALLBACK_FAILED if attempts >= ATTEMPTS else CALLBACK_PENDING
            self._next_try[job.id] = time.monotonic() + FIRST_DELAY * 2 ** (attempts - 1)
        self.ctx.store.record_callback(job.id, status, attempts)
        return delivered
