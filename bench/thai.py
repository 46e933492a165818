"""Bench items 19 and 20: Thai accuracy on the user's own recordings, and converting a
Transformers-format Whisper of medium size.

Item 19 reads the folder TTSERVICE_BENCH_THAI names: NAME.wav (or .mp3, .m4a, .flac) beside
NAME.txt, its transcript. None ship with TTService (docs/performance.md says how to add a few).
Each installed Thai fine-tune (and any model given with --thai-models) transcribes every
recording with `ttservice transcribe --language th`; the figures are the character error rate
with spaces removed (Thai writes no spaces between words, so spaces are style, not content) and
the word error rate after PyThaiNLP's `newmm` segmentation, over all the recordings together.

Item 20 writes a Whisper-medium-shaped model (769 M parameters, random float32 weights) in
Transformers' names and converts it as a download does, in a process of its own: seconds, peak
RSS and the estimate said before it starts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import unicodedata
from pathlib import Path

import numpy as np
import psutil

AUDIO = (".wav", ".mp3", ".m4a", ".flac", ".ogg")
MEDIUM = {"d_model": 1024, "ffn": 4096, "encoder_layers": 24, "decoder_layers": 24, "heads": 16}
VOCABULARY, MEL_BINS = 51865, 80


def _normalised(text: str) -> str:
    """NFC, lower case, punctuation gone, and the two spellings Thai keyboards make of one vowel
    made one."""
    text = unicodedata.normalize("NFC", text).lower().replace("เเ", "แ").replace("\u0e4d\u0e32", "\u0e33")
    return re.sub(r"[^\w\s]", " ", text).strip()


def thai_error_rates(reference: str, hypothesis: str) -> tuple[float, float]:
    """(CER with spaces removed, WER over PyThaiNLP newmm words) of `hypothesis`, in %."""
    import jiwer
    from pythainlp.tokenize import word_tokenize

    # Spaces go before segmenting too: newmm cuts a run of Thai the same way wherever a writer
    # happened to put a space, so the words compared are the model's, not its spacing.
    ref, hyp = (re.sub(r"\s+", "", _normalised(text)) for text in (reference, hypothesis))
    cer = jiwer.cer(ref, hyp or " ")

    def words(text: str) -> str:
        return " ".join(w for w in word_tokenize(text, engine="newmm") if w.strip())

    wer = jiwer.wer(words(ref), words(hyp) or " ")
    return cer * 100, wer * 100


def thai_recordings(folder: Path) -> list[tuple[Path, str]]:
    return [
        (audio, audio.with_suffix(".txt").read_text(encoding="utf-8"))
        for audio in sorted(folder.iterdir())
        if audio.suffix.lower() in AUDIO and audio.with_suffix(".txt").exists()
    ]


def thai_accuracy(figures, work: Path, models: list[str] | None, ctx) -> None:
    item = "19 Thai accuracy"
    folder = os.environ.get("TTSERVICE_BENCH_THAI")
    if not folder or not Path(folder).is_dir():
        ctx.console.print("  TTSERVICE_BENCH_THAI names no folder of Thai recordings: skipped")
        figures.rows.append(
            {"item": item, "figure": "recordings", "choice": "none (TTSERVICE_BENCH_THAI unset)"}
        )
        return
    found = thai_recordings(Path(folder))
    settings = ctx.settings_in(work, "thai")
    if models is None:
        from ttservice import actions
        from ttservice.jobs import open_store

        listed = actions.models.list_models(open_store(settings), settings)
        models = [m.name for m in listed if m.installed and (m.languages == ["th"] or m.multilingual)]
    from faster_whisper.audio import decode_audio

    seconds = sum(len(decode_audio(str(path))) / 16000 for path, _ in found)
    ctx.console.print(
        f"  {len(found)} Thai recordings, {seconds:.0f} s; models: {', '.join(models) or 'none installed'}"
    )
    figures.rows.append({"item": item, "figure": f"recordings ({seconds:.0f} s)", "choice": str(len(found))})
    env = ctx.worker_env(settings)
    for model in models:
        said, started = [], time.perf_counter()
        for path, _ in found:
            run = subprocess.run(
                [ctx.PY, "-m", "ttservice", "transcribe", str(path), "--model", model, "--language", "th"],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            if run.returncode != 0:
                ctx.console.print(f"  {model}: {run.stderr.strip()}")
                break
            said.append(run.stdout)
        else:
            wall = time.perf_counter() - started
            cer, wer = thai_error_rates(" ".join(t for _, t in found), " ".join(said))
            figures.add(item, f"{model}: CER (spaces removed)", [cer], "%")
            figures.add(item, f"{model}: WER (newmm words)", [wer], "%")
            figures.add(item, f"{model}: speed, `ttservice transcribe` wall", [seconds / wall], "x realtime")


# --- item 20 ---------------------------------------------------------------------------------


def medium_transformers_model(folder: Path, tokenizer: Path) -> Path:
    """Whisper medium's shape in Transformers' names and files, random float32 weights."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    d, ffn = MEDIUM["d_model"], MEDIUM["ffn"]
    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray] = {}

    def add(name: str, *shape: int) -> None:
        tensors[name] = rng.standard_normal(shape, dtype=np.float32) * 0.02

    def layer(prefix: str, cross: bool) -> None:
        for attention in ("self_attn", "encoder_attn") if cross else ("self_attn",):
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                add(f"{prefix}.{attention}.{proj}.weight", d, d)
                if proj != "k_proj":
                    add(f"{prefix}.{attention}.{proj}.bias", d)
            add(f"{prefix}.{attention}_layer_norm.weight", d)
            add(f"{prefix}.{attention}_layer_norm.bias", d)
        add(f"{prefix}.fc1.weight", ffn, d), add(f"{prefix}.fc1.bias", ffn)
        add(f"{prefix}.fc2.weight", d, ffn), add(f"{prefix}.fc2.bias", d)
        add(f"{prefix}.final_layer_norm.weight", d), add(f"{prefix}.final_layer_norm.bias", d)

    for side, cross in (("encoder", False), ("decoder", True)):
        for i in range(MEDIUM[f"{side}_layers"]):
            layer(f"model.{side}.layers.{i}", cross)
        add(f"model.{side}.layer_norm.weight", d), add(f"model.{side}.layer_norm.bias", d)
    add("model.encoder.conv1.weight", d, MEL_BINS, 3), add("model.encoder.conv1.bias", d)
    add("model.encoder.conv2.weight", d, d, 3), add("model.encoder.conv2.bias", d)
    add("model.encoder.embed_positions.weight", 1500, d)
    add("model.decoder.embed_positions.weight", 448, d)
    add("model.decoder.embed_tokens.weight", VOCABULARY, d)
    save_file(tensors, str(folder / "model.safetensors"))
    config = {
        "model_type": "whisper", "architectures": ["WhisperForConditionalGeneration"], "d_model": d,
        "encoder_layers": MEDIUM["encoder_layers"], "decoder_layers": MEDIUM["decoder_layers"],
        "encoder_attention_heads": MEDIUM["heads"], "decoder_attention_heads": MEDIUM["heads"],
        "encoder_ffn_dim": ffn, "decoder_ffn_dim": ffn, "vocab_size": VOCABULARY, "num_mel_bins": MEL_BINS,
        "max_source_positions": 1500, "max_target_positions": 448,
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_bytes(tokenizer.read_bytes())
    return folder


CONVERT = """
import sys
from pathlib import Path
from ttservice.models import convert
convert.convert(Path(sys.argv[1]), Path(sys.argv[2]), {})
"""


def _peak_of(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a command, sampled every 20 ms."""
    wall, peak, _ = sampled(cmd, env)
    return wall, peak


def sampled(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB, sampled every 20 ms: a child's ru_maxrss starts at its parent's,
    as Linux keeps the high-water mark across fork and exec) and what the command printed."""
    import tempfile

    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:  # a pipe could fill
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        watched, peak = psutil.Process(process.pid), 0.0
        while process.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.02)
        out.seek(0), err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(err.read()[-2000:])
        return time.perf_counter() - started, peak, out.read()


def conversion(figures, work: Path, runs: int, ctx) -> None:
    from tests.models.testmodel import join_base
    from ttservice.models import convert

    item = "20 conversion"
    tokenizer = join_base(work / "whisper-base") / "tokenizer.json"
    source = medium_transformers_model(work / "medium-transformers", tokenizer)
    estimate = convert.memory_mb(convert.parameters(source))
    env = ctx.worker_env(ctx.settings_in(work, "convert"))
    walls, peaks = [], []
    for run in range(runs):
        wall, peak = _peak_of([ctx.PY, "-c", CONVERT, str(source), str(work / f"medium-ct2-{run}")], env)
        walls.append(wall)
        peaks.append(peak)
    figures.add(item, "medium (769 M, float32 safetensors) to CTranslate2 float16: wall", walls, "s")
    figures.add(item, "the same: peak RSS", peaks, "MB")
    said = f"estimate said before it starts ({estimate:.0f} MB) / peak"
    figures.add(item, said, [estimate / max(peaks)], "", ">= 1", lambda v: v >= 1)
