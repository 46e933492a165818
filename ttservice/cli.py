"""The `ttservice` command: a thin layer over the store, ProcessManager and exports."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import audio, export, logs
from .config import Settings, settings_help
from .exceptions import MediaError, TTServiceError
from .jobs import Job, JobStatus, Runner, TranscribeOptions, iso
from .process_manager import ProcessManager
from .store import Store

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 1, 2, 130

app = typer.Typer(
    help="TTService: local transcription in supervised worker processes.",
    epilog="Settings (environment variables):\n\n" + settings_help().replace("\n", "\n\n"),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance: migrate, back up, roll back.", no_args_is_help=True)
app.add_typer(db_app, name="db")

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def fail(message: str, code: int = EXIT_FAILED) -> None:
    err.print(f"[red]Error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _services() -> tuple[Settings, Store]:
    settings = Settings.from_env()
    return settings, Store.from_settings(settings)


def _fmt_time(value: float | str | None) -> str:
    text = iso(value)
    return text.replace("+00:00", "Z") if text else "-"


class Cancel:
    """SIGINT/SIGTERM only set a flag; the waiting loop stops the job."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.signal = signum
        self.event.set()


@app.command()
def transcribe(
    file: Path = typer.Argument(..., help="Audio or video file."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model name or local CTranslate2 directory."
    ),
    language: str | None = typer.Option(
        None, "--language", "-l", help="Language code; auto-detected if omitted."
    ),
    fmt: str = typer.Option("txt", "--format", "-f", help="txt, srt, vtt or json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    task: str = typer.Option("transcribe", help="transcribe, or translate (to English)."),
    word_timestamps: bool = typer.Option(False, "--word-timestamps", help="Store word timings."),
) -> None:
    """Transcribe FILE in a supervised worker; the transcript goes to stdout or -o."""
    if fmt not in export.FORMATS:
        fail(f"Unknown format {fmt!r}; choose one of {', '.join(export.FORMATS)}.", EXIT_BAD_INPUT)
    if task not in ("transcribe", "translate"):
        fail(f"Unknown task {task!r}; choose transcribe or translate.", EXIT_BAD_INPUT)
    try:
        settings, store = _services()
        options = _options(settings, model, language, task, word_timestamps)
        path = file.expanduser()
        job_id = store.create_job(path.name, str(path.resolve()), options, Runner.FOREGROUND)
        try:
            audio.check_file(path, settings.max_upload_bytes)
        except MediaError as error:
            store.transition(job_id, JobStatus.FAILED, error_message=str(error), exit_code=EXIT_BAD_INPUT)
            fail(str(error), EXIT_BAD_INPUT)
        job = _run_with_progress(path, options, job_id, settings, store)
    except TTServiceError as error:
        fail(str(error))
    _finish(job, fmt, output, store)


@app.command()
def resume(
    job_id: int,
    fmt: str = typer.Option("txt", "--format", "-f", help="txt, srt, vtt or json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    in_service: bool = typer.Option(
        False, "--service", help="Queue it for the running service instead of running it here."
    ),
) -> None:
    """Continue a stopped, failed or interrupted job after its last saved segment."""
    from .actions import resume as resume_job

    if fmt not in export.FORMATS:
        fail(f"Unknown format {fmt!r}; choose one of {', '.join(export.FORMATS)}.", EXIT_BAD_INPUT)
    try:
        settings, store = _services()
        runner = Runner.SERVICE if in_service else Runner.FOREGROUND
        point = resume_job(store, job_id, runner)
        err.print(f"Job {job_id} continues at {export.timestamp(point, '.')}.", highlight=False)
        if in_service:
            return
        job = store.get_job(job_id)
        job = _run_with_progress(Path(job.media_path or ""), job.options, job_id, settings, store)
    except TTServiceError as error:
        fail(str(error))
    _finish(job, fmt, output, store)


def _finish(job: Job, fmt: str, output: Path | None, store: Store) -> None:
    """Print or write the transcript of a finished job, or say why there is none; exit accordingly."""
    if job.status is JobStatus.CANCELLED:
        fail(
            f"Job {job.id} was cancelled; its partial transcript is kept (ttservice export {job.id}).",
            EXIT_CANCELLED,
        )
    if job.status is not JobStatus.COMPLETED:
        fail(
            f"Job {job.id} failed: {job.error or 'no reason was recorded'}",
            job.exit_code if job.exit_code == EXIT_BAD_INPUT else EXIT_FAILED,
        )
    _write(export.render(fmt, store.segments(job.id), job), output)


def _options(
    settings: Settings, model: str | None, language: str | None, task: str, words: bool
) -> TranscribeOptions:
    return TranscribeOptions.from_settings(
        settings, model=model or None, language=language or None, task=task, word_timestamps=words
    )


def _run_with_progress(
    path: Path, options: TranscribeOptions, job_id: int, settings: Settings, store: Store
) -> Job:
    cancel = Cancel()
    progress = Progress(
        TextColumn("[bold]job {task.fields[job]}[/bold] {task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    bar = progress.add_task("queued", total=1.0, job=job_id, speed="")

    def on_update(job: Job) -> None:
        speed = job.speed()
        progress.update(
            bar,
            completed=job.progress,
            description=job.status.value,
            speed=f"{speed:.1f}x realtime" if speed else "",
        )

    with progress:
        return audio.run_transcription(
            path,
            options,
            job_id=job_id,
            settings=settings,
            store=store,
            on_update=on_update,
            cancel=cancel.event,
        )


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"Could not write {output}: {error.strerror}.")
    err.print(f"Wrote {output}", highlight=False)


@app.command()
def jobs(
    status: JobStatus | None = typer.Option(None, "--status", "-s", help="Only jobs with this status."),
    limit: int = typer.Option(50, "--limit", "-n", help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List jobs, newest first."""
    try:
        settings, store = _services()
        rows = store.list_jobs(status=status, limit=limit)
    except TTServiceError as error:
        fail(str(error))
    stall = settings.stall_timeout
    if as_json:
        data = [j.to_dict() | {"stalled": j.stalled(stall)} for j in rows]
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    table = Table("id", "status", "file", "created", "progress", "pid", "error")
    for j in rows:
        table.add_row(
            str(j.id),
            f"{j.status.value} [yellow](stalled)[/yellow]" if j.stalled(stall) else j.status.value,
            j.filename or "-",
            _fmt_time(j.created_at),
            f"{j.progress:.0%}",
            str(j.process_id or "-"),
            (j.error or "")[:60],
        )
    out.print(table)


@app.command()
def show(job_id: int, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show one job: status, process, progress and transcript."""
    try:
        settings, store = _services()
        job = store.get_job(job_id)
        status = ProcessManager(store, settings).get_process_status(job_id)
        segments = store.segments(job_id)
    except TTServiceError as error:
        fail(str(error))
    data = job.to_dict() | {
        "alive": status.alive,
        "cpu_percent": round(status.cpu_percent, 1),
        "memory_mb": round(status.memory_mb, 1),
        "heartbeat_age": status.heartbeat_age,
        "stalled": status.stalled,
        "segments": len(segments),
        "text": " ".join(s.text for s in segments),
    }
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for key, value in data.items():
        if key not in ("options", "text"):
            out.print(f"[bold]{key}[/bold]: {value if value is not None else '-'}", highlight=False)
    if status.stalled:
        out.print("[yellow]This job is alive but its progress has not moved; it may be stalled.[/yellow]")
    out.print(f"\n{data['text']}", highlight=False)


@app.command("logs")
def logs_cmd(
    job_id: int,
    lines: int = typer.Option(50, "-n", "--lines", help="How many lines from the end."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing until the job ends."),
) -> None:
    """Print the tail of a job's log."""
    try:
        settings, store = _services()
        pm = ProcessManager(store, settings)
        for line in pm.get_logs(job_id, lines):
            print(line)
        if follow:
            job = store.get_job(job_id)
            path = Path(job.log_file_path or logs.job_log_path(settings.log_dir, job_id))
            cancel = Cancel()
            running = lambda: not cancel.event.is_set() and not store.get_job(job_id).finished  # noqa: E731
            for line in logs.follow(path, running):
                print(line, flush=True)
    except TTServiceError as error:
        fail(str(error))


@app.command()
def stop(job_id: int) -> None:
    """Stop a queued or running job (its whole process tree) and mark it cancelled."""
    try:
        settings, store = _services()
        stopped = ProcessManager(store, settings).kill_process(job_id)
        job = store.get_job(job_id)
    except TTServiceError as error:
        fail(str(error))
    if not stopped:
        fail(f"Job {job_id} is not running; it is {job.status.value}.")
    err.print(f"Job {job_id} is {job.status.value}.", highlight=False)


@app.command()
def cleanup(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Run the orphan sweep now: finalise jobs whose worker is gone or silent."""
    try:
        settings, store = _services()
        result = ProcessManager(store, settings).cleanup_orphaned_processes()
    except TTServiceError as error:
        fail(str(error))
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    for job_id, why in result.finalized:
        out.print(f"job {job_id}: {why}", highlight=False)
    out.print(
        f"{len(result.finalized)} job(s) fixed, {len(result.killed)} process tree(s) stopped,"
        f" {result.logs_removed} old log file(s) removed.",
        highlight=False,
    )


@app.command("export")
def export_cmd(
    job_id: int,
    fmt: str = typer.Option("txt", "--format", "-f", help="txt, srt, vtt or json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
) -> None:
    """Export a job's transcript (partial for a stopped or failed job)."""
    if fmt not in export.FORMATS:
        fail(f"Unknown format {fmt!r}; choose one of {', '.join(export.FORMATS)}.", EXIT_BAD_INPUT)
    try:
        _, store = _services()
        job = store.get_job(job_id)
        text = export.render(fmt, store.segments(job_id), job)
    except TTServiceError as error:
        fail(str(error))
    _write(text, output)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind; anything but loopback exposes the app."),
    port: int = typer.Option(8501, help="Port of the web app."),
    ui: bool = typer.Option(True, "--ui/--no-ui", help="--no-ui runs only the job manager (headless)."),
) -> None:
    """Run the service: the web app plus the one manager that runs queued jobs."""
    import logging

    from .service import Service, ServiceAlreadyRunning

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = Service(Settings.from_env(), host, port, ui).run()
    except (ServiceAlreadyRunning, TTServiceError) as error:
        fail(str(error))
    raise typer.Exit(code)


@app.command()
def submit(
    file: Path = typer.Argument(..., help="Audio or video file, used in place."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model name or local directory."),
    language: str | None = typer.Option(None, "--language", "-l", help="Language code; auto if omitted."),
    as_json: bool = typer.Option(False, "--json", help='Print {"id": N}.'),
) -> None:
    """Queue FILE for the running service and print the job id."""
    from .actions import submit_file
    from .service import running_service

    try:
        settings, store = _services()
        job_id = submit_file(store, settings, file, _options(settings, model, language, "transcribe", False))
        job = store.get_job(job_id)
    except TTServiceError as error:
        fail(str(error))
    if job.status is JobStatus.FAILED:
        fail(f"Job {job_id} failed: {job.error}", EXIT_BAD_INPUT)
    print(json.dumps({"id": job_id}) if as_json else job_id)
    if running_service(settings) is None:
        err.print(f"No TTService is running; job {job_id} waits queued until one starts.", highlight=False)


@db_app.command()
def migrate() -> None:
    """Back up the database, then bring its schema up to date."""
    try:
        settings = Settings.from_env()
        store = Store(settings.db_path, settings.backup_dir, migrate=False)
        backups = store.migrate()
    except TTServiceError as error:
        fail(str(error))
    for path in backups:
        err.print(f"Backed up to {path}", highlight=False)
    err.print(f"Schema is at version {store.schema_version()}.", highlight=False)


@db_app.command()
def backup() -> None:
    """Copy the database to a timestamped file under the backups folder."""
    try:
        settings = Settings.from_env()
        path = Store(settings.db_path, settings.backup_dir, migrate=False).backup()
    except TTServiceError as error:
        fail(str(error))
    err.print(f"Backed up to {path}", highlight=False)


@db_app.command()
def rollback() -> None:
    """Restore the newest pre-migration backup (the current file is backed up first)."""
    try:
        settings = Settings.from_env()
        store = Store(settings.db_path, settings.backup_dir, migrate=False)
        source, saved = store.rollback()
    except TTServiceError as error:
        fail(str(error))
    err.print(f"Saved the current database to {saved}", highlight=False)
    err.print(f"Restored {source} (schema version {store.schema_version()}).", highlight=False)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("Interrupted.")
        sys.exit(EXIT_CANCELLED)


if __name__ == "__main__":
    main()
