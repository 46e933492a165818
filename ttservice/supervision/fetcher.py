"""The download process: `python -m ttservice.supervision.fetcher DOWNLOAD_ID`.

It fetches one model into the hub cache (`models.download`), writing the bytes on
disk to its row as they grow (at most every PROGRESS_EVERY s), and a heartbeat
between. It always ends with the process that started it, the service or a
`ttservice transcribe`: its partial files stay, and the next download of the
model continues them. SIGTERM keeps Python's default action, for the same
reason: nothing is lost by stopping at once.

Exit codes: 0 completed, 1 failed, 3 the download was finished elsewhere.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from .. import platform
from ..config import Settings
from ..exceptions import TTServiceError
from ..jobs import JobStatus, open_store
from ..jobs.logs import download_log_path
from ..messages import Message
from ..models import catalog
from ..models.download import fetch
from . import lifeline
from .lifeline import EXIT_ABANDONED, EXIT_FAILED, EXIT_OK

PROGRESS_EVERY = 0.25  # seconds between progress writes

log = logging.getLogger("ttservice.fetcher")


def run(download_id: int, settings: Settings | None = None) -> int:
    settings = settings or Settings.from_env()
    platform.lower_priority(settings.worker_nice)  # before the heartbeat's threads start
    lifeline.log_into(download_log_path(settings.log_dir, download_id), settings)
    store = open_store(settings)
    row = store.get_download(download_id)

    def orphaned(reason: Message) -> None:
        store.finish_download(download_id, JobStatus.INTERRUPTED, reason)

    def failed(reason: Message) -> None:
        store.finish_download(download_id, JobStatus.FAILED, reason)

    beat = lambda: store.download_heartbeat(download_id)  # noqa: E731
    heartbeat = lifeline.start(settings, beat, orphaned, f"download {download_id}", failed)
    log.info("Download pid %d started: %s (%s)", os.getpid(), row.model, row.repo_id)
    last = {"at": 0.0, "first": True}

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last["at"] < PROGRESS_EVERY and done < total:
            return
        started = done if last["first"] else None  # what earlier attempts left on disk
        last["at"], last["first"] = now, False
        if not store.download_progress(download_id, done, total, started):
            log.warning("download %s is no longer running here; stopping", download_id)
            logging.shutdown()
            os._exit(EXIT_ABANDONED)

    def download() -> int:
        folder = fetch(catalog.resolve(row.model), progress)
        log.info("Installed %s in %s", row.model, folder)
        return EXIT_OK

    code, reason = lifeline.outcome(download)
    heartbeat.done.set()
    if reason is not None:
        log.error("%s", reason)
    status = JobStatus.COMPLETED if code == EXIT_OK else JobStatus.FAILED
    try:
        if not store.finish_download(download_id, status, reason):
            code = EXIT_ABANDONED
    except TTServiceError as error:
        log.error("the download's end could not be recorded: %s", error)
        code = EXIT_FAILED
    log.info("Download process exiting with code %d", code)
    logging.shutdown()
    return code


if __name__ == "__main__":
    exit_code = run(int(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
