"""`ttservice agent`: one machine's share of the jobs of a PostgreSQL store.

The agent is a Procrastinate worker with one slot per job this machine may run.
Every service job that becomes queued gets a task in the database, in the
transaction that queued it (`jobs.postgres.schema.ENGINE`); the agent that takes
the task claims the job for this machine and hands it to a local ProcessManager,
which supervises its worker as the service does (own session and group, exit
descriptor, heartbeat, kill escalation). The task lasts as long as the job, so
the engine's concurrency is the machine's limit, and no task is taken ahead of
a free slot.

Nothing here signals a process of another machine: a stop asked anywhere is
recorded in the store, and this machine's monitor carries it out for its own
jobs (`ProcessManager.stop_requested`). The engine's "abort" is never used.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from dataclasses import replace

import procrastinate

from ..config import Settings
from ..exceptions import TTServiceError
from ..jobs import SERVICE_RUNNERS, JobStatus, Runner, open_store
from ..jobs.postgres.connection import LIVENESS
from ..jobs.postgres.store import TASK
from ..messages import Message
from ..transcription import remote
from .process_manager import ProcessManager
from .supervisor import STORE_WAIT

log = logging.getLogger(__name__)

QUEUE = "ttservice"  # as schema.ENGINE defers the tasks
RESTART_DELAY = 2.0  # seconds before the engine's worker is started again after it stopped
LOOK = 1.0  # seconds between looks at a job while its model downloads or a slot frees
# Seconds between the engine's looks for a task when no notification came. Procrastinate's
# listener does not come back after the database restarts, so this look is then the only one.
FETCH_POLL = 1.0


class Agent:
    def __init__(self, settings: Settings, slots: int | None = None, name: str | None = None) -> None:
        if not settings.database_url:
            raise TTServiceError("service.agent_needs_postgres")
        if not settings.api_url and not settings.shared_media:
            raise TTServiceError("service.agent_needs_media")
        if slots is not None and slots < 1:
            raise TTServiceError("service.agent_needs_slot")
        self.settings = replace(
            settings,
            max_concurrent_jobs=slots or settings.max_concurrent_jobs,
            host_name=name or settings.host_name,
            warm_worker=False,  # a task starts the worker it needs; no model kept loaded idle
        )
        self.store = open_store(self.settings)
        self.pm = ProcessManager(self.store, self.settings, runner=Runner.SERVICE)
        self.pm.media_from = None if self.settings.shared_media else self.settings.api_url
        self.stopping = threading.Event()
        self.app = procrastinate.App(  # its connections find a lost server as the store's do
            connector=procrastinate.PsycopgConnector(conninfo=self.settings.database_url, kwargs=LIVENESS)
        )
        self.app.task(name=TASK, queue=QUEUE)(self.run_job)

    @property
    def name(self) -> str:
        return self.pm.host.name

    # --- the task -----------------------------------------------------------

    def run_job(self, job_id: int) -> None:
        """Run the job here if it is still queued, and return once this machine's run of it ended."""
        attempt = self._start(job_id)
        if attempt is None:
            return
        log.info("job %s: attempt %s runs here", job_id, attempt)
        while not self.stopping.is_set():
            try:
                job = self.store.get_job(job_id)
            except TTServiceError as error:  # the database is away: the job's worker goes on
                log.warning("job %s: %s", job_id, error)
                self.stopping.wait(LOOK)
                continue
            if job.attempt != attempt or job.status is not JobStatus.PROCESSING:
                log.info("job %s: attempt %s ended (%s)", job_id, attempt, job.status.value)
                return
            self.pm.wait_for_exit(job_id, LOOK, self.stopping)

    def _start(self, job_id: int) -> int | None:
        """Claim the job for this machine and start its worker; its attempt, or None if it is
        not (or no longer) a queued service job."""
        while not self.stopping.is_set():
            try:
                job = self.store.get_job(job_id)
                if job.status is not JobStatus.QUEUED or job.runner not in SERVICE_RUNNERS:
                    return None  # run elsewhere, stopped, or not the service's yet: its task is done
                if self.pm.downloads.ready_for(job) and self.pm.start_job(job_id):
                    return self.pm.children.attempt(job_id)  # None: its worker could not start
            except TTServiceError as error:  # the database is away: look again
                log.warning("job %s: %s", job_id, error)
            self.stopping.wait(LOOK)  # its model downloads, or this machine's slots are taken
        return None  # the agent stops: the job stays queued, and `ensure_tasks` gives it a new task

    # --- running ------------------------------------------------------------

    def run(self) -> int:
        self.pm.register_host()
        self.pm.adopt()  # workers an earlier agent of this boot left running
        self.pm.start()
        log.info(
            "agent %s: %d slot(s) on %s; media %s", self.name, self.settings.max_concurrent_jobs,
            self.store.db.where, f"from {self.pm.media_from}" if self.pm.media_from else "read in place",
        )  # fmt: skip
        try:
            asyncio.run(self._work())
        finally:
            self.pm.shutdown(stop_jobs=True)
        return 0

    async def _work(self) -> None:
        """The engine's worker until SIGTERM or SIGINT; started again if it loses the database
        (the jobs it started run on meanwhile, supervised by the ProcessManager)."""
        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, signalled.set)
        loop.set_exception_handler(self._engine_error)
        waiting = asyncio.create_task(signalled.wait())
        looking = asyncio.create_task(self._look_for_untasked(signalled))
        worker: asyncio.Task | None = None
        async with self.app.open_async():
            while not signalled.is_set():
                worker = asyncio.create_task(
                    self.app.run_worker_async(
                        queues=[QUEUE],
                        concurrency=self.settings.max_concurrent_jobs,
                        install_signal_handlers=False,
                        listen_notify=True,
                        fetch_job_polling_interval=FETCH_POLL,
                        shutdown_graceful_timeout=self.settings.kill_grace + 10,
                    )
                )
                await asyncio.wait([worker, waiting], return_when=asyncio.FIRST_COMPLETED)
                if worker.done():
                    log.warning("agent %s: the engine stopped (%s); starting it again", self.name,
                                worker.exception() or "no error")  # fmt: skip
                    await asyncio.wait([waiting], timeout=RESTART_DELAY)
                    continue
                log.info("agent %s: stopping; its jobs are interrupted", self.name)
                self.stopping.set()
                answered = False
                try:
                    answered = await asyncio.to_thread(self._interrupt_all)
                finally:
                    worker.cancel()
                    if answered:  # the engine records its tasks' ends
                        await _ended(worker, None)
                    else:  # nothing more can be written: every wait on the database ends now
                        self.store.close()
        if worker is not None:  # left running only where the database did not answer: leaving the
            await _ended(worker, STORE_WAIT)  # block closed the engine's pool, its waits fail at once
        looking.cancel()

    def _engine_error(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """The engine's writes that fail while the agent stops without its database (a task's end,
        its worker's row) are said in one line: the tasks are recovered by `ensure_tasks`."""
        error = context.get("exception")
        if self.stopping.is_set() and isinstance(error, procrastinate.exceptions.ConnectorException):
            log.warning("agent %s: the engine could not record its end: %s", self.name, error.__cause__)
            return
        loop.default_exception_handler(context)

    async def _look_for_untasked(self, signalled: asyncio.Event) -> None:
        """Now and then, give a task to each queued job whose task ended without running it, and
        delete cached media nobody used for a while."""
        next_housekeeping = 0.0
        while not signalled.is_set():
            given = await asyncio.to_thread(self.store.ensure_tasks)
            if given:
                log.info("agent %s: %d queued job(s) had no task; each has one now", self.name, given)
            if time.monotonic() >= next_housekeeping:
                next_housekeeping = time.monotonic() + self.settings.cleanup_interval
                removed = await asyncio.to_thread(remote.prune, self.settings.media_cache_dir)
                if removed:
                    log.info("agent %s: %d cached media file(s) unused for %g days deleted", self.name,
                             removed, remote.KEEP_DAYS)  # fmt: skip
            try:
                await asyncio.wait_for(signalled.wait(), timeout=self.settings.orphan_check_interval)
            except TimeoutError:
                pass

    def _interrupt_all(self) -> bool:
        """Interrupt this machine's jobs (each task then ends) and, unless TTSERVICE_AUTO_RESUME=0,
        queue them again for the machines that stay; False where the database did not answer
        (the jobs are stopped all the same: `Supervisor.stop_all`)."""
        answers = self.store.answers(STORE_WAIT)
        reason = Message("job.interrupted_agent_stopped", host=self.name)
        for job_id in self.pm.stop_all(reason, answers):
            if self.settings.auto_resume:
                try:
                    self.store.requeue_for_resume(job_id, self.store.get_job(job_id).runner)
                except TTServiceError as error:  # left interrupted: `ttservice resume` queues it
                    log.warning("job %s: %s", job_id, error)
        return answers


async def _ended(task: asyncio.Task, timeout: float | None) -> None:
    """Wait up to `timeout` seconds for a task to end, and take its error: the agent stops either way."""
    await asyncio.wait([task], timeout=timeout)
    if task.done() and not task.cancelled():
        task.exception()
