"""The memory limit, kept while jobs run.

Admission (`models.memory.Room`) starts a job only when its estimate fits beside the running
jobs' estimates; an estimate can still be wrong (a model of unknown shape counts none, speech a
model doubts throughout takes more). So every second the manager measures what its own workers
take (their process trees' RSS) and, where that with everything else admission counts goes over
TTSERVICE_MEMORY_LIMIT_MB, gives memory back: the warm worker first (it holds a model for a job
not yet asked for), then the job furthest over its own estimate, which fails saying so. A job
within its estimate is never the one stopped: the others' estimates fit beside it by admission.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..jobs import Job
from ..models import memory

MB = 2**20


@dataclass(frozen=True)
class Verdict:
    """What a look found: whether to end the warm worker, which job to stop, and the figures."""

    end_warm: bool
    stop: int | None
    taken_mb: float  # what the job to stop takes
    limit_mb: float


class MemoryGuard:
    def __init__(self, settings, host: str) -> None:
        self.settings, self.host = settings, host
        self._expected: dict[tuple[int, int | None], float | None] = {}  # by job and attempt

    def expected(self, job: Job) -> float | None:
        """The job's estimate as admission counted it (read once per attempt)."""
        key = (job.id, job.attempt)
        if key not in self._expected:
            self._expected[key] = memory.job_estimate_mb(job.options, memory.media_seconds(job))
        return self._expected[key]

    def look(
        self, taken: Mapping[int, float], running: list[Job], warm_mb: float, converting_mb: float
    ) -> Verdict:
        """Judge `taken` (MB each of this manager's jobs' workers takes now), beside this machine's
        other `running` jobs (counted at their estimates, as admission counts them), the warm
        worker's `warm_mb` and the conversions' estimates."""
        limit = memory.limit_mb(self.settings)
        jobs = {j.id: j for j in running if j.host in (None, self.host)}
        others = sum(self.expected(j) or 0.0 for j in jobs.values() if j.id not in taken) + converting_mb
        used = sum(taken.values()) + others
        self._expected = {key: mb for key, mb in self._expected.items() if key[0] in jobs}
        if used + warm_mb <= limit:
            return Verdict(False, None, 0.0, limit)
        if used <= limit:
            return Verdict(True, None, 0.0, limit)
        # A worker whose job has just ended is exiting: counted, never the one stopped.
        judged = {job_id: mb for job_id, mb in taken.items() if job_id in jobs}
        worst = offender(judged, {job_id: self.expected(jobs[job_id]) for job_id in judged})
        return Verdict(warm_mb > 0, worst, judged.get(worst, 0.0), limit)


def offender(taken: Mapping[int, float], expected: Mapping[int, float | None]) -> int | None:
    """The job furthest over its estimate (MB taken against MB expected; no estimate: all it
    takes is over), or None when every job is within its own."""
    over = {job_id: mb - (expected.get(job_id) or 0.0) for job_id, mb in taken.items()}
    worst = max(over, key=over.__getitem__, default=None)
    return worst if worst is not None and over[worst] > 0 else None
