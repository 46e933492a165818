"""Bench item 22: the engines side by side. Each engine (faster-whisper, whisper.cpp) with the same
weights on the same files, in a process of its own as a job's worker runs it, with TTService's
default settings: ×realtime, first text (from the start of decoding), peak RSS and its estimate,
WER against the text that was spoken. On a Mac, whisper.cpp runs on the GPU (Metal):
`./setup.sh --bench --only 22 --engine-models large-v3-turbo` prints the figures we ask Mac users for.
"""

from __future__ import annotations

import json
from pathlib import Path

RUN = """
import json, sys, time
from faster_whisper.audio import decode_audio
from ttservice.config import Settings
from ttservice.jobs import TranscribeOptions
from ttservice.transcription.engine import engine_class
path, model, name = sys.argv[1:4]
options = TranscribeOptions.from_settings(Settings.from_env(), model=model, engine=name, language="en")
started = time.perf_counter()
engine = engine_class(name)(options)
loaded = time.perf_counter() - started
audio = decode_audio(path, sampling_rate=16000)
started = time.perf_counter()
segments, info = engine.transcribe(audio, options)
first, texts = None, []
for segment in segments:
    first = time.perf_counter() - started if first is None else first
    texts.append(segment.text)
seconds = time.perf_counter() - started
print(json.dumps({"load": loaded, "first": first, "seconds": seconds, "audio": len(audio) / 16000,
                  "text": " ".join(texts),
                  "where": engine.describe()}))
"""


def engines_side_by_side(figures, work: Path, files: dict[str, tuple[Path, str]], models: list[str],
                         engines: list[str], ctx) -> None:  # fmt: skip
    """`files`: name -> (audio, the text spoken in it)."""
    from ttservice.models import memory

    item = "22 engines"
    settings = ctx.settings_in(work, "engines", cpu_threads=0)
    env = ctx.worker_env(settings)
    for model in models:
        label = Path(model).name if "/" in model else model
        for name in engines:
            # Its first load writes whisper.cpp's copy of the model (once): timed apart, then excluded.
            first = _run(ctx, env, next(iter(files.values()))[0], model, name)
            if name == "whisper.cpp":
                figures.add(
                    item, f"{label}, {name}: first load (writes the ggml file once)", [first["load"]], "s"
                )
            figures.rows.append(
                {"item": item, "figure": f"{label}, {name}: runs on", "choice": first["where"]}
            )
            shape = memory.model_shape(model)
            estimate = (
                memory.options_estimate_mb(shape, _options(model, name, settings))
                if shape is not None
                else None
            )
            for file, (audio, spoken) in files.items():
                run = _run(ctx, env, audio, model, name)
                where = f"{label}, {name}, {file}"
                figures.add(item, f"{where}: speed", [run["audio"] / run["seconds"]], "x realtime")
                figures.add(item, f"{where}: first text", [run["first"] or 0.0], "s")
                figures.add(item, f"{where}: WER", [ctx.wer(spoken, run["text"]) * 100], "%")
                figures.add(item, f"{where}: peak RSS", [run["peak"]], "MB")
                if estimate is not None:
                    ratio = [estimate / run["peak"]]
                    figures.add(item, f"{where}: estimate ({estimate:.0f} MB) / peak", ratio, "", ">= 1",
                                lambda v: v >= 1)  # fmt: skip


def _options(model: str, name: str, settings):
    from ttservice.jobs import TranscribeOptions

    return TranscribeOptions.from_settings(settings, model=model, engine=name)


def _run(ctx, env: dict, audio: Path, model: str, name: str) -> dict:
    """The run's figures and its peak RSS."""
    from bench.thai import sampled

    _, peak, out = sampled([ctx.PY, "-c", RUN, str(audio), model, name], env)
    return {**json.loads(out.strip().splitlines()[-1]), "peak": peak}
