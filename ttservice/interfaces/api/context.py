"""What every route reads: the settings, the store and a ProcessManager (for stops and logs)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from fastapi import Request

from ... import actions
from ...config import Settings
from ...jobs import Store
from ...messages import Said
from ...supervision import ProcessManager
from .health import DatabaseProbe


@dataclass
class Context:
    settings: Settings
    store: Store
    pm: ProcessManager  # never dispatches: the service's own manager starts the workers
    probe: DatabaseProbe  # /health's look at the database, which never waits long

    def details(self, job_id: int) -> dict:
        """The job as `ttservice show --json` gives it (CPU measured since this process's last look)."""
        return actions.details(self.store, self.settings, job_id, self.pm)

    def stop_soon(self, job_id: int, reason: Said) -> None:
        """Stop a job without holding up the caller (a request being torn down)."""
        threading.Thread(target=self.pm.kill_process, args=(job_id, reason), daemon=True).start()


def context(request: Request) -> Context:
    return request.app.state.context
