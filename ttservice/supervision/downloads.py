"""Model downloads, supervised as jobs are (a `Supervisor` of their own): a process each,
watched, stoppable, swept.

The store allows one running download per repo, so a service and a CLI (or
many jobs) asking for the same model share one. A download always ends with the
process that started it (its ParentWatch); the partial files stay and the next
download continues them. The ProcessManager owns one `ModelDownloads`; its
monitor collects their exits and sweeps them with the jobs.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

from ..config import WORKER_PARENT_ENV, Settings
from ..exceptions import TTServiceError
from ..jobs import Download, Job, JobStatus, Runner, Store, logs
from ..messages import Message
from ..models import catalog, hub
from ..models.catalog import ModelRef
from . import proctree
from .supervisor import Supervisor, ended, worker_env
from .waiting import Interrupt, wait_readable

log = logging.getLogger(__name__)

FETCHER_MODULE = "ttservice.supervision.fetcher"
WAIT_LOOK = 0.5  # seconds between looks at a download this process does not watch


class ModelDownloads:
    def __init__(self, store: Store, settings: Settings, runner: Runner, workers: Supervisor) -> None:
        self.store, self.settings, self.runner, self.workers = store, settings, runner, workers

    @property
    def children(self):
        """The download processes it watches (`Children`)."""
        return self.workers.children

    def ready_for(self, job: Job) -> bool:
        """True when the job's model is on disk; else its download is started (or it failed).

        A job fails when the model's download ended in failure or was stopped after
        the job was queued: it is never left waiting for a download that will not come.
        """
        try:
            ref = catalog.resolve(job.options.model)
        except TTServiceError as error:
            self.store.transition(job.id, JobStatus.FAILED, error_message=error.message, exit_code=2)
            return False
        if ref.kind != "hub" or hub.installed_folder(ref) is not None:
            return True
        latest = self.store.latest_download(ref.download_key)
        if latest is not None and latest.status is JobStatus.PROCESSING:
            return False
        after_job = latest is not None and (latest.finished_at or 0) >= (job.created_at or 0)
        if after_job and latest.status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.COMPLETED):
            self.store.transition(job.id, JobStatus.FAILED, error_message=not_downloaded(ref, latest))
            return False
        self.ensure(ref)  # none yet, or the last one was interrupted: this one continues it
        return False

    def ensure(self, ref: ModelRef) -> int:
        """The running download of the model's repo, started here if there is none; its id."""
        download_id, created = self.store.start_download(ref.name, ref.download_key, self.runner)
        if created or self.store.take_download(download_id, self.runner):  # new, or asked for
            self._spawn(download_id)
        return download_id

    def start_requested(self) -> list[int]:
        """Start the downloads asked for (the web app's: nobody's until taken, like uploads)."""
        started = []
        for row in self.store.list_downloads(active_only=True):
            if row.runner is Runner.UNCLAIMED and self.store.take_download(row.id, self.runner):
                self._spawn(row.id)
                started.append(row.id)
        return started

    def _spawn(self, download_id: int) -> None:
        path = logs.download_log_path(self.settings.log_dir, download_id)
        env = worker_env(self.settings)
        env[WORKER_PARENT_ENV] = str(os.getpid())  # a download ends with whoever started it
        cmd = [sys.executable, "-m", FETCHER_MODULE, str(download_id)]
        try:
            process = self.workers.spawn(download_id, cmd, path, env)
        except OSError as error:
            self.store.finish_download(
                download_id, JobStatus.FAILED, Message("download.process_not_started", error=str(error))
            )
            return
        started = proctree.create_time(process.pid)
        self.store.register_download_process(download_id, process.pid, started, str(path))
        log.info("download %s: started pid %s", download_id, process.pid)

    def collect_exited(self) -> None:
        """Record the end of every download process of ours that exited without recording it."""
        exited, _ = self.children.collect_exited()
        for download_id, process, _, out_of_memory in exited:
            row = self.store.get_download(download_id)
            if row.status is JobStatus.PROCESSING:
                why = proctree.describe_exit(process.returncode, download=True, out_of_memory=out_of_memory)
                self._finalize(row, why)
            log.info("download %s: exited with %s", download_id, process.returncode)

    def _finalize(self, row: Download, why: Message) -> None:
        failure = Message("process.failed", why=why)
        status, reason = ended(row.stop_requested_at is not None, None, failure, Message("download.stopped"))
        self.store.finish_download(row.id, status, reason)

    def _live(self, row: Download):
        if row.process_id is None or row.process_create_time is None:
            return None
        proc, _ = proctree.find(proctree.Identity(row.process_id, row.process_create_time))
        return proc

    def stop(
        self, download_id: int, final: JobStatus = JobStatus.CANCELLED, reason: Message | None = None
    ) -> bool:
        """Stop a running download (its partial files stay); False if it had ended.

        Whoever sees its process end first records it (its own starter may, seeing the stop
        asked): stopped either way."""
        row = self.store.get_download(download_id)
        if row.status is not JobStatus.PROCESSING:
            return False
        self.store.request_download_stop(download_id)
        self.workers.stop(download_id, self._live(row))
        self.store.finish_download(download_id, final, reason or Message("download.stopped"))
        return True

    def sweep(self, now: float | None = None) -> list[tuple[int, Message]]:
        """Finish running downloads whose process is gone, or silent for the orphan timeout (a
        child of ours too: hung, it would hold its repo's one download for ever)."""
        now = now or self.store.clock()
        finished = []
        ours = self.children.own_ids()
        for row in self.store.list_downloads(active_only=True):
            proc = self._live(row)
            if proc is None and row.id in ours:
                continue  # our own child that just exited: collect_exited records how
            quiet = now - (row.last_heartbeat or row.started_at or 0)
            if proc is not None and quiet <= self.settings.orphan_timeout:
                continue
            if proc is None and row.process_id is None and quiet <= self.settings.orphan_timeout:
                continue  # its process is being started, or it waits for the service to take it
            if proc is not None:
                self.workers.stop(row.id, proc)  # our child is reaped, and forgotten
                why = Message("why.download_no_heartbeat", seconds=quiet)
            elif row.process_id is None:
                why = Message("why.download_never_started", seconds=quiet)
            else:
                why = Message("why.download_ended_unfinished")
            self._finalize(row, why)
            finished.append((row.id, why))
        return finished

    def shutdown(self) -> None:
        """Stop the downloads this manager started: they end with it (their files stay for later)."""
        reason = Message("download.interrupted_shutdown")
        stop = lambda key: self.stop(key, JobStatus.INTERRUPTED, reason)  # noqa: E731
        self.workers.stop_all(self.store, stop, "download")

    def wait(
        self,
        download_id: int,
        on_update: Callable[[Download], None] | None,
        cancel: threading.Event,
    ) -> Download:
        """Wait for a download to end (ours or another process's), reporting its progress."""
        while True:
            row = self.store.get_download(download_id)
            if on_update is not None:
                on_update(row)
            if row.finished or cancel.is_set():
                return row
            if not self.children.watches(download_id) and row.process_id and self._live(row) is None:
                self.sweep()  # another's download whose process is gone: ended, not waited for
            fd = self.children.exit_fd(download_id)
            wake = [cancel.fileno()] if isinstance(cancel, Interrupt) else []
            try:
                wait_readable([*([fd] if fd is not None else []), *wake], WAIT_LOOK)
            finally:
                if fd is not None:
                    os.close(fd)
            self.collect_exited()

    def fetch(
        self, ref: ModelRef, on_update: Callable[[Download], None] | None, cancel: threading.Event
    ) -> Download:
        """Download the model here (or join the download another process runs for it) and wait
        for it to end; with `cancel` set, a download of ours is stopped (its files stay), another's
        goes on. The download's row as it ended.

        A download whose process died with whoever started it (both killed) is recorded as
        ended first, so that this one starts afresh instead of waiting for it."""
        self.sweep()
        download_id = self.ensure(ref)
        row = self.wait(download_id, on_update, cancel)
        if cancel.is_set() and self.children.watches(download_id):
            self.stop(download_id)
            row = self.store.get_download(download_id)
        return row


def not_downloaded(ref: ModelRef, row: Download) -> Message:
    """Why a job cannot have its model, from the download that ended."""
    why = row.reason or Message("why.download_incomplete")
    return Message("model.could_not_download", model=ref.name, why=why)
