"""Commands that run a transcription: transcribe, resume, submit."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ... import actions
from ...config import Settings
from ...exceptions import RequestError, TTServiceError
from ...jobs import Job, JobStatus, Runner, Store, TranscribeOptions
from ...messages import Message
from ...supervision.foreground import run_transcription
from ...transcription import ENGINES, export
from .common import (
    EXIT_BAD_INPUT,
    EXIT_CANCELLED,
    EXIT_FAILED,
    Cancel,
    DownloadBar,
    err,
    fail,
    json_option,
    note,
    output_options,
    services,
    write,
)


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-m", "--model", help="Model name, local CTranslate2 directory or whisper.cpp (ggml) file.")
@click.option("-l", "--language", help="Language code; auto-detected if omitted.")
@output_options
@click.option(
    "--task",
    type=click.Choice(["transcribe", "translate"]),
    default="transcribe",
    help="transcribe, or translate (to English).",
)
@click.option("--word-timestamps", is_flag=True, help="Store word timings.")
@click.option("--speakers", metavar="auto|N", help="Label who speaks: auto, or the number of speakers.")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    help="auto (whisper.cpp on Apple Silicon, faster-whisper elsewhere), faster-whisper or whisper.cpp.",
)
def transcribe(
    file: Path,
    model: str | None,
    language: str | None,
    fmt: str,
    output: Path | None,
    task: str,
    word_timestamps: bool,
    speakers: str | None,
    engine: str | None,
) -> None:
    """Transcribe FILE in a supervised worker; the transcript goes to stdout or -o.

    A model not downloaded yet is downloaded first, with its own progress bar.
    """
    try:
        settings, store = services()
        options = _options(settings, model, language, task, word_timestamps, speakers, engine)
        job = store.get_job(actions.submit_file(store, settings, file, options, Runner.FOREGROUND))
        if job.status is JobStatus.FAILED:  # a bad file, or a model that cannot be had
            fail(job.reason or "", EXIT_BAD_INPUT)
        _advise_thai(store, settings, job.options)
        job = _run_with_progress(file.expanduser(), job.options, job.id, settings, store)
    except RequestError as error:
        fail(error, EXIT_BAD_INPUT)
    except TTServiceError as error:
        fail(error)
    _finish(job, fmt, output, settings, store)


@click.command()
@click.argument("job_id", type=int)
@output_options
@click.option("--service", "in_service", is_flag=True, help="Queue it for the running service instead.")
def resume(job_id: int, fmt: str, output: Path | None, in_service: bool) -> None:
    """Continue a stopped, failed or interrupted job after its last saved segment."""
    try:
        settings, store = services()
        runner = Runner.SERVICE if in_service else Runner.FOREGROUND
        point = actions.resume(store, job_id, runner)
        err.print(f"Job {job_id} continues at {export.timestamp(point, '.')}.", highlight=False)
        if in_service:
            return
        job = store.get_job(job_id)
        job = _run_with_progress(Path(job.media_path or ""), job.options, job_id, settings, store)
    except TTServiceError as error:
        fail(error)
    _finish(job, fmt, output, settings, store)


def _finish(job: Job, fmt: str, output: Path | None, settings: Settings, store: Store) -> None:
    """Print or write the transcript of a finished job, or say why there is none; exit accordingly."""
    if job.status is JobStatus.CANCELLED:
        fail(Message("job.cancelled_kept", job_id=job.id), EXIT_CANCELLED)
    if job.status is JobStatus.INTERRUPTED:
        reason = job.reason or Message("job.was_interrupted", job_id=job.id)
        fail(Message("job.continue_with", reason=reason, job_id=job.id))
    if job.status is not JobStatus.COMPLETED:
        failed = (
            Message("job.failed_as", job_id=job.id, reason=job.reason)
            if job.reason
            else Message("job.failed_without_reason", job_id=job.id)
        )
        fail(failed, job.exit_code if job.exit_code == EXIT_BAD_INPUT else EXIT_FAILED)
    write(export.render(fmt, store.segments(job.id), job, settings.subtitles), output)


def _options(
    settings: Settings,
    model: str | None,
    language: str | None,
    task: str,
    words: bool,
    speakers: str | None,
    engine: str | None = None,
) -> TranscribeOptions:
    return TranscribeOptions.from_settings(
        settings,
        model=model or None,
        language=language or None,
        task=task,
        word_timestamps=words,
        speakers=speakers or None,
        engine=engine or None,
    )


def _advise_thai(store: Store, settings: Settings, options: TranscribeOptions) -> None:
    """Thai asked of a model not tuned for it: name the Thai fine-tune recommended here."""
    suggestion = actions.models.thai_suggestion(store, settings, options)
    if suggestion is not None:
        note(Message("language.thai_model", model=suggestion.name))


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
    bar = progress.add_task("queued", total=1.0, job=job_id, speed="", visible=False)
    downloading = DownloadBar()

    def on_update(job: Job) -> None:
        downloading.close()
        speed = job.speed()
        progress.update(
            bar,
            visible=True,
            completed=job.progress,
            description="labelling speakers" if job.labelling else job.status.value,
            speed=f"{speed:.1f}x realtime" if speed else "",
        )

    with progress:
        return run_transcription(
            path,
            options,
            job_id=job_id,
            settings=settings,
            store=store,
            on_update=on_update,
            on_download=downloading.update,
            cancel=cancel.event,
        )


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-m", "--model", help="Model name or local directory.")
@click.option("-l", "--language", help="Language code; auto-detected if omitted.")
@click.option(
    "--task",
    type=click.Choice(["transcribe", "translate"]),
    default="transcribe",
    help="transcribe or translate.",
)
@click.option("--speakers", metavar="auto|N", help="Label who speaks: auto, or the number of speakers.")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    help="auto (whisper.cpp on Apple Silicon, faster-whisper elsewhere), faster-whisper or whisper.cpp.",
)
@json_option('{"id": N}')
def submit(
    file: Path,
    model: str | None,
    language: str | None,
    task: str,
    speakers: str | None,
    engine: str | None,
    as_json: bool,
) -> None:
    """Queue FILE for the running service and print the job id.

    A model not downloaded yet is downloaded by the service; the job waits queued meanwhile.
    """
    from ...supervision.service import running_service

    try:
        settings, store = services()
        options = _options(settings, model, language, task, False, speakers, engine)
        job_id = actions.submit_file(store, settings, file, options)
        job = store.get_job(job_id)
    except RequestError as error:
        fail(error, EXIT_BAD_INPUT)
    except TTServiceError as error:
        fail(error)
    if job.status is JobStatus.FAILED:
        fail(Message("job.failed_as", job_id=job_id, reason=job.reason or ""), EXIT_BAD_INPUT)
    print(json.dumps({"id": job_id}) if as_json else job_id)
    _advise_thai(store, settings, job.options)
    if running_service(settings) is None and not any(m.in_contact for m in actions.jobs.machines(store)):
        err.print(f"No TTService is running; job {job_id} waits queued until one starts.", highlight=False)
