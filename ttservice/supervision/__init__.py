"""Supervision: the only code that spawns or signals processes.

`ProcessManager` starts, watches, stops and sweeps workers; `run_transcription`
runs one job in a worker and waits for it (the CLI's foreground path); `worker`
is the job process itself; `service` is `ttservice serve`.

Both names load on first use, so that a worker process (which imports
`supervision.worker`) does not pay for the manager's imports.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ProcessManager", "run_transcription"]


def __getattr__(name: str) -> Any:
    if name == "ProcessManager":
        from .process_manager import ProcessManager

        return ProcessManager
    if name == "run_transcription":
        from .foreground import run_transcription

        return run_transcription
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
