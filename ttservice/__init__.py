"""TTService: local transcription with supervised worker processes.

The source document's names, importable from here: `ProcessManager` and
`run_transcription(..., job_id=None)`. Its switch `USE_PROCESS_TRACKING` lives
where `run_transcription` reads it, `ttservice.supervision.foreground` (or set
TTSERVICE_USE_PROCESS_TRACKING=0).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["ProcessManager", "run_transcription"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import supervision

        return getattr(supervision, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
