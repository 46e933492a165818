"""`ttservice models list | download | remove | languages`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ...actions import models as actions
from ...exceptions import ModelError, TTServiceError
from ...jobs import JobStatus
from ...messages import Message
from ...models.languages import LANGUAGES
from .common import EXIT_BAD_INPUT, EXIT_CANCELLED, Cancel, DownloadBar, err, fail, json_option, out, services


@click.group("models")
def models_app() -> None:
    """Whisper models: list, download, remove; the languages they know."""


def _size(value: int | None) -> str:
    return f"{value / 2**20:,.0f} MB" if value else "-"


RECOMMENDATION = (
    "Memory: a job's expected peak as jobs run here, for a short file (each hour of audio adds"
    " about {hour:,.0f} MB; labelling the speakers of an hour takes about {speakers:.1f} GB)."
    " Recommended: the most accurate multilingual model, and the most accurate Thai fine-tune,"
    " that fit the memory limit and ran here at 1x realtime or faster, or, not yet run here, are"
    " expected to run at 2x (~)."
)


def _speed(m) -> str:
    if m.speed:
        return f"{m.speed:.1f}x"
    return f"~{m.expected_speed:.1f}x" if m.expected_speed else "-"


def _languages(multilingual: bool | None) -> str:
    return {True: "multilingual", False: "English only", None: "?"}[multilingual]


@models_app.command("list")
@json_option("a JSON array")
def list_cmd(as_json: bool) -> None:
    """Every known and every installed model; where jobs run."""
    from rich.table import Table

    from ...transcription import engine

    try:
        settings, store = services()
        rows = actions.list_models(store, settings)
    except TTServiceError as error:
        fail(error)
    if as_json:
        print(json.dumps([m.to_dict() for m in rows], ensure_ascii=False, indent=2))
        return
    table = Table("name", "installed", "size", "languages", "memory", "speed here", "repo", "path")
    for column in table.columns:
        column.overflow = "fold"
    for m in rows:
        state = "bundled" if m.bundled else "yes" if m.installed else "no"
        if m.download is not None:
            state = f"{m.download.phase} {m.download.progress:.0%}"
        elif m.format == "transformers":
            state = "yes (converted)"
        size = _size(m.size_bytes) if m.size_bytes else f"~{m.download_mb:,.0f} MB" if m.download_mb else "-"
        memory = f"{m.memory_mb:,.0f} MB" if m.memory_mb else "-"
        name = f"{m.name} (recommended)" if m.recommended else m.name
        languages = "Thai" if m.languages == ["th"] else _languages(m.multilingual)
        table.add_row(name, state, size, languages, memory, _speed(m), m.repo_id or "-",
                      str(m.path or "-"))  # fmt: skip
    out.print(table)
    from ...models.memory import per_hour

    hour, speakers = per_hour()
    out.print(RECOMMENDATION.format(hour=hour, speakers=speakers / 1024), highlight=False)
    out.print(f"Jobs run on {engine.where_jobs_run(settings)}.", highlight=False)


@models_app.command("download")
@click.argument("name")
@json_option("the model's path (or the download's row) as JSON")
def download_cmd(name: str, as_json: bool) -> None:
    """Download NAME into the hub cache, with a progress bar; Ctrl-C stops, and the next download
    continues where it stopped."""
    cancel = Cancel()
    bar = DownloadBar()
    try:
        settings, store = services()
        result = actions.download(store, settings, name, bar.update, cancel.event)
    except ModelError as error:
        fail(error, EXIT_BAD_INPUT)
    except TTServiceError as error:
        fail(error)
    finally:
        bar.close()
    if isinstance(result, Path):
        if as_json:
            print(json.dumps({"name": name, "installed": True, "path": str(result)}))
        else:
            err.print(f"The model {name} is ready: {result}", highlight=False)
        return
    if as_json:
        print(json.dumps(result.to_dict()))
    if result.status is JobStatus.CANCELLED:
        fail(Message("download.stopped_cli", model=name), EXIT_CANCELLED)
    fail(result.reason or Message("download.unfinished", model=name))


@models_app.command("remove")
@click.argument("name")
def remove_cmd(name: str) -> None:
    """Delete a downloaded model (refused while a job uses it)."""
    try:
        settings, store = services()
        folder = actions.remove(store, settings, name)
    except TTServiceError as error:
        fail(error)
    err.print(f"Removed {name} ({folder}).", highlight=False)


@models_app.command("languages")
@json_option("a JSON object of code: name")
def languages_cmd(as_json: bool) -> None:
    """Every language Whisper knows (for --language)."""
    if as_json:
        print(json.dumps(LANGUAGES, indent=2))
        return
    for code, language in LANGUAGES.items():
        out.print(f"{code:<4} {language}", highlight=False)
