"""What every command shares: the consoles, errors and exit codes, signals, output."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from ... import messages
from ...config import Settings
from ...jobs import Download, Store, iso, open_store
from ...jobs.record import PHASE_CONVERTING
from ...messages import Message, Said
from ...supervision.waiting import Interrupt
from ...transcription import export

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 1, 2, 130

FORMAT = click.Choice(export.FORMATS)
FORMAT_HELP = "txt, srt, vtt or json."

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def fail(said: Said, code: int = EXIT_FAILED) -> None:
    """Say why in one sentence, in the language of the terminal's locale, and exit with `code`."""
    lang = messages.locale_language()
    prefix, sentence = Message("cli.error").text(lang), messages.text(said, lang)
    err.print(f"[red]{prefix}[/red] {escape(sentence)}", highlight=False)
    sys.exit(code)


def note(said: Said) -> None:
    """A sentence for the user on stderr, in the terminal's language: advice, not an error."""
    err.print(escape(messages.text(said, messages.locale_language())), highlight=False)


def services() -> tuple[Settings, Store]:
    settings = Settings.from_env()
    return settings, open_store(settings)


def fmt_time(value: float | str | None) -> str:
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


def json_option(what: str):
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what}.")


def write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(Message("cli.cannot_write", path=str(output), error=error.strerror))
    err.print(f"Wrote {output}", highlight=False)


class DownloadBar:
    """A model download's progress on stderr: bytes, MB/s and ETA, from its row in the store; then,
    for a Transformers-format model, its conversion's steps."""

    def __init__(self) -> None:
        self._progress = None
        self._task = None
        self._converting = False

    def update(self, row: Download) -> None:
        if row.phase == PHASE_CONVERTING:
            self._convert(row)
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        if self._progress is None:
            err.print(f"Downloading the model {row.model} ({row.repo_id})", highlight=False)
            self._progress = Progress(
                TextColumn("[bold]{task.description}[/bold]"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
                disable=not err.is_terminal,
            )
            self._progress.start()
            self._task = self._progress.add_task(row.model, total=row.bytes_total or None)
        self._progress.update(self._task, completed=row.bytes_done, total=row.bytes_total or None)

    def _convert(self, row: Download) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        if not self._converting:
            self.close()
            self._converting = True
            need = f", needs about {row.memory_mb / 1024:.1f} GB of memory" if row.memory_mb else ""
            err.print(f"Converting {row.model} to CTranslate2{need}", highlight=False)
            self._progress = Progress(
                TextColumn("[bold]{task.description}[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps"),
                console=err,
                transient=True,
                disable=not err.is_terminal,
            )
            self._progress.start()
            self._task = self._progress.add_task(row.model, total=row.steps_total or None)
        self._progress.update(self._task, completed=row.steps_done, total=row.steps_total or None)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
