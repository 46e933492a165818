"""Any model TTService can load, written once as a ggml file for whisper.cpp, with NumPy alone.

whisper.cpp reads one file: a header of hyperparameters, the mel filters, the
byte-level vocabulary, then every tensor under OpenAI's names (whisper.cpp's
`models/convert-pt-to-ggml.py` writes that layout). TTService's models are
CTranslate2 folders (bundled, downloaded, or converted from Transformers by
`convert`), so this reads CTranslate2's `model.bin` (the layout of its
`specs/model_spec.py`: a header, then each variable's name, shape, dtype and
bytes) through a memory map and writes each tensor as it goes: float16 for
matrices, float32 for vectors and position tables, as whisper.cpp's converter
does. CTranslate2 fuses attention's projections; they are cut apart again.

The file is written beside a temporary name and renamed into place whole, once
per model file: inside the repo's own cache folder for a downloaded model
(removed with it), else in the cache's `ttservice-ggml` folder.
"""

from __future__ import annotations

import errno
import hashlib
import json
import mmap
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..exceptions import ModelError

GGML_MAGIC = 0x67676D6C  # "ggml"
GGML_SUFFIX = ".bin"
PARTIAL_SUFFIX = ".partial"
CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # CTranslate2's type ids
N_FFT = 400  # Whisper's window: its mel filters have N_FFT // 2 + 1 columns
SAMPLE_RATE = 16000
FIRST_SPECIAL = "<|endoftext|>"  # whisper.cpp's vocabulary holds the byte-level tokens up to this one
# Kept as float32 by whisper.cpp's converter, whatever the rest is.
FLOAT32_NAMES = ("encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding",
                 "decoder.positional_embedding")  # fmt: skip


def is_ggml(path: Path) -> bool:
    """Whether `path` is a ggml model file (its first four bytes say so)."""
    try:
        with open(path, "rb") as f:
            return struct.unpack("<I", f.read(4))[0] == GGML_MAGIC
    except (OSError, struct.error):
        return False


def vocabulary_size(path: Path) -> int | None:
    """The vocabulary size a ggml file's header gives (its first hyperparameter); None if unreadable."""
    try:
        with open(path, "rb") as f:
            magic, size = struct.unpack("<Ii", f.read(8))
    except (OSError, struct.error):
        return None
    return size if magic == GGML_MAGIC else None


# --- reading CTranslate2 ---------------------------------------------------------------------


class CT2Model:
    """The variables of a CTranslate2 model.bin, read lazily from a memory map."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.spec, self.index, self.aliases = self._read_header()

    def _read_header(self) -> tuple[str, dict[str, tuple[tuple[int, ...], str, int]], dict[str, str]]:
        data, pos = self._map, 0

        def take(fmt: str):
            nonlocal pos
            value = struct.unpack_from("<" + fmt, data, pos)[0]
            pos += struct.calcsize("<" + fmt)
            return value

        def text() -> str:
            nonlocal pos
            length = take("H")
            value = bytes(data[pos : pos + length - 1]).decode("utf-8")
            pos += length
            return value

        take("I")  # binary version
        spec = text()
        take("I")  # the spec's revision
        index = {}
        for _ in range(take("I")):
            name = text()
            shape = tuple(take("I") for _ in range(take("B")))
            dtype = CT2_DTYPES[take("B")]
            size = take("I")
            index[name] = (shape, dtype, pos)
            pos += size
        aliases = {text(): text() for _ in range(take("I"))}
        return spec, index, aliases

    def __contains__(self, name: str) -> bool:
        name = self.aliases.get(name, name)
        return name in self.index

    def __getitem__(self, name: str) -> np.ndarray:
        """The variable as float32 (or its integer value); int8 weights are scaled back."""
        name = self.aliases.get(name, name)
        shape, dtype, offset = self.index[name]
        if dtype == "bfloat16":
            raw = np.frombuffer(self._map, "<u2", int(np.prod(shape)), offset).astype(np.uint32)
            return (raw << 16).view(np.float32).reshape(shape)
        array = np.frombuffer(self._map, np.dtype(dtype).newbyteorder("<"), int(np.prod(shape)), offset)
        array = array.reshape(shape)
        if dtype == "int8" and name.endswith("weight") and name + "_scale" in self:
            scale = self[name + "_scale"].astype(np.float32)
            return array.astype(np.float32) / scale.reshape(-1, *([1] * (array.ndim - 1)))
        return array

    def layers(self, part: str) -> int:
        return sum(
            1 for n in self.index if n.startswith(f"{part}/layer_") and n.endswith("ffn/linear_0/bias")
        )

    def close(self) -> None:
        try:
            self._map.close()
        except BufferError:  # an array still reads it (an error's traceback holds one): freed with it
            pass


# --- the ggml layout -------------------------------------------------------------------------


def _linear(model: CT2Model, source: str, target: str) -> Iterator[tuple[str, np.ndarray]]:
    yield target + ".weight", model[source + "/weight"]
    if source + "/bias" in model:
        yield target + ".bias", model[source + "/bias"]


def _norm(model: CT2Model, source: str, target: str) -> Iterator[tuple[str, np.ndarray]]:
    yield target + ".weight", model[source + "/gamma"]
    yield target + ".bias", model[source + "/beta"]


def _split(model: CT2Model, source: str, targets: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    """A fused projection cut into its parts; the key's bias (zeros in CTranslate2) is left out,
    as Whisper has none."""
    weights = np.split(model[source + "/weight"], len(targets))
    biases = np.split(model[source + "/bias"], len(targets))
    for target, weight, bias in zip(targets, weights, biases, strict=True):
        yield target + ".weight", weight
        if not target.endswith(".key"):
            yield target + ".bias", bias


def _block(model: CT2Model, source: str, target: str, cross: bool) -> Iterator[tuple[str, np.ndarray]]:
    attn = f"{source}/self_attention"
    yield from _norm(model, attn + "/layer_norm", target + ".attn_ln")
    yield from _split(model, attn + "/linear_0", [f"{target}.attn.{p}" for p in ("query", "key", "value")])
    yield from _linear(model, attn + "/linear_1", target + ".attn.out")
    if cross:
        cross_attn = f"{source}/attention"
        yield from _norm(model, cross_attn + "/layer_norm", target + ".cross_attn_ln")
        yield from _linear(model, cross_attn + "/linear_0", target + ".cross_attn.query")
        yield from _split(
            model, cross_attn + "/linear_1", [f"{target}.cross_attn.{p}" for p in ("key", "value")]
        )
        yield from _linear(model, cross_attn + "/linear_2", target + ".cross_attn.out")
    yield from _norm(model, source + "/ffn/layer_norm", target + ".mlp_ln")
    yield from _linear(model, source + "/ffn/linear_0", target + ".mlp.0")
    yield from _linear(model, source + "/ffn/linear_1", target + ".mlp.2")


def tensors(model: CT2Model) -> Iterator[tuple[str, np.ndarray]]:
    """Every tensor whisper.cpp loads, under its name, in the order its converter writes them."""
    for conv in ("conv1", "conv2"):
        yield from _linear(model, f"encoder/{conv}", f"encoder.{conv}")
    yield "encoder.positional_embedding", model["encoder/position_encodings/encodings"]
    for i in range(model.layers("encoder")):
        yield from _block(model, f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
    yield from _norm(model, "encoder/layer_norm", "encoder.ln_post")
    yield "decoder.positional_embedding", model["decoder/position_encodings/encodings"]
    yield "decoder.token_embedding.weight", model["decoder/embeddings/weight"]
    for i in range(model.layers("decoder")):
        yield from _block(model, f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
    yield from _norm(model, "decoder/layer_norm", "decoder.ln")


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-ins for bytes, reversed: how a byte-level token becomes its bytes."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def vocabulary(folder: Path) -> list[str]:
    """The CTranslate2 folder's tokens by id (vocabulary.json, or vocabulary.txt a line each)."""
    path = folder / "vocabulary.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    path = folder / "vocabulary.txt"
    if path.is_file():
        lines = path.read_text(encoding="utf-8").split("\n")
        return lines[:-1] if lines and not lines[-1] else lines
    raise ModelError("ggml.no_vocabulary", folder=str(folder))


def token_bytes(tokens: list[str]) -> list[bytes]:
    """The byte-level tokens whisper.cpp's file holds (up to and with <|endoftext|>), as bytes."""
    decoder = _byte_decoder()
    end = tokens.index(FIRST_SPECIAL) if FIRST_SPECIAL in tokens else len(tokens) - 1
    return [bytes(decoder[c] for c in token) for token in tokens[: end + 1]]


def mel_filters(n_mels: int) -> np.ndarray:
    """Whisper's mel filterbank (librosa's Slaney filters) as faster-whisper computes it."""
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor.get_mel_filters(SAMPLE_RATE, N_FFT, n_mels).astype(np.float32)


def header(model: CT2Model) -> list[int]:
    """whisper.cpp's hyperparameters, in its order; the last (1) says matrices are float16."""
    n_vocab, n_text_state = model.index["decoder/embeddings/weight"][0]
    n_audio_ctx, n_audio_state = model.index["encoder/position_encodings/encodings"][0]
    n_text_ctx = model.index["decoder/position_encodings/encodings"][0][0]
    n_mels = model.index["encoder/conv1/weight"][0][1]
    audio = [n_audio_ctx, n_audio_state, int(model["encoder/num_heads"]), model.layers("encoder")]
    text = [n_text_ctx, n_text_state, int(model["decoder/num_heads"]), model.layers("decoder")]
    return [n_vocab, *audio, *text, n_mels, 1]


def write(source: Path, target: Path, on_step: Callable[[int, int], None] = lambda *_: None) -> None:
    """Write the CTranslate2 model in `source` as the ggml file `target`."""
    model = CT2Model(source / "model.bin")
    try:
        if model.spec != "WhisperSpec":
            raise ModelError("ggml.not_whisper", folder=str(source), spec=model.spec)
        hparams = header(model)
        tokens = token_bytes(vocabulary(source))
        filters = mel_filters(hparams[9])
        total = model.layers("encoder") + model.layers("decoder")
        done = 0
        on_step(done, total)
        with open(target, "wb") as out:
            out.write(struct.pack("<I", GGML_MAGIC))
            out.write(struct.pack(f"<{len(hparams)}i", *hparams))
            out.write(struct.pack("<ii", *filters.shape))
            out.write(filters.astype("<f4").tobytes())
            out.write(struct.pack("<i", len(tokens)))
            for token in tokens:
                out.write(struct.pack("<i", len(token)) + token)
            for name, data in tensors(model):
                if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                    data = data.reshape(-1, 1)
                half = data.ndim > 1 and name not in FLOAT32_NAMES
                data = np.ascontiguousarray(data, dtype="<f2" if half else "<f4")
                encoded = name.encode("utf-8")
                out.write(struct.pack("<iii", data.ndim, len(encoded), 1 if half else 0))
                out.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
                out.write(encoded)
                out.write(data.tobytes())
                if name.endswith(".mlp.2.bias"):
                    done += 1
                    on_step(done, total)
    finally:
        model.close()


# --- where it lives --------------------------------------------------------------------------


def target_for(folder: Path) -> Path:
    """Where the ggml file of the CTranslate2 model in `folder` lives: one per model.bin (its real
    path, size and time name it), inside the repo's cache folder when it was downloaded."""
    from . import hub

    real = (Path(folder) / "model.bin").resolve()
    stat = real.stat()
    key = hashlib.sha256(f"{real}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cache, where = hub.cache_dir().resolve(), Path(folder).resolve()
    if where.is_relative_to(cache) and where != cache:
        repo = cache / where.relative_to(cache).parts[0]
        if repo.name.startswith("models--"):
            return repo / "ggml" / f"{key}-f16{GGML_SUFFIX}"
    return cache / "ttservice-ggml" / f"{Path(folder).name}-{key}-f16{GGML_SUFFIX}"


def _writing(partial: Path) -> bool:
    """Whether the process whose id ends the partial file's name is alive (and so still writing)."""
    import psutil

    pid = partial.name.rsplit("-", 1)[-1]
    return pid.isdigit() and int(pid) != os.getpid() and psutil.pid_exists(int(pid))


def ggml_file(folder: Path, on_step: Callable[[int, int], None] = lambda *_: None) -> Path:
    """The ggml file of the CTranslate2 model in `folder`, written now if it is not yet."""
    target = target_for(folder)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(target.name + PARTIAL_SUFFIX + "-*"):
        if not _writing(stale):  # a killed writer's
            stale.unlink(missing_ok=True)
    partial = target.with_name(f"{target.name}{PARTIAL_SUFFIX}-{os.getpid()}")
    try:
        write(Path(folder), partial, on_step)
        os.replace(partial, target)  # a second writer's identical file replaces the first: no harm
    except OSError as error:
        partial.unlink(missing_ok=True)
        if error.errno == errno.ENOSPC:
            raise ModelError("ggml.disk_full", folder=str(target.parent)) from None
        raise ModelError("ggml.failed", error=str(error)) from None
    except (KeyError, ValueError, IndexError) as error:  # a variable missing, or of the wrong shape
        partial.unlink(missing_ok=True)
        raise ModelError("ggml.unreadable", folder=str(folder), error=str(error)) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target
