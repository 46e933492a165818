"""The Store interface: every read and write of jobs and segments, whatever the database.

The web pages, the CLI, the ProcessManager and the worker use only what is
declared here, and `open_store` picks the implementation: SQLite (`jobs.sqlite`),
the embedded default, or PostgreSQL (`jobs.postgres`) for several machines. Both
run the same queries (`jobs.sql`) and pass the same contract tests
(`tests/jobs/test_store_contract.py`). What an implementation must guarantee:

- every status change is a conditional transition (`TRANSITIONS`): it names the
  statuses it may leave and changes nothing otherwise, so a late heartbeat, a slow
  worker or a second manager never brings a finished job back;
- a heartbeat or a segment is refused (False) once its job is no longer processing, and a
  write that names its attempt once another attempt of the job was claimed;
- segments are committed together with the job's progress;
- every time it writes, and every time an orphan is judged by, comes from `clock()`;
- a user-facing failure (locked too long, disk full) is a `StoreError` of one sentence.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..exceptions import StoreError
from ..messages import Message
from .record import Download, Host, HostId, Job, JobStatus, Runner, Segment, TranscribeOptions


class Wakeup(Protocol):
    """A descriptor that becomes readable when something happened (here: a job was queued)."""

    def fileno(self) -> int: ...

    def drain(self) -> None: ...

    def close(self) -> None: ...


class Store(Protocol):
    # Set once the database could not be written for lack of space: the worker fails its
    # job with it, whichever thread hit it.
    disk_full: StoreError | None
    # Backups written by the migration this store ran when it opened (none if up to date).
    migration_backups: list[Path]

    # --- jobs: creating and reading -----------------------------------------

    def create_job(
        self,
        filename: str,
        media_path: str | None,
        options: TranscribeOptions,
        runner: Runner = Runner.SERVICE,
        now: float | None = None,
        refused: str | None = None,
        callback_url: str | None = None,
    ) -> int:
        """Queue a new job; a service job wakes the service (`listen_for_queued`).

        With `refused` the job is recorded as failed at once with that reason (exit code 2);
        with `callback_url` its end is to be POSTed there (`due_callbacks`).
        """

    def get_job(self, job_id: int) -> Job:
        """The job, or `JobNotFound`."""

    def list_jobs(
        self,
        status: JobStatus | None = None,
        limit: int = 50,
        offset: int = 0,
        search: str | None = None,
    ) -> list[Job]:
        """Newest first; `search` is full-text over transcripts."""

    def page_of_jobs(
        self, status: JobStatus | None = None, search: str | None = None, limit: int = 20, offset: int = 0
    ) -> tuple[int, list[Job]]:
        """(how many match, one page of them): what History and the API's list show, with a
        search evaluated once."""

    def active_jobs(self) -> list[Job]:
        """Jobs a process may be running for (status `processing`), the longest silent first."""

    def queued_jobs(self, runners: Collection[Runner], limit: int = 100) -> list[int]:
        """Queued jobs of these runners, oldest first."""

    def due_callbacks(self, limit: int = 100) -> list[Job]:
        """Finished jobs whose callback is still to be delivered, in the order they finished."""

    def record_callback(self, job_id: int, status: str, attempts: int) -> None:
        """How delivering the job's callback went: still pending, delivered or failed, after `attempts`."""

    def unfinished_uploads(self, older_than: float) -> list[int]:
        """Queued uploads created before `older_than` whose file was never saved (the app died)."""

    def lapsed_leases(self, lapse: float, now: float | None = None) -> list[int]:
        """Unfinished jobs whose page stopped renewing its lease more than `lapse` s ago."""

    def edit_segment(
        self, job_id: int, index: int, changes: Mapping[str, str | None], now: float | None = None
    ) -> bool:
        """Correct the segment at `index` (0-based, in time order): `changes` holds its "text", its
        "speaker" (None: none), or both. The first edit keeps the original; every edit is a
        revision. False if the job has no such segment."""

    def restore_segment(self, job_id: int, index: int, now: float | None = None) -> bool:
        """Put the segment back as the engine wrote it (a revision too); False if there is none."""

    def segment_revisions(self, job_id: int, index: int) -> list[dict[str, Any]]:
        """The original, then each edit and restore, oldest first."""

    def name_speaker(self, job_id: int, who: str, name: str) -> bool:
        """Name speaker `who` (a label such as SPEAKER_1, or its current name) everywhere in the
        job; "" takes the name away. False if the job has no such speaker."""

    def merge_speakers(self, job_id: int, who: str, into: str) -> bool:
        """Make speaker `who`'s segments speaker `into`'s; False if the job lacks either."""

    def speakers(self, job_id: int) -> list[dict[str, Any]]:
        """The job's speakers in order of first appearance, with their names and talk time."""

    def jobs_with_speakers(self, limit: int = 50) -> list[int]:
        """The newest jobs whose transcript has speakers, newest first."""

    def label_speakers(
        self, job_id: int, labelled: Sequence[tuple[int, Sequence[Segment]]], attempt: int | None = None
    ) -> bool:
        """Write a labelling: each segment (by id) becomes the segments given (its speaker set, or
        cut where the speaker changes); a person's speaker stays and a corrected segment is never
        cut. With `attempt`, only while that run is processing."""

    def segments(self, job_id: int, after: Segment | None = None) -> list[Segment]:
        """The job's committed segments in time order; with `after` (one it gave), only those
        that come after it, so that a follower reads each segment once."""

    def latest_segments(self, job_id: int, count: int) -> list[Segment]:
        """The job's last `count` committed segments, in time order."""

    def resume_point(self, job_id: int) -> float:
        """Where a resumed job continues: the end of its last committed segment (0 if none)."""

    def stats(self) -> dict[str, Any]:
        """Figures for the Statistics page, straight from the statuses."""

    def speed_by_model(self) -> list[dict[str, Any]]:
        """Completed jobs' mean speed (×realtime), count and largest peak memory, by model."""

    def delete_job(self, job_id: int) -> None: ...

    def jobs_naming(self, media_path: str) -> int:
        """How many jobs read their media at `media_path` (a re-run shares its job's file)."""

    # --- jobs: the life of a run --------------------------------------------

    def claim(
        self, job_id: int, max_concurrent: int, now: float | None = None, host: HostId | None = None
    ) -> int | None:
        """Move a queued job to processing on `host` if fewer than `max_concurrent` jobs run there;
        the number of the attempt claimed (1 for a first run), or None."""

    def transition(
        self,
        job_id: int,
        target: JobStatus,
        now: float | None = None,
        attempt: int | None = None,
        **fields: Any,
    ) -> bool:
        """Apply a named transition; False if the job is not in a status it may leave (or, with
        `attempt`, if another attempt was claimed since)."""

    def register_process(
        self, job_id: int, pid: int | None, create_time: float | None, log_path: str | None
    ) -> None:
        """Record the identity (pid, create time) and log of the job's worker."""

    def heartbeat(self, job_id: int, now: float | None = None, attempt: int | None = None) -> bool:
        """Record that the job's process is alive; False once the job has finished (or, with
        `attempt`, once another attempt was claimed)."""

    def set_media_info(
        self,
        job_id: int,
        duration: float,
        language: str | None,
        probability: float | None = None,
        attempt: int | None = None,
    ) -> None:
        """The media's length and the language (detected with `probability`, or given)."""

    def set_peak_memory(self, job_id: int, mb: float, attempt: int | None = None) -> None:
        """Record the worker's peak RSS as it ends (the largest of its attempts')."""

    def set_engine(self, job_id: int, engine: str, attempt: int | None = None) -> None:
        """Record the engine this run loaded its model on (faster-whisper, whisper.cpp)."""

    def add_warning(self, job_id: int, warning: Message) -> None:
        """Keep a sentence the job's reader should see beside its transcript."""

    def add_segments(
        self,
        job_id: int,
        segments: Sequence[Segment],
        processed_seconds: float,
        progress: float,
        now: float | None = None,
        attempt: int | None = None,
    ) -> bool:
        """Commit segments and progress together; refused once the job has finished (or, with
        `attempt`, once another attempt was claimed)."""

    def request_stop(self, job_id: int, now: float | None = None, reason: str | None = None) -> None:
        """Note that a stop was asked (and why), so that the end of the job reads as cancelled
        with that reason, whichever process records it."""

    def record_exit(self, job_id: int, exit_code: int) -> None:
        """Record the worker's exit code, unless one is recorded already."""

    def requeue_for_resume(self, job_id: int, runner: Runner) -> bool:
        """Queue a stopped, failed or interrupted job again, keeping its segments."""

    def requeue_for_labelling(self, job_id: int, runner: Runner, options: TranscribeOptions) -> bool:
        """Queue a finished job whose transcript is whole again, with `options` (its speakers to
        label), keeping its segments and dropping its warnings about speakers; False if it is not
        such a job."""

    def hand_upload_to_service(
        self, job_id: int, media_path: str, runner: Runner = Runner.SERVICE, sha256: str | None = None
    ) -> None:
        """The upload's file is saved (its hash `sha256`, where it is stored by it): the job is the
        service's to start from now on (as `runner`)."""

    def renew_lease(self, job_id: int, now: float | None = None) -> None:
        """A page that asked "stop this job if I leave" is still open."""

    # --- machines -----------------------------------------------------------

    def register_host(
        self, host: HostId, slots: int, version: str | None = None, now: float | None = None
    ) -> None:
        """This machine runs jobs from now on, `slots` at a time (a new boot id: it restarted)."""

    def host_seen(self, host: HostId, now: float | None = None) -> bool:
        """Renew the machine's last contact; False if it is registered with another boot, or not."""

    def list_hosts(self) -> list[Host]: ...

    def stop_requests(self, host: HostId) -> list[int]:
        """Jobs running on this machine and boot whose stop was asked, wherever it was asked."""

    def recover_lost(
        self, job_id: int, attempt: int, reason: str, resume: bool, now: float | None = None
    ) -> JobStatus | None:
        """End the attempt of a job whose machine went silent: queued for attempt + 1 with
        `resume`, else interrupted (cancelled if a stop was asked); None if it had ended."""

    def is_sweeper(self, name: str | None) -> bool:
        """Whether this service (machine `name`; None for a command, which is not one of the
        machines) is the one that recovers other machines' silent jobs now, taking the role if
        nobody holds it. Always True on SQLite: one machine, whose managers may all sweep."""

    def sweeper(self) -> str | None:
        """The machine whose service is the sweeper now; None when none is (and on SQLite)."""

    # --- a job's media and log, for machines apart ------------------------------

    def media_token(self, job_id: int, attempt: int) -> str | None:
        """The media token `attempt` was claimed with, while it runs; None otherwise."""

    def media_grant(self, job_id: int, token: str) -> tuple[str, str | None] | None:
        """The running job's media path and recorded SHA-256 if `token` is its attempt's; else None."""

    def record_media_sha256(self, job_id: int, sha256: str) -> str:
        """Record the media's hash unless one was recorded first; the hash the job keeps."""

    def append_log(self, job_id: int, attempt: int, text: str) -> None:
        """Add what the job's log gained (whole lines) to its copy in the store."""

    def log_tail(self, job_id: int, lines: int = 200) -> list[str]:
        """The last `lines` lines of the job's log as copied into the store, every attempt's."""

    def log_chunks(self, job_id: int, after: int = 0) -> list[tuple[int, str]]:
        """The chunks of the job's log copy added after chunk `after` (0: all), as (id, text)."""

    # --- model downloads ----------------------------------------------------

    def start_download(
        self, model: str, repo_id: str, runner: Runner, now: float | None = None
    ) -> tuple[int, bool]:
        """A new processing download of `repo_id`, or the one already running: (id, created)."""

    def get_download(self, download_id: int) -> Download: ...

    def latest_download(self, repo_id: str) -> Download | None: ...

    def list_downloads(self, active_only: bool = False, limit: int = 50) -> list[Download]: ...

    def take_download(self, download_id: int, runner: Runner) -> bool:
        """Make a requested download (runner `upload`: nobody's yet) this runner's to start."""

    def register_download_process(
        self, download_id: int, pid: int | None, create_time: float | None, log_path: str | None
    ) -> None: ...

    def download_progress(
        self,
        download_id: int,
        done: int,
        total: int | None,
        started: int | None = None,
        now: float | None = None,
    ) -> bool:
        """Record bytes on disk (and the heartbeat); False once the download is no longer running."""

    def download_phase(
        self, download_id: int, phase: str, done: int, total: int, memory_mb: float | None = None
    ) -> bool:
        """Record a conversion's step (and its memory need); False once it is no longer running."""

    def download_heartbeat(self, download_id: int, now: float | None = None) -> bool: ...

    def finish_download(
        self, download_id: int, status: JobStatus, error: str | None = None, now: float | None = None
    ) -> bool:
        """End a running download as `status`; False if it had ended already."""

    def request_download_stop(self, download_id: int, now: float | None = None) -> None: ...

    # --- waking, space, schema ----------------------------------------------

    def clock(self) -> float:
        """Now, in seconds since the epoch, by the store's clock (the database server's, for
        PostgreSQL): what a heartbeat's age is measured with."""

    def listen_for_queued(self) -> Wakeup | None:
        """Readable when another process queues a service job; None where it cannot be had."""

    def change_mark(self) -> Hashable:
        """A value that changes whenever any process commits: a check that costs no query."""

    def ensure_reserve(self) -> bool:
        """Put back the room kept for recording a disk-full failure; True if it is there."""

    def release_reserve(self) -> None:
        """Free that room: the disk is full and the next write says why a job stopped."""

    def writable(self) -> bool:
        """Whether a write can be made now (not locked for too long, not read-only, not full)."""

    def answers(self, within: float) -> bool:
        """Whether the store takes a statement now, found within about `within` seconds: a
        database server that is away or cut off does not."""

    def schema_version(self) -> int: ...

    def migrate(self) -> list[Path]:
        """Back up, then bring the schema up to date; return the backups written."""

    def backup(self, label: str = "manual") -> Path: ...

    def rollback(self) -> tuple[Path, Path]:
        """Restore the newest pre-migration backup; return it and the backup of the current state."""

    def close(self) -> None: ...


def open_store(settings: Any, migrate: bool = True) -> Store:
    """The store the settings name: the PostgreSQL database of `database_url`, or else the
    SQLite database in the data directory."""
    if settings.database_url:
        from .postgres import PostgresStore

        return PostgresStore(settings.database_url, migrate=migrate)
    from .sqlite import SQLiteStore

    return SQLiteStore(settings.db_path, settings.backup_dir, migrate=migrate)
