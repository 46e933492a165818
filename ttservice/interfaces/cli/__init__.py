"""The `ttservice` command (its commands: `app`).

Light on purpose: a command that runs a job here (`transcribe`, `resume`) starts the job's worker
before it imports the commands and checks the request, so that the worker's imports are done
meanwhile (`supervision.warm.start_ahead`); the job is handed to it once it exists.
"""

from __future__ import annotations

import sys


def main() -> None:
    if starts_ahead(sys.argv[1:]):
        from ...supervision.warm import start_ahead

        start_ahead()
    from .app import main as run

    run()


def starts_ahead(args: list[str]) -> bool:
    """Whether the command line runs a job in this command (not its help, not in the service)."""
    return args[:1] in (["transcribe"], ["resume"]) and not {"-h", "--help", "--service"} & set(args)
