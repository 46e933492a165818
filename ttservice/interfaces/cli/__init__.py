"""The `ttservice` command: a thin layer over the store, ProcessManager and exports.

Built on click (not typer, which now imports pydantic: 0.2 s more at every start).
Each group of commands has its module: `run` (transcribe, resume, submit), `jobs`
(jobs, show, logs, stop, cleanup, export) and `admin` (serve, db).
"""

from __future__ import annotations

import sys

import click

from ...config import settings_help
from . import admin, jobs, run
from .common import EXIT_CANCELLED, err

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(
    context_settings=CONTEXT,
    epilog="\b\nSettings (environment variables):\n" + settings_help(),
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
    admin.serve,
    run.submit,
    admin.db_app,
):
    app.add_command(command)


def main() -> None:
    try:
        app(prog_name="ttservice")
    except KeyboardInterrupt:
        err.print("Interrupted.")
        sys.exit(EXIT_CANCELLED)


if __name__ == "__main__":
    main()
