"""The download process: `python -m ttservice.supervision.fetcher DOWNLOAD_ID`.

It fetches one model into the hub cache (`models.download`), writing the bytes on
disk to its row as they grow (at most every PROGRESS_EVERY s), and a heartbeat
between. A Transformers-format model is then converted to CTranslate2 here, its
steps written to the row (phase "converting"). It always ends with the process
that started it, the service or a `ttservice transcribe`: its partial files
stay, and the next download of the model continues them (a conversion starts
again). SIGTERM keeps Python's default action, for the same
reason: nothing is lost by stopping at once.

Exit codes: 0 completed, 1 failed, 3 the download was finished elsewhere.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from pathlib import Path

from .. import platform
from ..config import Settings
from ..exceptions import ModelError, TTServiceError
from ..jobs import JobStatus, open_store
from ..jobs.logs import download_log_path
from ..jobs.record import PHASE_CONVERTING
from ..messages import Message
from ..models import catalog, convert, hub, memory
from ..models.download import fetch
from . import lifeline
from .lifeline import EXIT_ABANDONED, EXIT_FAILED, EXIT_OK

PROGRESS_EVERY = 0.25  # seconds between progress writes
DISK_MARGIN = 1.05  # a converted model's files besides its weights: config, vocabulary, tokenizer

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

    def converting(done: int, total: int, memory_mb: float | None = None) -> None:
        if not store.download_phase(download_id, PHASE_CONVERTING, done, total, memory_mb):
            log.warning("download %s is no longer running here; stopping", download_id)
            logging.shutdown()
            os._exit(EXIT_ABANDONED)

    def download() -> int:
        ref = catalog.resolve(row.model)
        folder = fetch(ref, progress)
        if convert.convertible(folder):
            folder = _convert(ref, folder, settings, converting)
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


def _convert(ref: catalog.ModelRef, snapshot: Path, settings: Settings, on_step) -> Path:
    """Convert the downloaded Transformers snapshot to CTranslate2, once: its memory need said
    (and checked against the limit) before it starts."""
    target = hub.conversion_target(ref.repo_id, snapshot.name)
    if (target / "model.bin").is_file():
        return target
    model = convert.check(snapshot)
    params = convert.parameters(snapshot)
    need, limit = convert.memory_mb(params), memory.limit_mb(settings)
    if need > limit:
        raise ModelError("convert.never_fits", model=ref.name, need_gb=need / 1024, limit_gb=limit / 1024)
    if (
        shutil.disk_usage(hub.repo_folder(ref.repo_id)).free < params * 2 * DISK_MARGIN
    ):  # float16, and a little
        raise ModelError("convert.disk_full", folder=str(target.parent))
    total = model.encoder_layers + model.decoder_layers + 2
    on_step(0, total, need)
    log.info(
        "Converting %s to CTranslate2 (%s): needs about %.0f MB of memory",
        ref.name,
        convert.QUANTIZATION,
        need,
    )
    about = {"repo_id": ref.repo_id, "revision": snapshot.name, "quantization": convert.QUANTIZATION}
    started = time.monotonic()
    convert.convert(snapshot, target, about, on_step)
    log.info("Converted in %.1f s", time.monotonic() - started)
    return target


if __name__ == "__main__":
    exit_code = run(int(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
