"""Transformers-format Whisper models, converted once to CTranslate2 with NumPy alone.

The Thai fine-tunes our users need are published for Hugging Face Transformers
(`config.json` with `model_type: whisper`, weights in safetensors), which
faster-whisper cannot load. CTranslate2's own converter needs torch and
transformers (about 1 GB installed) to read them; here the safetensors are read
with NumPy, a tensor at a time kept as float16, into CTranslate2's own
`WhisperSpec`, which validates, quantizes and writes the model as its converter
does. `docs/decisions.md` has the measurements.

What the converted folder holds: CTranslate2's `model.bin`, `config.json` and
`vocabulary.json`; the repo's `tokenizer.json` (or one built from its
`vocab.json` and `merges.txt`); a `preprocessor_config.json` with the model's mel
bins (80, or 128 for v3 and turbo); and `source.json`, saying where it came from.
It is written to a temporary folder and renamed into place whole, so a stopped,
killed or full-disk conversion never leaves anything that looks installed.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import ModelError
from . import tokenizer

FORMAT_CT2, FORMAT_TRANSFORMERS, FORMAT_GGML = "ctranslate2", "transformers", "ggml"
QUANTIZATION = "float16"  # what a converted model keeps on disk; jobs load it as their compute type
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# The files of a Transformers repo a conversion reads (the hub's names; shards: model-0000N-of-M).
TRANSFORMERS_PATTERNS = (
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    *tokenizer.BPE_FILES,
    SAFETENSORS,
    SAFETENSORS_INDEX,
    "model-*-of-*.safetensors",
)
SOURCE_FILE = "source.json"
PARTIAL_PREFIX = ".partial-"
RUNTIME_MB = 200.0  # the converting process before any weights: Python, NumPy, CTranslate2
MARGIN = 1.15  # as a job's estimate: errs upwards
MAX_HEADER = 100 * 2**20  # safetensors' own limit on its JSON header

# safetensors' dtypes NumPy reads directly; BF16 is widened to float32 by hand (NumPy has none).
DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8", "I64": "<i8", "I32": "<i4"}


def format_of(files: Iterable[str]) -> str | None:
    """`ctranslate2`, `transformers` (safetensors), `pickled` (pytorch_model.bin only) or None."""
    names = set(files)
    if "model.bin" in names:
        return FORMAT_CT2
    if SAFETENSORS in names or SAFETENSORS_INDEX in names:
        return FORMAT_TRANSFORMERS
    if names & set(PICKLED):
        return "pickled"
    return None


def convertible(folder: Path) -> bool:
    """Whether `folder` holds a Transformers-format model this module can convert."""
    return format_of([p.name for p in Path(folder).iterdir()]) == FORMAT_TRANSFORMERS


def parameters(folder: Path) -> int:
    """Parameters in the folder's safetensors, from their headers alone."""
    return sum(math.prod(shape) for _, shape, _ in _tensor_index(Path(folder)).values())


def memory_mb(params: int) -> float:
    """The conversion's peak: every weight held once as float16 by the spec, besides the
    process itself (measured: docs/decisions.md)."""
    return (RUNTIME_MB + params * 2 / 2**20) * MARGIN


# --- reading -------------------------------------------------------------------------------


def _tensor_index(folder: Path) -> dict[str, tuple[Path, list[int], tuple[str, int, int]]]:
    """name -> (file, shape, (dtype, start, end)) over the model's one or many safetensors; one
    sentence for files that are not safetensors."""
    try:
        return _read_index(folder)
    except (OSError, ValueError, KeyError, TypeError, struct.error) as error:
        raise ModelError(
            "convert.unreadable", folder=str(folder), error=str(error) or type(error).__name__
        ) from None


def _read_index(folder: Path) -> dict[str, tuple[Path, list[int], tuple[str, int, int]]]:
    if (folder / SAFETENSORS_INDEX).is_file():
        weight_map = json.loads((folder / SAFETENSORS_INDEX).read_text(encoding="utf-8"))["weight_map"]
        files = sorted({folder / name for name in weight_map.values()})
    else:
        files = [folder / SAFETENSORS]
    index = {}
    for path in files:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > min(path.stat().st_size, MAX_HEADER):
                raise ValueError(f"{path.name} is not a safetensors file")
            header = json.loads(f.read(length))
        base = 8 + length
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            start, end = entry["data_offsets"]
            index[name] = (path, entry["shape"], (entry["dtype"], base + start, base + end))
    return index


class Weights:
    """The model's tensors by their Transformers names, each read from its file when asked for.

    Read, not memory-mapped: a map's pages would count in the process's RSS until the end
    (3 GB more for a medium model in float32), while a tensor read is freed once it is
    copied as float16."""

    def __init__(self, folder: Path) -> None:
        self.index = _tensor_index(folder)

    def __contains__(self, name: str) -> bool:
        return self._name(name) in self.index

    def _name(self, name: str) -> str:
        # WhisperForConditionalGeneration saves `model.encoder...`; a bare WhisperModel `encoder...`.
        return name if name in self.index else name.removeprefix("model.")

    def __getitem__(self, name: str):
        import numpy as np

        path, shape, (dtype, start, end) = self.index[self._name(name)]
        if dtype not in DTYPES:
            raise ModelError("convert.dtype", dtype=dtype, tensor=name)
        kind = np.dtype(DTYPES[dtype])
        array = np.fromfile(path, dtype=kind, count=(end - start) // kind.itemsize, offset=start)
        if array.size != math.prod(shape):
            raise ModelError("convert.unreadable", folder=str(path.parent), error=f"{name} is cut short")
        array = array.reshape(shape)
        if dtype == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array.astype(np.float16) if array.dtype.kind == "f" else array


# --- the spec --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Whisper:
    """What the conversion needs of a Transformers Whisper's config.json."""

    encoder_layers: int
    encoder_heads: int
    decoder_layers: int
    decoder_heads: int
    vocab_size: int
    mel_bins: int
    config: dict
    generation: dict

    @classmethod
    def read(cls, folder: Path) -> Whisper:
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ModelError("convert.no_config", folder=str(folder)) from None
        if config.get("model_type") != "whisper":
            raise ModelError("convert.not_whisper", kind=config.get("model_type") or "?")
        generation = {}
        if (folder / "generation_config.json").is_file():
            generation = json.loads((folder / "generation_config.json").read_text(encoding="utf-8"))
        return cls(
            config["encoder_layers"],
            config["encoder_attention_heads"],
            config["decoder_layers"],
            config["decoder_attention_heads"],
            config["vocab_size"],
            config.get("num_mel_bins", 80),
            config,
            generation,
        )


def _linear(spec, weights: Weights, prefix: str) -> None:
    spec.weight = weights[prefix + ".weight"]
    if prefix + ".bias" in weights:
        spec.bias = weights[prefix + ".bias"]


def _norm(spec, weights: Weights, prefix: str) -> None:
    spec.gamma = weights[prefix + ".weight"]
    spec.beta = weights[prefix + ".bias"]


def _fused(spec, weights: Weights, prefixes: list[str]) -> None:
    """Linear layers side by side in one (q, k, v): a layer without a bias (Whisper's k) gets zeros."""
    import numpy as np

    parts = [weights[p + ".weight"] for p in prefixes]
    spec.weight = np.concatenate(parts)
    spec.bias = np.concatenate(
        [
            weights[p + ".bias"] if p + ".bias" in weights else np.zeros(w.shape[0], dtype=w.dtype)
            for p, w in zip(prefixes, parts, strict=True)
        ]
    )


def _attention(spec, weights: Weights, prefix: str, self_attention: bool) -> None:
    q, k, v = (f"{prefix}.{x}_proj" for x in "qkv")
    if self_attention:
        _fused(spec.linear[0], weights, [q, k, v])
    else:
        _fused(spec.linear[0], weights, [q])
        _fused(spec.linear[1], weights, [k, v])
    _linear(spec.linear[-1], weights, prefix + ".out_proj")


def _layer(spec, weights: Weights, prefix: str, cross: bool) -> None:
    _attention(spec.self_attention, weights, prefix + ".self_attn", True)
    _norm(spec.self_attention.layer_norm, weights, prefix + ".self_attn_layer_norm")
    if cross:
        _attention(spec.attention, weights, prefix + ".encoder_attn", False)
        _norm(spec.attention.layer_norm, weights, prefix + ".encoder_attn_layer_norm")
    _linear(spec.ffn.linear_0, weights, prefix + ".fc1")
    _linear(spec.ffn.linear_1, weights, prefix + ".fc2")
    _norm(spec.ffn.layer_norm, weights, prefix + ".final_layer_norm")


def build_spec(model: Whisper, weights: Weights, tokens: list[str], on_step: Callable[[int, int], None]):
    """CTranslate2's WhisperSpec with the model's weights, config and vocabulary."""
    from ctranslate2.specs import whisper_spec

    spec = whisper_spec.WhisperSpec(
        model.encoder_layers, model.encoder_heads, model.decoder_layers, model.decoder_heads
    )
    total = model.encoder_layers + model.decoder_layers + 2
    enc, dec = spec.encoder, spec.decoder
    for name in ("conv1", "conv2"):
        _linear(getattr(enc, name), weights, f"model.encoder.{name}")
    enc.position_encodings.encodings = weights["model.encoder.embed_positions.weight"]
    _norm(enc.layer_norm, weights, "model.encoder.layer_norm")
    for i, layer in enumerate(enc.layer):
        _layer(layer, weights, f"model.encoder.layers.{i}", cross=False)
        on_step(i + 1, total)
    dec.embeddings.weight = weights["model.decoder.embed_tokens.weight"]
    dec.position_encodings.encodings = weights["model.decoder.embed_positions.weight"]
    _norm(dec.layer_norm, weights, "model.decoder.layer_norm")
    for i, layer in enumerate(dec.layer):
        _layer(layer, weights, f"model.decoder.layers.{i}", cross=True)
        on_step(model.encoder_layers + i + 1, total)
    # proj_out is tied to the token embedding in every Whisper; saved, it is the same matrix.
    dec.projection.weight = (
        weights["proj_out.weight"] if "proj_out.weight" in weights else dec.embeddings.weight
    )

    _configure(spec.config, model, tokens)
    spec.register_vocabulary(tokens)
    return spec


def _configure(config, model: Whisper, tokens: list[str]) -> None:
    import itertools

    gen, base = model.generation, model.config
    config.suppress_ids = gen.get("suppress_tokens", base.get("suppress_tokens")) or []
    config.suppress_ids_begin = gen.get("begin_suppress_tokens", base.get("begin_suppress_tokens")) or []
    heads = gen.get("alignment_heads")
    if not heads:  # Whisper's advice for a model without them: every head of the later half
        heads = list(
            itertools.product(
                range(model.decoder_layers // 2, model.decoder_layers), range(model.decoder_heads)
            )
        )
    config.alignment_heads = [list(h) for h in heads]
    if gen.get("lang_to_id"):
        config.lang_ids = sorted(gen["lang_to_id"].values())
    else:
        config.lang_ids = list(range(tokens.index(tokenizer.SOT) + 1, tokens.index(tokenizer.TRANSLATE)))


# --- converting ------------------------------------------------------------------------------


def check(folder: Path) -> Whisper:
    """What a conversion needs is there: a Whisper config, weights, a tokenizer; else one sentence."""
    model = Whisper.read(folder)
    if not convertible(folder):
        raise ModelError("convert.no_safetensors", folder=str(folder))
    if not tokenizer.available(p.name for p in folder.iterdir()):
        raise ModelError("convert.no_tokenizer", folder=str(folder))
    return model


def convert(
    source: Path, target: Path, about: dict, on_step: Callable[[int, int], None] = lambda *_: None
) -> Path:
    """Convert the Transformers model in `source` into the CTranslate2 folder `target`, atomically.

    `about` goes into source.json (repo, revision, quantization). A partial folder of an
    earlier, interrupted conversion is removed first; `target` appears only when whole.
    """
    model = check(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(target.name + PARTIAL_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    partial = target.with_name(target.name + PARTIAL_PREFIX + str(os.getpid()))
    try:
        tokens = tokenizer.tokenizer_json(source)
        spec = build_spec(model, Weights(source), tokenizer.vocabulary(tokens, model.vocab_size), on_step)
        spec.validate()
        total = model.encoder_layers + model.decoder_layers + 2
        spec.optimize(quantization=QUANTIZATION)
        on_step(total - 1, total)
        partial.mkdir()
        spec.save(str(partial))
        (partial / "tokenizer.json").write_text(tokens, encoding="utf-8")
        features = tokenizer.preprocessor(source, model.mel_bins)
        (partial / "preprocessor_config.json").write_text(features, encoding="utf-8")
        (partial / SOURCE_FILE).write_text(json.dumps({**about, "format": FORMAT_TRANSFORMERS}, indent=2))
        if target.exists():  # another process converted it meanwhile
            shutil.rmtree(partial)
        else:
            os.replace(partial, target)
        on_step(total, total)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        if error.errno == errno.ENOSPC:
            raise ModelError("convert.disk_full", folder=str(target.parent)) from None
        raise ModelError("convert.failed", error=str(error)) from None
    except (KeyError, ValueError) as error:  # a tensor missing or of the wrong shape
        shutil.rmtree(partial, ignore_errors=True)
        raise ModelError("convert.unreadable", folder=str(source), error=str(error)) from None
    return target


def source_of(folder: Path) -> dict | None:
    """What a converted folder says of its source (repo, revision, format); None for others."""
    try:
        return json.loads((Path(folder) / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
