"""The `ttservice` command: a thin layer over the store, ProcessManager and exports.

Built on click (not typer, which now imports pydantic: 0.2 s more at every start).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click
from rich.console import Console

from . import audio, export, logs
from .config import Settings, settings_help
from .exceptions import MediaError, TTServiceError
from .jobs import Job, JobStatus, Runner, TranscribeOptions, iso
from .process_manager import ProcessManager
from .store import Store
from .waiting import Interrupt

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 1, 2, 130

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
FORMAT = click.Choice(export.FORMATS)
FORMAT_HELP = "txt, srt, vtt or json."


@click.group(
    context_settings=CONTEXT,
    epilog="\b\nSettings (environment variables):\n" + settings_help(),
)
def app() -> None:
    """TTService: local transcription in supervised worker processes."""


@app.group("db")
def db_app() -> None:
    """Database maintenance: migrate, back up, roll back."""


err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def fail(message: str, code: int = EXIT_FAILED) -> None:
    err.print(f"[red]Error:[/red] {message}", highlight=False)
    sys.exit(code)


def _services() -> tuple[Settings, Store]:
    settings = Settings.from_env()
    return settings, Store.from_settings(settings)


def _fmt_time(value: float | str | None) -> str:
    text = iso(value)
    return text.replace("+00:00", "Z") if text else "-"


class Cancel:
    """SIGINT/SIGTERM only set a flag; the waiting loop stops the job."""

    def __init__(self) -> None:
        self.event = Interrupt()  # wakes the wait for the worker at once
        self.signal: int | None = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)
        self.event.wake_on_signals()

    def _handle(self, signum: int, frame: object) -> None:
        self.signal = signum
        self.event.set()


def output_options(command):
    command = click.option(
        "-o", "--output", type=click.Path(path_type=Path), help="Write here instead of stdout."
    )(command)
    return click.option("-f", "--format", "fmt", type=FORMAT, default="txt", help=FORMAT_HELP)(command)


@app.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-m", "--model", help="Model name or local CTranslate2 directory.")
@click.option("-l", "--language", help="Language code; auto-detected if omitted.")
@output_options
@click.option(
    "--task",
    type=click.Choice(["transcribe", "translate"]),
    default="transcribe",
    help="transcribe, or translate (to English).",
)
@click.option("--word-timestamps", is_flag=True, help="Store word timings.")
def transcribe(
    file: Path,
    model: str | None,
    language: str | None,
    fmt: str,
    output: Path | None,
    task: str,
    word_timestamps: bool,
) -> None:
    """Transcribe FILE in a supervised worker; the transcript goes to stdout or -o."""
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
@click.argument("job_id", type=int)
@output_options
@click.option("--service", "in_service", is_flag=True, help="Queue it for the running service instead.")
def resume(job_id: int, fmt: str, output: Path | None, in_service: bool) -> None:
    """Continue a stopped, failed or interrupted job after its last saved segment."""
    from .actions import resume as resume_job

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
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

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


def json_option(what: str):
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what}.")


@app.command()
@click.option(
    "-s", "--status", type=click.Choice([s.value for s in JobStatus]), help="Only jobs with this status."
)
@click.option("-n", "--limit", type=int, default=50, show_default=True, help="How many, newest first.")
@json_option("a JSON array")
def jobs(status: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first."""
    from rich.table import Table

    try:
        settings, store = _services()
        rows = store.list_jobs(status=JobStatus(status) if status else None, limit=limit)
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
@click.argument("job_id", type=int)
@json_option("JSON")
def show(job_id: int, as_json: bool) -> None:
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
@click.argument("job_id", type=int)
@click.option("-n", "--lines", type=int, default=50, show_default=True, help="How many lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job ends.")
def logs_cmd(job_id: int, lines: int, follow: bool) -> None:
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
@click.argument("job_id", type=int)
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
@json_option("JSON")
def cleanup(as_json: bool) -> None:
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
@click.argument("job_id", type=int)
@output_options
def export_cmd(job_id: int, fmt: str, output: Path | None) -> None:
    """Export a job's transcript (partial for a stopped or failed job)."""
    try:
        _, store = _services()
        job = store.get_job(job_id)
        text = export.render(fmt, store.segments(job_id), job)
    except TTServiceError as error:
        fail(str(error))
    _write(text, output)


@app.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback exposes the app.",
)
@click.option("--port", type=int, default=8501, show_default=True, help="Port of the web app.")
@click.option("--ui/--no-ui", default=True, help="--no-ui runs only the job manager (headless).")
def serve(host: str, port: int, ui: bool) -> None:
    """Run the service: the web app plus the one manager that runs queued jobs."""
    import logging

    from .service import Service, ServiceAlreadyRunning

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = Service(Settings.from_env(), host, port, ui).run()
    except (ServiceAlreadyRunning, TTServiceError) as error:
        fail(str(error))
    sys.exit(code)


@app.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-m", "--model", help="Model name or local directory.")
@click.option("-l", "--language", help="Language code; auto-detected if omitted.")
@json_option('{"id": N}')
def submit(file: Path, model: str | None, language: str | None, as_json: bool) -> None:
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
        app(prog_name="ttservice")
    except KeyboardInterrupt:
        err.print("Interrupted.")
        sys.exit(EXIT_CANCELLED)


if __name__ == "__main__":
    main()
