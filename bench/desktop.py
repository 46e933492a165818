"""Item 17 of bench/run.py: how the machine feels while two jobs run, with the workers at the
default niceness (TTSERVICE_WORKER_NICE=10) and at the niceness they had before it (0).

For each niceness, a service with its API runs two jobs of 3-minute speech (no warm worker);
once both transcribe, for WINDOW seconds:
- GET /api/v1/jobs is timed every 0.05 s (the API process runs at niceness 0, as the web app);
- a CPU-bound "desktop program" (a Python loop at niceness 0) counts its iterations, against the
  same loop on the machine before the jobs started.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.api import KEY, _serve
from ttservice import actions
from ttservice.jobs import TranscribeOptions, open_store

WINDOW = 15.0  # seconds measured, with both jobs transcribing
LOOP = (
    "import time, sys\nn = 0\nend = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end:\n    n += 1\nprint(n)"
)


def _loop(seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LOOP, str(seconds)], stdout=subprocess.PIPE, text=True)


def desktop(figures, work: Path, audio: Path, settings_in) -> None:
    idle = _loop(WINDOW / 3)
    baseline = int(idle.communicate()[0]) / (WINDOW / 3)
    for nice in (0, 10):
        settings = settings_in(
            work, f"desktop-{nice}", worker_nice=nice, warm_worker=False, max_concurrent_jobs=2
        )
        service, url = _serve(settings, work / f"desktop-{nice}.log")
        store = open_store(settings)
        try:
            jobs = [
                actions.submit_file(store, settings, audio, TranscribeOptions.from_settings(settings))
                for _ in range(2)
            ]
            deadline = time.monotonic() + 120
            while not all(store.segments(j) for j in jobs) and time.monotonic() < deadline:
                time.sleep(0.1)
            program = _loop(WINDOW)
            latencies = []
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
                end = time.monotonic() + WINDOW
                while time.monotonic() < end:
                    start = time.perf_counter()
                    client.get("/api/v1/jobs").raise_for_status()
                    latencies.append((time.perf_counter() - start) * 1000)
                    time.sleep(0.05)
            share = int(program.communicate()[0]) / WINDOW / baseline
            for job_id in jobs:
                httpx.post(f"{url}/api/v1/jobs/{job_id}/stop", headers={"Authorization": f"Bearer {KEY}"})
        finally:
            service.terminate()
            service.wait(60)
            store.close()
        p95 = statistics.quantiles(latencies, n=20)[18]
        label = f"workers at niceness {nice}" + (" (the default)" if nice == 10 else " (before)")
        figures.add(
            "17 desktop",
            f"GET /api/v1/jobs p50, two jobs running, {label}",
            [statistics.median(latencies)],
            "ms",
        )
        figures.add("17 desktop", f"GET /api/v1/jobs p95, two jobs running, {label}", [p95], "ms")
        figures.add("17 desktop", f"a CPU-bound program's speed against idle, {label}", [share * 100], "%")
