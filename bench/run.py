"""TTService benchmarks: `./setup.sh --bench` (or `.venv/bin/python bench/run.py [--only 1,5]`).

Prints a table and writes bench/results.json. Every figure is the median of
several runs (min and max beside it); a comparison alternates its two sides
within one run so that drift of the machine cancels out. Nothing here is
asserted: targets are shown next to what was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

import jiwer
import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.agents import agents as agents_bench  # noqa: E402
from bench.agents import media_fetch  # noqa: E402
from bench.api import api as api_bench  # noqa: E402
from bench.desktop import desktop  # noqa: E402
from bench.engines import engines_side_by_side  # noqa: E402
from bench.follow import follow_bench  # noqa: E402
from bench.realspeech import meetings, real_speech, recordings  # noqa: E402
from bench.search import search as search_bench  # noqa: E402
from bench.speakers import labelling  # noqa: E402
from bench.stores import stores as stores_bench  # noqa: E402
from bench.thai import conversion, thai_accuracy  # noqa: E402
from tests.conftest import JFK_WAV  # noqa: E402
from tests.models.testmodel import join_base  # noqa: E402
from tests.speech import SPEECH, speech_with_pauses, synthesize, write_wav  # noqa: E402
from ttservice import actions  # noqa: E402
from ttservice.config import STANDBY, STANDBY_READY, Settings  # noqa: E402
from ttservice.jobs import JobStatus, Runner, TranscribeOptions, logs, open_store  # noqa: E402
from ttservice.platform import PORTABLE_ENV  # noqa: E402
from ttservice.supervision.process_manager import ProcessManager, worker_env  # noqa: E402

PY = sys.executable
BARE = ROOT / "bench" / "bare.py"
STUBBORN = ROOT / "tests" / "helpers" / "stubborn_worker.py"
RESULTS = ROOT / "bench" / "results.json"
THREE_MINUTES = 9  # repetitions of SPEECH that espeak-ng reads in about three minutes
console = Console(width=150)


class Figures:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, item: str, name: str, values: list[float], unit: str, target: str = "", ok=None):
        row = {
            "item": item,
            "figure": name,
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "runs": len(values),
            "unit": unit,
            "target": target,
            "met": ok(statistics.median(values)) if ok else None,
        }
        self.rows.append(row)
        console.print(f"  {name}: {_fmt(row['median'])} {unit}", highlight=False)
        return row["median"]


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def settings_in(work: Path, name: str, **values) -> Settings:
    return Settings.from_env({}, data_dir=work / name, **values)


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(words(reference), words(hypothesis))


def wait_until(predicate: Callable[[], object], timeout: float = 120, poll: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(poll)
    raise TimeoutError("benchmark step timed out")


def group_empty(pgid: int) -> bool:
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except (psutil.Error, ProcessLookupError):
            continue
    return True


def tiled(path: Path, times: int, dest: Path) -> Path:
    """The recording `times` over, end to end."""
    with wave.open(str(path)) as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    samples = np.frombuffer(frames, "<i2").astype(np.float32) / 32768
    return write_wav(dest, np.tile(samples, times), rate)


def alternate(a: Callable[[], float], b: Callable[[], float], runs: int) -> tuple[list, list]:
    first, second = [], []
    for _ in range(runs):
        first.append(a())
        second.append(b())
    return first, second


# --- 1 ----------------------------------------------------------------------


def overhead(figures: Figures, work: Path, audio: Path, runs: int) -> None:
    settings = settings_in(work, "overhead")
    env = worker_env(settings)
    texts: dict[str, str] = {}

    def timed(name: str, cmd: list[str]) -> float:
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        texts[name] = done.stdout
        return time.perf_counter() - start

    ours, bare = alternate(
        lambda: timed("ours", [PY, "-m", "ttservice", "transcribe", str(audio)]),
        lambda: timed("bare", [PY, str(BARE), str(audio)]),
        runs,
    )
    figures.add("1 overhead", "ttservice transcribe, 3-min audio", ours, "s")
    figures.add("1 overhead", "bare faster-whisper, same audio", bare, "s")
    ratio = [o / b for o, b in zip(ours, bare, strict=True)]
    figures.add("1 overhead", "wall-time ratio", ratio, "x", "<= 1.03", lambda v: v <= 1.03)
    reference = SPEECH * THREE_MINUTES
    diff = abs(wer(reference, texts["ours"]) - wer(reference, texts["bare"])) * 100
    figures.add("1 overhead", "WER difference", [diff], "points", "0", lambda v: v == 0)


# --- 2, 3, 9 ------------------------------------------------------------------


def detection_and_stop(figures: Figures, work: Path, audio: Path, runs: int) -> None:
    """Items 2 and 3 twice: with Linux's primitives, and in portable mode (what a Mac runs)."""
    for portable in (False, True):
        saved = os.environ.get(PORTABLE_ENV)
        os.environ[PORTABLE_ENV] = "1" if portable else "0"  # read at each call, and by every child
        try:
            _detection_and_stop(figures, work, audio, runs, " (portable mode)" if portable else "")
        finally:
            if saved is None:
                os.environ.pop(PORTABLE_ENV, None)
            else:
                os.environ[PORTABLE_ENV] = saved


def _detection_and_stop(figures: Figures, work: Path, audio: Path, runs: int, mode: str) -> None:
    settings = settings_in(work, "stop-portable" if mode else "stop")
    store = open_store(settings)
    pm = ProcessManager(store, settings, runner=Runner.SERVICE)
    pm.start()
    options = TranscribeOptions.from_settings(settings)
    env = worker_env(settings)

    def running_job(cmd: list[str] | None = None, first_text: bool = True) -> tuple[int, int]:
        job_id = store.create_job(audio.name, str(audio), options, Runner.SERVICE)
        pm.start_job(job_id, cmd=cmd and [*cmd, str(job_id)])
        if first_text:
            wait_until(lambda: store.segments(job_id), poll=0.05)
        return job_id, store.get_job(job_id).process_id

    def detect() -> float:
        job_id, pid = running_job(first_text=False)
        wait_until(lambda: psutil.pid_exists(pid))
        os.kill(pid, signal.SIGKILL)
        start = time.perf_counter()
        wait_until(lambda: store.get_job(job_id).status is not JobStatus.PROCESSING, poll=0.002)
        return time.perf_counter() - start

    def stop(cmd: list[str] | None = None) -> tuple[float, float]:
        job_id, pid = running_job(cmd)
        start = time.perf_counter()
        subprocess.run([PY, "-m", "ttservice", "stop", str(job_id)], env=env, check=True)
        cli = time.perf_counter() - start
        wait_until(lambda: group_empty(pid), poll=0.002)
        return cli, time.perf_counter() - start

    def cli_killed() -> float:
        """A foreground `ttservice transcribe` SIGKILLed: how long until its worker is gone."""
        newest = max((j.id for j in store.list_jobs(limit=1)), default=0)
        cli = subprocess.Popen([PY, "-m", "ttservice", "transcribe", str(audio)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        mine = lambda: [j for j in store.list_jobs(limit=1) if j.id > newest and j.process_id]  # noqa: E731
        job = wait_until(mine, poll=0.05)[0]
        wait_until(lambda: store.segments(job.id), poll=0.05)
        cli.kill()
        cli.wait()
        start = time.perf_counter()
        wait_until(lambda: group_empty(job.process_id), poll=0.002)
        return time.perf_counter() - start

    def stop_in_process(cmd: list[str] | None = None) -> float:
        job_id, pid = running_job(cmd)
        start = time.perf_counter()
        pm.kill_process(job_id)
        wait_until(lambda: group_empty(pid), poll=0.002)
        return time.perf_counter() - start

    try:
        figures.add(
            "2 detection", "SIGKILL worker -> not processing" + mode, [detect() for _ in range(runs)], "s",
            "<= 2", lambda v: v <= 2,
        )  # fmt: skip
        beat = settings.heartbeat_interval
        figures.add(
            "2 detection", "SIGKILL foreground CLI -> its worker gone" + mode,
            [cli_killed() for _ in range(max(2, runs // 2))], "s", f"<= {beat:g} (a heartbeat)",
            lambda v: v <= beat,
        )  # fmt: skip
        coop = [stop() for _ in range(runs)]
        figures.add(
            "3 stop", "ttservice stop -> group empty (cooperative)" + mode, [c[1] for c in coop], "s",
            "<= 1", lambda v: v <= 1,
        )  # fmt: skip
        figures.add(
            "3 stop", "kill_process -> group empty (cooperative)" + mode,
            [stop_in_process() for _ in range(runs)], "s", "<= 1", lambda v: v <= 1,
        )  # fmt: skip
        grace = settings.kill_grace
        stubborn = [stop([PY, str(STUBBORN)]) for _ in range(max(2, runs // 2))]
        figures.add(
            "3 stop", "ttservice stop -> group empty (child ignores TERM)" + mode, [c[1] for c in stubborn],
            "s", f"<= {grace + 1:g}", lambda v: v <= grace + 1,
        )  # fmt: skip
    finally:
        pm.shutdown(stop_jobs=True, wait=0)


def first_text(figures: Figures, work: Path, files: dict[str, Path], runs: int) -> None:
    """Submit to an idle service (its warm worker ready), and to one without a warm worker."""
    for warm in (True, False):
        settings = settings_in(work, f"first-{'warm' if warm else 'cold'}", warm_worker=warm)
        store = open_store(settings)
        pm = ProcessManager(store, settings, runner=Runner.SERVICE)
        pm.start(dispatch=True)
        values: dict[str, list[float]] = {name: [] for name in files}

        def submit(audio: Path, warm: bool = warm) -> float:
            if warm:
                wait_until(pm.warm.ready, poll=0.05)  # noqa: B023 - used within the loop
            start = time.perf_counter()
            job_id = actions.submit_file(store, settings, audio, TranscribeOptions.from_settings(settings))  # noqa: B023
            wait_until(lambda: store.segments(job_id), poll=0.01)  # noqa: B023
            elapsed = time.perf_counter() - start
            pm.kill_process(job_id)  # noqa: B023
            return elapsed

        try:
            for _ in range(runs):
                for name, audio in files.items():  # alternated, so that drift cancels
                    values[name].append(submit(audio))
        finally:
            pm.shutdown(stop_jobs=True, wait=0)
        worker = "warm worker ready" if warm else "no warm worker"
        for name, found in values.items():
            figures.add("9 first text", f"submit -> first segment, {name}, {worker}", found, "s", "<= 3",
                        lambda v: v <= 3)  # fmt: skip


# --- 4 ------------------------------------------------------------------------


def monitoring(figures: Figures, work: Path, audio: Path, window: float) -> None:
    """CPU and RSS of the supervising service with three running jobs, vs the same jobs unsupervised."""
    settings = settings_in(work, "monitor", max_concurrent_jobs=3)
    env = worker_env(settings)
    store = open_store(settings)
    service_cpu, service_rss, supervised_rss, bare_rss, warm_rss = [], [], [], [], []
    for _ in range(2):
        log = open(work / "monitor-service.log", "ab")
        service = subprocess.Popen([PY, "-m", "ttservice", "serve", "--no-ui", "--no-api"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            warm_rss.append(_idle_warm_worker_rss(service.pid, settings.log_dir / "standby.log"))
            jobs = [actions.submit_file(store, settings, audio, TranscribeOptions.from_settings(settings))
                    for _ in range(3)]  # fmt: skip
            wait_until(lambda: all(store.segments(j) for j in jobs), poll=0.1)  # noqa: B023
            workers = [psutil.Process(store.get_job(j).process_id) for j in jobs]
            cpu, rss, worker_rss = _sample(psutil.Process(service.pid), workers, window / 2)
            service_cpu.append(cpu)
            service_rss.append(rss)
            supervised_rss.extend(worker_rss)
        finally:  # its jobs stop with it
            service.send_signal(signal.SIGTERM)
            service.wait(60)
            log.close()
        bare = [subprocess.Popen([PY, str(BARE), str(audio)], stdout=subprocess.PIPE) for _ in range(3)]
        for p in bare:
            p.stdout.readline()  # transcribing, as the supervised jobs were
        _, _, worker_rss = _sample(None, [psutil.Process(p.pid) for p in bare], window / 2)
        bare_rss.extend(worker_rss)
        for p in bare:
            p.kill()
            p.wait()
    figures.add("4 monitoring", "service CPU with 3 jobs", service_cpu, "% of a core", "<= 0.5",
                lambda v: v <= 0.5)  # fmt: skip
    figures.add("4 monitoring", "service RSS", service_rss, "MB")
    extra = statistics.median(supervised_rss) - statistics.median(bare_rss)
    figures.add("4 monitoring", "worker RSS (supervised)", supervised_rss, "MB")
    figures.add("4 monitoring", "worker RSS (bare faster-whisper)", bare_rss, "MB")
    figures.add("4 monitoring", "RSS per job over bare", [extra], "MB", "<= 16", lambda v: v <= 16)
    figures.add("4 monitoring", "warm worker RSS, idle (TTSERVICE_WARM_WORKER=0: none)", warm_rss, "MB")


def _idle_warm_worker_rss(service_pid: int, ready_log: Path) -> float:
    """RSS of the service's warm worker once it has loaded the model (its log says so)."""

    def warm_worker() -> psutil.Process | None:
        return next((c for c in psutil.Process(service_pid).children() if STANDBY in c.cmdline()), None)

    warm = wait_until(warm_worker, poll=0.1)  # the log is new from then on
    wait_until(lambda: ready_log.exists() and STANDBY_READY in ready_log.read_text(), poll=0.1)
    return warm.memory_info().rss / 2**20


def _sample(leader, workers, seconds: float) -> tuple[float, float, list[float]]:
    cpu_before = sum(leader.cpu_times()[:2]) if leader else 0.0
    rss, worker_rss = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if leader:
            rss.append(leader.memory_info().rss / 2**20)
        for w in workers:
            try:
                worker_rss.append(w.memory_info().rss / 2**20)
            except psutil.Error:
                pass
        time.sleep(1)
    cpu = (sum(leader.cpu_times()[:2]) - cpu_before) / seconds * 100 if leader else 0.0
    return cpu, statistics.median(rss) if rss else 0.0, [statistics.median(worker_rss)] if worker_rss else []


# --- 5, 6, 7 --------------------------------------------------------------------


def store_queries(figures: Figures, work: Path, rows: int, runs: int) -> None:
    settings = settings_in(work, "store")
    store = open_store(settings)
    now = time.time()
    options = TranscribeOptions().to_json()
    with store.db.transaction() as conn:
        conn.executemany(
            "INSERT INTO transcription_jobs (original_filename, media_path, status, model, options_json,"
            " runner, created_at, started_at, finished_at, last_heartbeat, progress)"
            " VALUES (?, ?, ?, 'tiny.en', ?, 'service', ?, ?, ?, ?, 1)",
            [
                (
                    f"talk{i}.wav",
                    f"/media/talk{i}.wav",
                    "completed",
                    options,
                    now - i,
                    now - i,
                    now - i + 5,
                    now - i,
                )
                for i in range(rows - 6)
            ],
        )
    jobs = [store.create_job(f"live{i}.wav", "/media/live.wav", TranscribeOptions()) for i in range(6)]
    for job_id in jobs:
        store.claim(job_id, 10)
    for writers in (6, psutil.cpu_count()):
        # Each writer heartbeats 20 times a second (the default is once every 5 s), in its own process.
        rounds = [_heartbeats(settings.db_path, jobs[:writers]) for _ in range(3)]
        figures.add(
            "5 store",
            f"heartbeat UPDATE p50, {writers} writers",
            [statistics.median(r) for r in rounds],
            "ms",
        )
        p99 = [statistics.quantiles(r, n=100)[98] for r in rounds]
        figures.add(
            "5 store", f"heartbeat UPDATE p99, {writers} writers", p99, "ms", "<= 1", lambda v: v <= 1
        )
    floor = [_cold_memory_update() for _ in range(3)]
    figures.add("5 store", "machine floor: in-memory UPDATE after a 50-ms sleep, p99", floor, "ms")
    for name, query, target in (
        ("active-jobs SELECT", store.active_jobs, 5),
        ("History page query", lambda: (store.list_jobs(limit=50), store.page_of_jobs()[0]), 50),
    ):
        figures.add("5 store", f"{name}, {rows:,} rows", _ms(query, runs * 10), "ms", f"<= {target}",
                    lambda v, t=target: v <= t)  # fmt: skip


def _cold_memory_update(count: int = 300) -> float:
    """p99 of an UPDATE with no file and no lock, each after a sleep as heartbeats are: what the
    machine itself adds to a cold write (caches emptied while the process slept)."""
    import sqlite3

    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, beat REAL)")
    conn.execute("INSERT INTO t VALUES (1, 0)")
    values = []
    for _ in range(count):
        time.sleep(0.05)
        start = time.perf_counter()
        conn.execute("UPDATE t SET beat = ? WHERE id = 1", (time.time(),))
        values.append((time.perf_counter() - start) * 1000)
    return statistics.quantiles(values, n=100)[98]


def _ms(fn: Callable[[], object], runs: int) -> list[float]:
    values = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        values.append((time.perf_counter() - start) * 1000)
    return values


HEARTBEAT_WRITER = """
import sys, time
from ttservice.jobs.sqlite import SQLiteStore
store = SQLiteStore(sys.argv[1], migrate=False)
job, out = int(sys.argv[2]), []
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    store.heartbeat(job)
    out.append((time.perf_counter() - start) * 1000)
    time.sleep(0.05)
print(" ".join(f"{v:.4f}" for v in out))
"""


def _heartbeats(db: Path, jobs: list[int], count: int = 300) -> list[float]:
    writers = [
        subprocess.Popen(
            [PY, "-c", HEARTBEAT_WRITER, str(db), str(j), str(count)], stdout=subprocess.PIPE, text=True
        )
        for j in jobs
    ]
    return [float(v) for w in writers for v in w.communicate()[0].split()]


def history_render(figures: Figures, work: Path, runs: int) -> None:
    settings = settings_in(work, "history")
    store = open_store(settings)
    now = time.time()
    with store.db.transaction() as conn:
        conn.executemany(
            "INSERT INTO transcription_jobs (original_filename, status, model, runner, created_at, progress)"
            " VALUES (?, 'completed', 'tiny.en', 'service', ?, 1)",
            [(f"meeting {i}.m4a", now - i) for i in range(10_000)],
        )
    code = (
        "import sys, time\nfrom streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file(sys.argv[1], default_timeout=60)\n"
        "start = time.perf_counter(); at.run(); print(time.perf_counter() - start)\n"
        "assert not at.exception, at.exception\n"
    )
    page = ROOT / "ttservice" / "interfaces" / "web" / "views" / "history.py"
    env = worker_env(settings)
    values = [
        float(
            subprocess.run(
                [PY, "-c", code, str(page)], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    figures.add("6 history", "first render, 10,000 jobs", values, "s", "<= 1", lambda v: v <= 1)


def log_tail(figures: Figures, work: Path, runs: int) -> None:
    path = work / "job_1.log"
    line = "2026-11-29 12:00:00,000 INFO Processing chunk 12/40 - Speed: 21.3x realtime - ETA 0:01:10\n"
    with open(path, "w") as f:
        f.write(line * (10 * 2**20 // len(line)))
    values = _ms(lambda: logs.tail(path, 200), runs * 10)
    figures.add("7 log tail", "last 200 lines of a 10 MB log", values, "ms", "<= 5", lambda v: v <= 5)


# --- 8 ------------------------------------------------------------------------

ENGINE_SETTINGS = {  # each a TTSERVICE_* setting changed from the default
    "default (batched 8, 5 beams, int8, VAD, all cores)": {},
    "sequential (batch_size 0)": {"batch_size": 0},
    "float32": {"compute_type": "float32"},
    "sequential, float32, greedy (the default until 2026-12-05)": {
        "batch_size": 0,
        "compute_type": "float32",
        "beam_size": 1,
    },
    "VAD off": {"vad": False},
    "greedy (the default until 2026-12-06)": {"beam_size": 1},
    "cpu_threads 1": {"cpu_threads": 1},
    "cpu_threads 2": {"cpu_threads": 2},
}

ENGINE_RUN = """
import json, sys, time
from faster_whisper.audio import decode_audio
from ttservice.config import Settings
from ttservice.transcription.fasterwhisper import FasterWhisperEngine
from ttservice.jobs import TranscribeOptions
options = TranscribeOptions.from_settings(Settings.from_env({}), **json.loads(sys.argv[2]))
audio = decode_audio(sys.argv[1], sampling_rate=16000)
engine = FasterWhisperEngine(options)
start = time.perf_counter()
text = " ".join(s.text for s in engine.transcribe(audio, options)[0])
print(json.dumps({"seconds": time.perf_counter() - start, "audio": len(audio) / 16000, "text": text}))
"""


def engine_settings(figures: Figures, work: Path, minutes: float) -> None:
    audio, reference = speech_with_pauses(work / "speech_with_pauses.wav", minutes, work)
    results = {}
    for name, cfg in ENGINE_SETTINGS.items():
        done = subprocess.run([PY, "-c", ENGINE_RUN, str(audio), json.dumps(cfg)], capture_output=True,
                              text=True, check=True)  # fmt: skip
        run = json.loads(done.stdout.strip().splitlines()[-1])
        speed = run["audio"] / run["seconds"]
        error = wer(reference, run["text"]) * 100
        figures.add("8 engine", f"{name}: speed", [speed], "x realtime")
        figures.add("8 engine", f"{name}: WER", [error], "%")
        results[name] = (speed, error)
    best = min(e for _, e in results.values())
    eligible = {n: s for n, (s, e) in results.items() if e <= best + 0.5}
    fastest = max(eligible, key=eligible.get)
    console.print(f"  fastest setting within 0.5 WER points of the best: [bold]{fastest}[/bold]")
    figures.rows.append({"item": "8 engine", "figure": "fastest within 0.5 WER points", "choice": fastest})


# ------------------------------------------------------------------------------


# --- 10 ---------------------------------------------------------------------


LOAD_SCRIPT = """
import resource, sys, time
from ttservice.jobs import TranscribeOptions
from ttservice.transcription.fasterwhisper import FasterWhisperEngine
start = time.perf_counter()
FasterWhisperEngine(TranscribeOptions(model=sys.argv[1]))
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
PLAIN_DOWNLOAD = """
import sys
from huggingface_hub import snapshot_download
snapshot_download(sys.argv[1], cache_dir=sys.argv[2], allow_patterns=sys.argv[3].split(","))
"""


def models(figures: Figures, work: Path, audio: Path, runs: int) -> None:
    """Downloads against a local hub (ours vs plain snapshot_download), model load and job memory
    for tiny.en and base, and the warm worker's memory before and after its idle end."""
    from tests.hub_server import Hub
    from tests.models.testmodel import join_base
    from ttservice.models.catalog import ALLOW_PATTERNS

    base = join_base(work / "whisper-base")
    repo = "Systran/faster-whisper-base"
    settings = settings_in(work, "models", warm_idle_seconds=5.0)
    with Hub({repo: base}) as hub:
        env = worker_env(settings) | {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        size = sum(p.stat().st_size for p in base.iterdir()) / 2**20

        def ours(run: list[int] = [0]) -> float:  # noqa: B006 - a counter across calls
            run[0] += 1
            start = time.perf_counter()
            cache = {"HF_HUB_CACHE": str(work / f"ours-{run[0]}")}
            cmd = [PY, "-m", "ttservice", "models", "download", repo]
            subprocess.run(cmd, check=True, capture_output=True, env=env | cache)
            return time.perf_counter() - start

        def plain(run: list[int] = [0]) -> float:  # noqa: B006
            """A script that calls snapshot_download, timed as a whole like our command."""
            run[0] += 1
            cmd = [PY, "-c", PLAIN_DOWNLOAD, repo, str(work / f"plain-{run[0]}"), ",".join(ALLOW_PATTERNS)]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            return time.perf_counter() - start

        mine, theirs = alternate(ours, plain, runs)
        figures.add("10 models", f"download base ({size:.0f} MB), ttservice models download", mine, "s")
        figures.add("10 models", "download base, a script calling snapshot_download", theirs, "s")
        figures.add(
            "10 models",
            "download time ratio, ours / plain",
            [a / b for a, b in zip(mine, theirs, strict=True)],
            "",
        )
    for name, model in (("tiny.en", "tiny.en"), ("base", str(base))):
        loads, peaks = [], []
        for _ in range(runs):
            out = subprocess.run([PY, "-c", LOAD_SCRIPT, model], check=True, capture_output=True, text=True)
            seconds, _ = map(float, out.stdout.split())
            loads.append(seconds)
        figures.add("10 models", f"model load, {name}", loads, "s")
        for _ in range(max(2, runs // 2)):
            peaks.append(_job_peak_rss(settings, audio, model))
        figures.add("10 models", f"job RSS (worker, peak), {name}, {audio.name}", peaks, "MB")
    serve = subprocess.Popen([PY, "-m", "ttservice", "serve", "--no-ui", "--no-api"],
                             env=worker_env(settings), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        service = psutil.Process(serve.pid)
        warm = _idle_warm_worker_rss(serve.pid, settings.log_dir / "standby.log")
        together = service.memory_info().rss / 2**20 + warm
        wait_until(lambda: not any(STANDBY in c.cmdline() for c in service.children()), timeout=60, poll=0.2)
        after = service.memory_info().rss / 2**20
        figures.add("10 models", "service + warm worker RSS, idle", [together], "MB")
        figures.add("10 models", "service RSS after the warm worker's idle end (5 s here)", [after], "MB")
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def _job_peak_rss(settings: Settings, audio: Path, model: str) -> float:
    """The worker's highest RSS while `ttservice transcribe` runs the file with the model."""
    cmd = [PY, "-m", "ttservice", "transcribe", str(audio), "--model", model]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    cli = subprocess.Popen(cmd, env=worker_env(settings), **quiet)
    peak = 0.0
    leader = psutil.Process(cli.pid)
    while cli.poll() is None:
        try:
            for child in leader.children():
                peak = max(peak, child.memory_info().rss / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.05)
    return peak


ITEMS = {
    "1": "overhead",
    "2": "detection latency",
    "3": "stop latency",
    "4": "monitoring cost",
    "5": "store",
    "6": "history render",
    "7": "log tail",
    "8": "engine settings",
    "9": "first text",
    "10": "models",
    "11": "HTTP API",
    "12": "search",
    "13": "PostgreSQL store",
    "14": "agents",
    "15": "media fetch",
    "16": "following a job",
    "17": "desktop under load",
    "18": "real speech",
    "19": "Thai accuracy",
    "20": "conversion",
    "21": "speakers",
    "22": "engines",
    "23": "meetings",
}


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "python": platform.python_version(),
        "system": platform.platform(terse=True),
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(ITEMS), help="comma-separated item numbers (1-23)")
    parser.add_argument("--runs", type=int, default=5, help="repetitions per timed figure")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of monitoring in item 4")
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of speech in item 8")
    parser.add_argument("--real", type=Path, help="NAME.wav + NAME.txt recordings for items 18, 22 and 23")
    parser.add_argument(
        "--thai-models",
        type=lambda text: [m for m in text.split(",") if m],
        help="models item 19 compares (default: the installed Thai fine-tunes and multilingual models)",
    )
    parser.add_argument(
        "--engines",
        type=lambda text: [e for e in text.split(",") if e],
        default=["faster-whisper", "whisper.cpp"],
        help="engines item 22 compares (default: faster-whisper,whisper.cpp)",
    )
    parser.add_argument(
        "--engine-models",
        type=lambda text: [m for m in text.split(",") if m],
        help="models item 22 runs on each engine (default: tiny.en and the multilingual base test model)",
    )
    args = parser.parse_args()
    chosen = args.only.split(",")
    figures = Figures()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ttservice-bench-") as tmp:
        work = Path(tmp)
        three_minutes = synthesize(work / "three_minutes.wav", SPEECH * THREE_MINUTES)
        ten_minutes = synthesize(work / "ten_minutes.wav", SPEECH * 20)
        thirty_minutes = tiled(three_minutes, 10, work / "thirty_minutes.wav")
        steps = {
            "1": lambda: overhead(figures, work, three_minutes, args.runs),
            "2": lambda: detection_and_stop(figures, work, three_minutes, args.runs),
            "4": lambda: monitoring(figures, work, ten_minutes, args.window),
            "5": lambda: store_queries(figures, work, 100_000, args.runs),
            "6": lambda: history_render(figures, work, 3),
            "7": lambda: log_tail(figures, work, args.runs),
            "8": lambda: engine_settings(figures, work, args.minutes),
            "10": lambda: models(figures, work, JFK_WAV, args.runs),
            "12": lambda: search_bench(figures, work, args.runs),
            "13": lambda: stores_bench(figures, work, args.runs),
            "14": lambda: agents_bench(figures, work, three_minutes, min(args.runs, 2)),
            "15": lambda: media_fetch(figures, work, args.runs),
            "16": lambda: follow_bench(figures, work, 1),  # 3 minutes: one commit at a time
            "17": lambda: desktop(figures, work, three_minutes, settings_in),
            "18": lambda: real_speech(figures, work, args.runs, args.real, sys.modules[__name__]),
            "23": lambda: meetings(figures, work, args.real, sys.modules[__name__]),
            "11": lambda: api_bench(figures, work, three_minutes, args.runs, alternate, settings_in),
            "19": lambda: thai_accuracy(figures, work, args.thai_models, sys.modules[__name__]),
            "20": lambda: conversion(figures, work, min(args.runs, 3), sys.modules[__name__]),
            "21": lambda: labelling(figures, work, (5.0, 21.0), sys.modules[__name__]),
            "22": lambda: engines_side_by_side(
                figures,
                work,
                {
                    **{p.name: (p, text) for p, text in recordings(work, JFK_WAV.parent, args.real)},
                    "3-min speech (espeak)": (three_minutes, SPEECH * THREE_MINUTES),
                },
                args.engine_models or ["tiny.en", str(join_base(work / "whisper-base"))],
                args.engines,
                sys.modules[__name__],
            ),  # fmt: skip
            "9": lambda: first_text(
                figures, work, {"3-min speech": three_minutes, "30-min speech": thirty_minutes}, args.runs
            ),
        }
        if "3" in chosen and "2" not in chosen:
            chosen.append("2")  # detection and stop share their set-up
        for key in sorted(set(chosen), key=int):
            if key in steps:
                console.print(
                    f"[bold]{key}. {ITEMS[key]}[/bold]" + (" and stop latency" if key == "2" else "")
                )
                steps[key]()
    _report(figures, time.monotonic() - started)


def _report(figures: Figures, elapsed: float) -> None:
    table = Table("item", "figure", "median", "min – max", "unit", "target", "met")
    for row in figures.rows:
        if "median" not in row:
            table.add_row(row["item"], row["figure"], row["choice"], "", "", "", "")
            continue
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: ""}[row["met"]]
        spread = f"{_fmt(row['min'])} – {_fmt(row['max'])}" if row["runs"] > 1 else ""
        table.add_row(
            row["item"], row["figure"], _fmt(row["median"]), spread, row["unit"], row["target"], met
        )
    console.print(table)
    data = {"machine": machine(), "elapsed_s": round(elapsed), "figures": figures.rows}
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    console.print(f"Wrote {RESULTS.relative_to(ROOT)} in {elapsed:.0f} s.")


if __name__ == "__main__":
    main()
