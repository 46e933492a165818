"""whisper.cpp (through pywhispercpp): the engine on Apple Silicon, where it runs on the GPU (Metal).

CTranslate2 has no Metal backend, so on a Mac faster-whisper keeps the CPU (and
the whole machine) busy; whisper.cpp's macOS arm64 wheels run on the GPU. It
decodes the file clip by clip (the clips faster-whisper's batched pipeline cuts:
VAD speech joined up to 30 s, see `clips`), each on its own with timestamps, so
that a resumed job skips the clips done and re-decodes the one it stopped in,
dropping what was committed, as batched decoding does. Greedy, its words are an
uninterrupted run's. With beam search whisper.cpp's text for a clip also depends on
the clips its context decoded before (the same clip decoded alone, or after others,
came out differently), so from the clip it stopped in a resumed job's words may
differ from an uninterrupted run's; nothing is lost or repeated.

It loads a ggml file: one given as `--model`, or the one written once from the
CTranslate2 model the name means (`models.ggml`), so every model TTService can
have runs on either engine.
"""

from __future__ import annotations

import functools
import logging
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import ModelError
from ..jobs import Segment, TranscribeOptions
from ..models import catalog, ggml, requests
from .clips import CLIP_SECONDS, Clip, ClipStream, phrases
from .engine import (
    COMPRESSION_LIMIT,
    FALLBACK_TEMPERATURES,
    LOGPROB_LIMIT,
    WHISPER_CPP,
    Doubt,
    Prepared,
    ResumePoint,
    TranscriptionInfo,
)
from .samples import GrowingAudio
from .vad import SAMPLE_RATE

FALLBACK_STEP = FALLBACK_TEMPERATURES[1]  # whisper.cpp's fallback climbs as Whisper's does: 0.2 at a time
CENTISECONDS = 100  # whisper.cpp's times count hundredths of a second
GPU_BACKENDS = ("METAL", "MTL", "CUDA", "VULKAN")  # sections of whisper.cpp's system information

WARN_LEVEL = 3  # ggml's log levels: 1 debug, 2 info, 3 warn, 4 error

log = logging.getLogger("ttservice.whispercpp")
# pywhispercpp says "Transcribing ..." at every call: once per clip in the job's log
logging.getLogger("pywhispercpp").setLevel(logging.WARNING)


def _whispercpp_log(level: int, text: str, *_: object) -> None:
    """whisper.cpp's own messages: its warnings and errors into the job's log, the rest (each
    tensor and buffer as the model loads) kept out of it."""
    if level >= WARN_LEVEL and text.strip():
        log.warning("whisper.cpp: %s", text.strip())


def system_info() -> str:
    """whisper.cpp's own line: its backends and the CPU features it uses."""
    from pywhispercpp.model import Model

    return str(Model.system_info()).strip(" |\n")


def backend(info: str | None = None) -> str:
    """The GPU backend whisper.cpp was built with ("Metal" on a Mac), else "CPU"."""
    info = system_info() if info is None else info
    for section in re.findall(r"(\w+)\s*:", info):
        if section.upper() in GPU_BACKENDS:
            return "Metal" if section.upper() in ("METAL", "MTL") else section.upper()
    return "CPU"


def where_it_runs() -> str:
    """For the job's log and `--version`: "whisper.cpp on Metal", "whisper.cpp on the CPU"."""
    where = backend()
    return f"whisper.cpp on {'the CPU' if where == 'CPU' else where}"


@functools.cache
def _route_log(pw) -> None:
    """whisper.cpp's messages through `_whispercpp_log` (once), until Python starts to shut down:
    a message then (the model freed at exit) must not call into Python."""
    import atexit

    pw.whisper_log_set(_whispercpp_log)
    atexit.register(pw.whisper_log_set, None)


def model_file(name: str, on_step=lambda *_: None) -> Path:
    """The ggml file a model name means: the file given, or the one written from its CTranslate2
    model (once; `on_step` follows the writing)."""
    found = requests.model_folder(name)  # a ggml file, downloaded or given; else a CTranslate2 folder
    return found if catalog.resolve(name).ggml else ggml.ggml_file(found, on_step)


def _key(options: TranscribeOptions) -> tuple:
    return (options.model, options.cpu_threads, options.beam_size)  # set as the model loads


@dataclass
class _Decoded:
    """A segment as whisper.cpp decoded it: its times within the clip, its text tokens and their bytes."""

    text: str
    start: float
    end: float
    tokens: list


@dataclass
class _Scores:
    """What Doubt reads of a decoded stretch (faster-whisper's segments have both)."""

    avg_logprob: float
    compression_ratio: float


class WhisperCppEngine:
    """whisper.cpp on Metal (Apple Silicon) or the CPU, a clip at a time."""

    name = WHISPER_CPP

    def __init__(self, options: TranscribeOptions, on_convert=lambda *_: None) -> None:
        import _pywhispercpp as pw
        from pywhispercpp.model import Model

        self._pw = pw
        _route_log(pw)
        path = model_file(options.model, on_convert)
        beam = options.beam_size > 1
        try:
            self.model = Model(
                str(path),
                redirect_whispercpp_logs_to=False,  # its messages go through _whispercpp_log
                params_sampling_strategy=1 if beam else 0,
                n_threads=max(1, options.cpu_threads),
                print_progress=False,
                print_realtime=False,
                print_timestamps=False,
                **({"beam_search": {"beam_size": options.beam_size, "patience": -1.0}} if beam else {}),
            )
        except Exception as error:  # pywhispercpp raises RuntimeError, or bare Exception, on a bad file
            raise ModelError("model.not_loaded", model=options.model, error=str(error)) from None
        if self.model._ctx is None:
            raise ModelError(
                "model.not_loaded", model=options.model, error=f"whisper.cpp could not read {path}"
            )
        self.path = path
        self.threads = max(1, options.cpu_threads)
        self.multilingual = pw.whisper_is_multilingual(self.model._ctx) != 0
        self._loaded = _key(options)
        self.doubt = Doubt()

    def describe(self) -> str:
        return where_it_runs()

    def serves(self, options: TranscribeOptions) -> bool:
        return self._loaded == _key(options)

    def unload(self) -> None:
        self.model = None

    @staticmethod
    def prepare(
        audio: np.ndarray | GrowingAudio,
        options: TranscribeOptions,
        resume: ResumePoint | None = None,
        declared: float | None = None,
    ) -> Prepared:
        """Start cutting the clips; needs no model, so it runs beside the model's loading."""
        source = audio if isinstance(audio, GrowingAudio) else GrowingAudio.of(audio)
        return Prepared(source, declared, clips=ClipStream(source, options.vad, resume))

    def transcribe(
        self,
        audio: Prepared | np.ndarray,
        options: TranscribeOptions,
        resume: ResumePoint | None = None,
        live: bool = True,
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Segments clip by clip, with the file's timestamps; after `resume` if given. Each clip's
        text comes as soon as it is decoded, `live` or not: whisper.cpp decodes one at a time."""
        requests.check_loaded(options, self.multilingual)
        self.doubt = Doubt()
        prepared = audio if isinstance(audio, Prepared) else self.prepare(audio, options, resume)
        after = resume.after if resume is not None else -1.0
        clips = prepared.clips
        if clips is None or clips.empty():
            return iter(()), TranscriptionInfo(options.language, prepared.duration)
        language, probability = self._language(clips, options)

        def generate() -> Iterator[Segment]:
            for clip in clips:
                for segment in self._clip(clip, language, options):
                    if segment.end > after + 0.01:  # else: re-decoded, and already committed
                        yield segment

        return generate(), TranscriptionInfo(language, prepared.duration, probability)

    def _language(self, clips: ClipStream, options: TranscribeOptions) -> tuple[str, float | None]:
        """The language given, or detected on the first 30 s of speech (the clips end to end)."""
        if options.language:
            return options.language, None
        if not self.multilingual:
            return "en", None
        heard, length = [], 0
        for clip in clips:
            heard.append(clip.audio)
            length += len(clip.audio)
            if length >= CLIP_SECONDS * SAMPLE_RATE:
                break
        speech = np.concatenate(heard)[: int(CLIP_SECONDS * SAMPLE_RATE)]
        (language, probability), _ = self.model.auto_detect_language(
            speech, offset_ms=0, n_threads=self.threads
        )
        return language, float(probability)

    def _clip(self, clip: Clip, language: str, options: TranscribeOptions) -> Iterator[Segment]:
        """One clip decoded on its own: whisper.cpp's segments (or, with words, their phrases) on the
        file's timeline.

        It is decoded first without whisper.cpp's fallback, so that what the model doubts is
        measured on its plain (greedy) decoding, as faster-whisper measures it; a clip that fails
        Whisper's own tests (a loop, or text it doubts) is decoded again with the fallback,
        hotter at each failure.
        """
        decoded = self._decode(clip, language, options, fallback=False)
        tokens = [d for segment in decoded for d, _ in segment.tokens]
        scores = _Scores(
            sum(d.plog for d in tokens) / max(1, len(tokens)), _compression(" ".join(s.text for s in decoded))
        )
        if decoded:
            self.doubt.add(len(clip.audio) / SAMPLE_RATE, scores)
        if scores.avg_logprob < LOGPROB_LIMIT or scores.compression_ratio > COMPRESSION_LIMIT:
            decoded = self._decode(clip, language, options, fallback=True)
        for segment in decoded:
            words = _words(segment.tokens, clip)
            if options.word_timestamps and words:
                for run in phrases(words):
                    text = "".join(w["word"] for w in run).strip()
                    yield Segment(run[0]["start"], run[-1]["end"], text, run)
            else:
                start, end = clip.original_time(segment.start), clip.original_time(segment.end)
                yield Segment(start, end, segment.text, words or None)

    def _decode(
        self, clip: Clip, language: str, options: TranscribeOptions, fallback: bool
    ) -> list[_Decoded]:
        pw, ctx = self._pw, self.model._ctx
        self.model.transcribe(
            clip.audio.astype(np.float32, copy=False),
            language=language,
            translate=options.task == "translate",
            initial_prompt=options.prompt or "",  # every setting each time: they persist between calls
            temperature=options.temperature,
            temperature_inc=FALLBACK_STEP if fallback else 0.0,
            token_timestamps=True,
            no_context=True,  # each clip on its own: a resumed job decodes it as this run did
        )
        eot = pw.whisper_token_eot(ctx)
        found = []
        for i in range(pw.whisper_full_n_segments(ctx)):
            text = pw.whisper_full_get_segment_text(ctx, i).decode("utf-8", errors="replace").strip()
            if not text:
                continue
            data = [
                pw.whisper_full_get_token_data(ctx, i, j) for j in range(pw.whisper_full_n_tokens(ctx, i))
            ]
            # bytes: a Thai letter's UTF-8 can be split between two tokens
            tokens = [(d, pw.whisper_token_to_bytes(ctx, d.id)) for d in data if d.id < eot]
            start = pw.whisper_full_get_segment_t0(ctx, i) / CENTISECONDS
            end = pw.whisper_full_get_segment_t1(ctx, i) / CENTISECONDS
            found.append(_Decoded(text, start, end, tokens))
        return found


def _words(tokens: list, clip: Clip) -> list[dict]:
    """The segment's tokens joined into words (a word starts at a token that starts with a space),
    each with its time on the file's timeline and the product of its tokens' probabilities."""
    words: list[dict] = []
    raw = b""
    for data, piece in tokens:
        if words and not piece.startswith(b" ") and raw:
            raw += piece
            words[-1].update(end=data.t1, probability=words[-1]["probability"] * data.p)
        else:
            raw = piece
            words.append({"start": data.t0, "end": data.t1, "probability": data.p, "raw": piece})
        words[-1]["raw"] = raw
    result = []
    for w in words:
        word = w["raw"].decode("utf-8", errors="replace")
        if not word.strip():
            continue
        start, end = clip.word_times(*(max(0, t) / CENTISECONDS for t in (w["start"], w["end"])))
        result.append({"start": start, "end": max(start, end), "word": word, "probability": w["probability"]})
    return result


def _compression(text: str) -> float:
    """Whisper's loop test: how much gzip shrinks the text."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0
