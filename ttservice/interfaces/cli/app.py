"""The `ttservice` command's commands: a thin layer over the store, ProcessManager and exports.

Built on click (not typer, which now imports pydantic: 0.2 s more at every start).
Each group of commands has its module: `run` (transcribe, resume, submit), `jobs`
(jobs, show, logs, stop, cleanup, export), `edits` (edit, speakers), `models` (list, download, remove,
languages) and `admin` (serve, agent, hosts, db).
"""

from __future__ import annotations

import sys

import click

from ... import __version__, messages, platform
from ...config import Settings, settings_help
from ...messages import Message
from . import admin, edits, jobs, models, run
from .common import EXIT_CANCELLED, err

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
PORTABLE_HELP = f"{platform.PORTABLE_ENV}: {platform.PORTABLE_MEANING}"


def _version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from ...transcription import engine

    click.echo(f"ttservice {__version__}")
    for what, how in platform.describe().items():
        click.echo(f"{what}: {how}")
    click.echo(f"jobs run on: {engine.where_jobs_run(Settings.from_env())}")
    if not engine.whispercpp_missing():
        from ...transcription.whispercpp import system_info

        click.echo(f"whisper.cpp: {system_info()}")
    ctx.exit()


@click.group(
    context_settings=CONTEXT,
    epilog="\b\nSettings (environment variables):\n" + settings_help() + "\n\n" + PORTABLE_HELP,
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Show the version and what supervision uses on this system.",
)
def app() -> None:
    """TTService: local transcription in supervised worker processes."""


for command in (
    run.transcribe,
    run.resume,
    jobs.jobs,
    jobs.show,
    jobs.logs_cmd,
    jobs.stop,
    jobs.cleanup,
    jobs.export_cmd,
    edits.edit,
    edits.speakers,
    admin.serve,
    admin.agent,
    admin.hosts,
    run.submit,
    admin.db_app,
    models.models_app,
):
    app.add_command(command)


def main() -> None:
    try:
        app(prog_name="ttservice")
    except KeyboardInterrupt:
        err.print(Message("cli.interrupted").text(messages.locale_language()))
        sys.exit(EXIT_CANCELLED)
