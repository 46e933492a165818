"""The GPU benchmark that bench/gpu.sh runs (with TTSERVICE_DEVICE=cuda and CUDA's libraries found).

Three and a half minutes of real speech (the recordings of bench item 18 that need no download:
jfk.wav, the English half of multilingual.mp3 and pyannote.audio's call, a second of silence
between them, three times over), transcribed by `ttservice transcribe` and by bench/bare.py,
alternately, three runs each: the
×realtime of each, their ratio and the WER difference; and the peak memory (RSS) of the last job
against the estimate admission and the memory limit's guard count for it, never measured on CUDA
(docs/decisions.md). A model other than tiny.en: pass its name or folder (`bench/gpu.sh base`,
which must be downloaded, or a local folder).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import realspeech  # noqa: E402
from bench.run import wer  # noqa: E402
from tests.conftest import SHARED  # noqa: E402
from tests.speech import write_wav  # noqa: E402
from ttservice.transcription import device  # noqa: E402

TIMES, RUNS = 3, 3


def speech(work: Path) -> tuple[Path, float, str]:
    """The recordings joined, `TIMES` over, and what was said. (Not one recording over and over: a
    30-s clip of one phrase said again and again compresses too well, so every temperature of the
    fallback would be tried on it, and the figures would be of that.)"""
    found = realspeech.recordings(work, SHARED / "data", None)
    with wave.open(str(realspeech.joined(work, found))) as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    audio = np.tile(samples, TIMES)
    said = " ".join(text.strip() for _, text in found)
    return write_wav(work / "real_speech_3x.wav", audio, rate), len(audio) / rate, " ".join([said] * TIMES)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, out.stdout


def main() -> None:
    found = device.resolve(os.environ.get("TTSERVICE_DEVICE", "cuda"))  # one sentence if there is no GPU
    model = sys.argv[1] if len(sys.argv) > 1 else "tiny.en"
    with tempfile.TemporaryDirectory(prefix="ttservice-gpu-") as tmp:
        audio, seconds, reference = speech(Path(tmp))
        env = dict(os.environ, TTSERVICE_DATA_DIR=str(Path(tmp) / "data"), TTSERVICE_MODEL=model)
        py = sys.executable
        ours, bare = [], []
        for _ in range(RUNS):
            ours.append(timed([py, "-m", "ttservice", "transcribe", str(audio)], env))
            bare.append(timed([py, str(ROOT / "bench" / "bare.py"), str(audio)], env))
        peak, estimate = memory_of_last_job(env, seconds)
    speed = {
        name: seconds / statistics.median(w for w, _ in runs)
        for name, runs in (("ours", ours), ("bare", bare))
    }
    errors = {name: wer(reference, runs[-1][1]) for name, runs in (("ours", ours), ("bare", bare))}
    print(f"GPU benchmark: {model} on {found.describe()}, {seconds:.0f} s of speech, median of {RUNS} runs")
    print(f"  ttservice transcribe  {speed['ours']:7.1f} x realtime   WER {errors['ours']:.1%}")
    print(f"  bench/bare.py         {speed['bare']:7.1f} x realtime   WER {errors['bare']:.1%}")
    print(f"  wall-time ratio ours / bare {speed['bare'] / speed['ours']:.3f}")
    print(f"  WER difference {100 * (errors['ours'] - errors['bare']):+.1f} points")
    print(f"  peak memory (RSS) of the last job {peak:.0f} MB, its estimate {estimate:.0f} MB")


def memory_of_last_job(env: dict[str, str], seconds: float) -> tuple[float, float]:
    """The last job's peak RSS (MB, as `show --json` gives it) and its memory estimate (MB)."""
    from ttservice.config import Settings
    from ttservice.jobs import TranscribeOptions
    from ttservice.models import memory

    def answer(*args: str) -> object:
        command = [sys.executable, "-m", "ttservice", *args, "--json"]
        return json.loads(subprocess.run(command, env=env, capture_output=True, check=True).stdout)

    last = answer("jobs")[0]
    options = TranscribeOptions.from_settings(Settings.from_env(env))
    return answer("show", str(last["id"]))["peak_memory_mb"], memory.job_estimate_mb(options, seconds) or 0.0


if __name__ == "__main__":
    main()
