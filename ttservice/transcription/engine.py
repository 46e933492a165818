"""Speech-to-text engines behind one small interface: faster-whisper and whisper.cpp.

The worker only needs `Engine.prepare(audio, options)` (before the model loads,
in any thread) and `Engine.transcribe(prepared, options)` yielding segments, so
the supervision, the store, exports, the API and agents do not know which engine
ran. `choose` picks one for a job; `engine_class` gives its class.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..exceptions import RequestError
from ..jobs import Segment, TranscribeOptions
from . import AUTO, ENGINES, FASTER_WHISPER, WHISPER_CPP
from .media import SAMPLE_RATE

if TYPE_CHECKING:  # NumPy's import is 0.05 s of every command that checks a request: not here
    import numpy as np

    from .clips import ClipStream
    from .samples import GrowingAudio
    from .vad import SpeechStream

FRAMES_PER_SECOND = 100  # Whisper's mel frames; a segment's `seek` counts them
N_FRAMES = 3000  # one 30-s window of mel frames: what language detection hears
PROMPT_RESET_TEMPERATURE = 0.5  # faster-whisper's prompt_reset_on_temperature
SAMPLING_SEED = 0
# Whisper's own tests of a window it decoded badly (a loop repeating a word, or text it doubts):
COMPRESSION_LIMIT = 2.4  # gzip ratio of the text above which it is a loop
LOGPROB_LIMIT = -1.0  # average log-probability of its tokens below which it is doubtful
# Text an English-only model doubts: a clip (or window) below this average log-probability, or
# a loop. On real English (five recordings) the lowest clip was -0.32; on German, -0.47.
DOUBTFUL_LOGPROB = -0.40
# Speech an English-only model doubts, as a share of what it decoded, above which a job says the
# audio may not be English: 1.0 for German and for espeak's Thai, 0.5 for half German, at most
# 0.29 on real English (sequential decoding's short windows doubt more than batched clips).
DOUBTFUL_SHARE = 0.4
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # faster-whisper's (and Whisper's) default


def temperatures(first: float) -> list[float]:
    """The fallback ladder from `first` up: a window decoded badly is tried again hotter, as
    OpenAI's API does from the temperature it is given."""
    return [first, *(t for t in FALLBACK_TEMPERATURES if t > first)]


@dataclass(frozen=True)
class TranscriptionInfo:
    language: str | None
    duration: float
    language_probability: float | None = None  # when the language was detected, not given


def _detected(info: Any, options: TranscribeOptions, multilingual: bool) -> float | None:
    """The probability of a detected language; None when it was given, or the model knows only
    English (it detects nothing: faster-whisper says 1.0 all the same)."""
    if options.language or not multilingual:
        return None
    return getattr(info, "language_probability", None)


@dataclass
class Doubt:
    """How much of what was decoded the model itself doubts (seconds of speech)."""

    heard: float = 0.0
    doubted: float = 0.0

    def add(self, seconds: float, s: Any) -> None:
        self.heard += seconds
        if s.avg_logprob < DOUBTFUL_LOGPROB or s.compression_ratio > COMPRESSION_LIMIT:
            self.doubted += seconds

    @property
    def share(self) -> float:
        return self.doubted / self.heard if self.heard else 0.0

    @property
    def much(self) -> bool:
        return self.share >= DOUBTFUL_SHARE


@dataclass(frozen=True)
class ResumePoint:
    """Where an interrupted run continues so that it decodes as the uninterrupted run would have.

    Whisper decodes 30-second windows, each primed with the tokens decoded before
    it. Resuming re-decodes the window of the last committed segment with the
    same prompt, so its output repeats what was committed exactly; segments that
    end by `after` are dropped, and everything later is new.
    """

    after: float  # end of the last committed segment (original timeline)
    window: float | None  # start of its decoding window (speech timeline); None: not recorded
    prompt: tuple[int, ...]  # tokens of every segment committed before that window

    @classmethod
    def from_segments(cls, segments: list[Segment]) -> ResumePoint | None:
        if not segments:
            return None
        last = segments[-1]
        if last.window is None or any(s.tokens is None for s in segments):
            return cls(after=last.end, window=None, prompt=())  # saved by an older version
        earlier = [t for s in segments if s.window < last.window for t in s.tokens]
        return cls(after=last.end, window=last.window, prompt=tuple(earlier))


@dataclass(frozen=True)
class Prepared:
    """A file made ready for the model while it loads: its speech being found, or its clips cut.

    Sequential mode reads `speech` (found a block at a time by its own thread, as
    the audio is decoded) and `shift` (seconds cut from the start); batched mode
    reads `clips`. One serves one transcription: the speech stops being found when
    that transcription ends.
    """

    audio: GrowingAudio
    declared: float | None = None  # the media's own figure, until all of it is decoded
    speech: SpeechStream | None = None
    shift: float = 0.0
    clips: ClipStream | None = None

    @property
    def duration(self) -> float:
        """Seconds of audio: as decoded once decoding has ended, as declared before."""
        if self.audio.done or self.declared is None:
            return self.audio.length / SAMPLE_RATE
        return self.declared


class Engine(Protocol):
    name: str
    multilingual: bool
    doubt: Doubt

    @staticmethod
    def prepare(
        audio: np.ndarray | GrowingAudio,
        options: TranscribeOptions,
        resume: ResumePoint | None = None,
        declared: float | None = None,
    ) -> Prepared: ...

    def transcribe(
        self,
        audio: Prepared | np.ndarray,
        options: TranscribeOptions,
        resume: ResumePoint | None = None,
        live: bool = True,
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Segments as they are decoded. `live`: someone may read them as they come (History,
        the jobs API), so the first text comes as early as it can; False where only the whole
        transcript is read (`ttservice transcribe`), which then comes as early as it can."""

    def serves(self, options: TranscribeOptions) -> bool: ...

    def unload(self) -> None: ...

    def describe(self) -> str: ...


def apple_silicon() -> bool:
    """A Mac with Apple's own chip, where whisper.cpp runs on the GPU (Metal) and CTranslate2 cannot."""
    import platform

    return sys.platform == "darwin" and platform.machine() == "arm64"


def choose(requested: str, ggml_model: bool = False) -> str:
    """The engine a job runs on: the one asked for, or for `auto` whisper.cpp on Apple Silicon (and
    for a ggml file, which only it reads), faster-whisper elsewhere (CUDA when there is one)."""
    requested = (requested or AUTO).strip().lower()
    if requested not in ENGINES:
        raise RequestError("engine.unknown", engine=requested, engines=", ".join(ENGINES))
    if requested != AUTO:
        return requested
    return WHISPER_CPP if ggml_model or apple_silicon() else FASTER_WHISPER


def for_job(options: TranscribeOptions) -> str:
    """The engine a job with these options runs on here: its engine's choice for its model."""
    from ..models import catalog

    return choose(options.engine, catalog.resolve(options.model).ggml)


def whispercpp_missing() -> str | None:
    """Why whisper.cpp cannot run here (its bindings do not import); None when it can."""
    try:
        import _pywhispercpp  # noqa: F401
        import pywhispercpp.model  # noqa: F401
    except Exception as error:  # ImportError, or a library the wheel needs that this system lacks
        return str(error) or type(error).__name__
    return None


def checked(requested: str, model: str, ggml_model: bool) -> str:
    """The engine a request names (`auto` stays `auto`: it is decided where the job runs); one
    sentence if it is unknown, cannot read the model, or is not installed here."""
    requested = (requested or AUTO).strip().lower()
    name = choose(requested, ggml_model)
    if ggml_model and name == FASTER_WHISPER:
        raise RequestError("engine.ggml_only", model=model)
    if name == WHISPER_CPP and (error := whispercpp_missing()):
        raise RequestError("engine.not_installed", error=error)
    return requested


def ggml_instead(options: TranscribeOptions, ref: Any) -> str | None:
    """For a job whisper.cpp runs here, the ggml model of whisper.cpp's repo that a size name not
    downloaded yet stands for (`base`: `ggml-base`): one download of the file whisper.cpp reads."""
    from ..models import catalog

    if ref.kind != "hub" or ref.ggml or choose(options.engine) != WHISPER_CPP:
        return None
    return catalog.ggml_name(ref.name)


def where_jobs_run(settings: Any) -> str:
    """The engine jobs run on here by default and where: "faster-whisper on the CPU (int8)",
    "whisper.cpp on Metal (8 CPU threads)"; or the sentence saying why they cannot."""
    import os

    from ..exceptions import TTServiceError
    from . import device

    try:
        name = choose(settings.engine)
        if name == WHISPER_CPP:
            if error := whispercpp_missing():
                raise RequestError("engine.not_installed", error=error)
            from .whispercpp import where_it_runs

            return f"{where_it_runs()} ({settings.cpu_threads or os.cpu_count() or 1} CPU threads)"
        where = device.resolve(settings.device, settings.device_index, settings.compute_type)
    except TTServiceError as error:
        return str(error)
    return f"faster-whisper on {where.describe()}"


def engine_class(name: str) -> type:
    """The class of the engine `name` (as `choose` gives it)."""
    if name == WHISPER_CPP:
        from .whispercpp import WhisperCppEngine

        return WhisperCppEngine
    from .fasterwhisper import FasterWhisperEngine

    return FasterWhisperEngine
