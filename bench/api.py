"""Item 11 of bench/run.py: the HTTP API against the CLI, streaming, and reads under load.

- /v1/audio/transcriptions wall time against `ttservice transcribe` on the same
  3-minute speech (goal: ratio <= 1.05);
- time from sending a streamed request to its first `transcript.text.delta`;
- p50 / p95 of GET /api/v1/jobs/{id} while three jobs run.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import free_port
from ttservice.config import Settings
from ttservice.supervision.process_manager import worker_env

PY = sys.executable
KEY = "bench-key"
TRANSCRIBE = "/v1/audio/transcriptions"


def _serve(settings: Settings, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = worker_env(settings, secrets=True) | {"TTSERVICE_API_KEY": KEY}
    cmd = [PY, "-m", "ttservice", "serve", "--no-ui", "--api-port", str(port)]
    process = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the API did not start; see {log}")


def api(figures, work: Path, audio: Path, runs: int, alternate, settings_in) -> None:
    settings = settings_in(work, "api")
    cli_env = worker_env(settings)
    service, url = _serve(settings, work / "api-service.log")
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=600) as client:

            def by_api() -> float:
                start = time.perf_counter()
                with audio.open("rb") as f:
                    reply = client.post(TRANSCRIBE, files={"file": f}, data={"model": "whisper-1"})
                reply.raise_for_status()
                return time.perf_counter() - start

            def by_cli() -> float:
                start = time.perf_counter()
                cmd = [PY, "-m", "ttservice", "transcribe", str(audio)]
                subprocess.run(cmd, env=cli_env, capture_output=True, check=True)
                return time.perf_counter() - start

            ours, cli = alternate(by_api, by_cli, runs)
            figures.add("11 api", "POST /v1/audio/transcriptions, 3-min speech", ours, "s")
            figures.add("11 api", "ttservice transcribe, same file", cli, "s")
            ratio = [a / b for a, b in zip(ours, cli, strict=True)]
            figures.add("11 api", "wall-time ratio", ratio, "x", "<= 1.05", lambda v: v <= 1.05)

            firsts = []
            for _ in range(runs):
                start = time.perf_counter()
                with audio.open("rb") as f:
                    fields = {"model": "whisper-1", "stream": "true"}
                    with client.stream("POST", TRANSCRIBE, files={"file": f}, data=fields) as r:
                        for line in r.iter_lines():
                            if "transcript.text.delta" in line:
                                firsts.append(time.perf_counter() - start)
                                break
            figures.add("11 api", "first streamed delta, 3-min speech", firsts, "s")

            ids = []
            for _ in range(3):
                with audio.open("rb") as f:
                    ids.append(client.post("/api/v1/jobs", files={"file": f}).json()["id"])
            reads = []
            while len(reads) < 2000:
                start = time.perf_counter()
                job = client.get(f"/api/v1/jobs/{ids[0]}").json()
                reads.append((time.perf_counter() - start) * 1000)
                if job["status"] != "processing" and reads[-1] and len(reads) > 50:
                    break
            for job_id in ids:
                client.post(f"/api/v1/jobs/{job_id}/stop")
            cuts = statistics.quantiles(reads, n=20)
            figures.add("11 api", f"GET /api/v1/jobs/{{id}} with 3 jobs running, p50 ({len(reads)} reads)",
                        [statistics.median(reads)], "ms")  # fmt: skip
            figures.add("11 api", "GET /api/v1/jobs/{id} with 3 jobs running, p95", [cuts[18]], "ms")
    finally:
        service.terminate()
        service.wait(timeout=60)
