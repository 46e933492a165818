"""Speech-to-text engines behind one small interface; faster-whisper first.

The worker only needs `Engine.prepare(audio, options)` (before the model loads,
in any thread) and `Engine.transcribe(prepared, options)` yielding segments, so
another engine (or a remote one) can come without touching supervision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Protocol

import numpy as np

from ..exceptions import ModelError
from ..jobs import Segment, TranscribeOptions
from ..models import requests
from . import device
from .features import GivenFeatures, TailReached, WindowFeatures
from .samples import GrowingAudio
from .vad import SAMPLE_RATE, SpeechStream

FRAMES_PER_SECOND = 100  # Whisper's mel frames; a segment's `seek` counts them
CLIP_SECONDS = 30.0  # Whisper hears 30 s at a time
FIRST_CLIP_SECONDS = 10.0  # the first clip is short: fewer tokens to decode before the first text
PROMPT_RESET_TEMPERATURE = 0.5  # faster-whisper's prompt_reset_on_temperature
SAMPLING_SEED = 0
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


def _detected(info: Any, options: TranscribeOptions) -> float | None:
    return None if options.language else getattr(info, "language_probability", None)


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
    clips: list[Clip] | None = None

    @property
    def duration(self) -> float:
        """Seconds of audio: as decoded once decoding has ended, as declared before."""
        if self.audio.done or self.declared is None:
            return self.audio.length / SAMPLE_RATE
        return self.declared


class Engine(Protocol):
    @staticmethod
    def prepare(
        audio: np.ndarray | GrowingAudio,
        options: TranscribeOptions,
        resume: ResumePoint | None = None,
        declared: float | None = None,
    ) -> Prepared: ...

    def transcribe(
        self, audio: Prepared | np.ndarray, options: TranscribeOptions, resume: ResumePoint | None = None
    ) -> tuple[Iterator[Segment], TranscriptionInfo]: ...


def _model_key(options: TranscribeOptions) -> tuple:
    return (
        options.model,
        options.compute_type,
        options.cpu_threads,
        options.device,
        options.device_index,
    )


class FasterWhisperEngine:
    """faster-whisper on the CPU, in one of two modes (`TranscribeOptions.batch_size`):

    - sequential (0, the default: the best WER in bench item 8): one 30-s window
      after another over the speech (found as it goes, see SpeechStream), each
      primed with the text before it. Resuming re-decodes the last window with the
      same prompt (see ResumePoint). (Stopping the first call at a pause after 10 s
      gave a quicker first text but cost 5 WER points.)
    - batched (N > 0, faster, a few WER points worse in bench item 8):
      speech joined into clips of up to 30 s as faster-whisper's batched pipeline
      does, N clips decoded at a time, each on its own; the first batch is one
      short clip. Resuming skips the clips already done and re-decodes the one it
      stopped in, dropping what was committed: clips are independent.
    """

    def __init__(self, options: TranscribeOptions) -> None:
        import ctranslate2
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        # Whisper falls back to sampling (temperature > 0) on windows it decodes badly; a fixed
        # seed makes that the same on every run, so a resumed job re-decodes what it decoded.
        ctranslate2.set_random_seed(SAMPLING_SEED)
        folder = requests.model_folder(options.model)
        self.device = device.resolve(options.device, options.device_index, options.compute_type)
        try:
            self.model = WhisperModel(
                str(folder),
                device=self.device.kind,
                device_index=self.device.index,
                compute_type=self.device.compute_type,
                cpu_threads=options.cpu_threads,
            )
        except Exception as error:  # faster-whisper raises many kinds for a bad model
            raise ModelError("model.not_loaded", model=options.model, error=str(error)) from None
        self.pipeline = BatchedInferencePipeline(self.model)
        self._feature_extractor = self.model.feature_extractor
        self._loaded = _model_key(options)

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def serves(self, options: TranscribeOptions) -> bool:
        """True when the loaded model is the one `options` ask for."""
        return self._loaded == _model_key(options)

    def unload(self) -> None:
        """Free the model's memory (a warm worker's, when its job asks for another model)."""
        self.model = self.pipeline = self._feature_extractor = None

    @staticmethod
    def prepare(
        audio: np.ndarray | GrowingAudio,
        options: TranscribeOptions,
        resume: ResumePoint | None = None,
        declared: float | None = None,
    ) -> Prepared:
        """Start finding the speech to decode; needs no model, so it runs beside the model's loading.

        Sequential mode starts on audio still being decoded (`GrowingAudio`) when the
        media declared its length; the others wait for all of it.
        """
        source = audio if isinstance(audio, GrowingAudio) else GrowingAudio.of(audio)
        if options.batch_size > 0:
            after = resume.after if resume is not None else -1.0
            clips = [c for c in speech_clips(source.result(), options.vad) if c.end > after + 0.01]
            return Prepared(source, declared, clips=clips)
        if resume is not None and resume.window is None:
            shift = resume.after  # no window recorded: continue right after the last segment
            rest = GrowingAudio.of(source.result()[int(shift * SAMPLE_RATE) :])
            return Prepared(source, declared, SpeechStream(rest, vad=options.vad), shift)
        if declared is None:
            source.available()  # no length to show progress against until it is decoded
        return Prepared(source, declared, SpeechStream(source, vad=options.vad))

    def transcribe(
        self, audio: Prepared | np.ndarray, options: TranscribeOptions, resume: ResumePoint | None = None
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Segments as they are decoded, with original timestamps; after `resume` if given."""
        requests.check_loaded(options, self.multilingual)
        prepared = audio if isinstance(audio, Prepared) else self.prepare(audio, options, resume)
        if options.batch_size > 0:
            return self._batched(prepared, options, resume)
        return self._sequential(prepared, options, resume)

    def _prompt_tokens(self, options: TranscribeOptions) -> list[int]:
        """The user's prompt as faster-whisper would encode it; kept ahead of a resumed run's prompt too."""
        if not options.prompt or not options.prompt.strip():
            return []
        return self.model.hf_tokenizer.encode(" " + options.prompt.strip(), add_special_tokens=False).ids

    def _decode_options(self, options: TranscribeOptions) -> dict:
        return {
            "task": options.task,
            "beam_size": options.beam_size,
            "word_timestamps": options.word_timestamps,
            "temperature": temperatures(options.temperature),
            "vad_filter": False,  # VAD runs here, so that clips and windows are ours to resume
            "without_timestamps": False,  # segments of a few seconds, as subtitles need
        }

    def _batched(
        self, prepared: Prepared, options: TranscribeOptions, resume: ResumePoint | None
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        duration = prepared.duration
        after = resume.after if resume is not None else -1.0
        clips = prepared.clips or []
        self.model.feature_extractor = self._feature_extractor  # each clip is one window
        if not clips:
            return iter(()), TranscriptionInfo(options.language, duration)
        size = options.batch_size
        batches = [clips[:1]] + [clips[i : i + size] for i in range(1, len(clips), size)]

        def run(batch: list[Clip], language: str | None) -> tuple[Iterator[Segment], Any]:
            # The clips' speech end to end; each is decoded on its own as one 30-s input.
            bounds = np.cumsum([0] + [len(c.audio) for c in batch]) / SAMPLE_RATE
            segments, info = self.pipeline.transcribe(
                np.concatenate([c.audio for c in batch]),
                language=language,
                clip_timestamps=[{"start": a, "end": b} for a, b in zip(bounds, bounds[1:], strict=False)],
                batch_size=len(batch),
                initial_prompt=options.prompt or None,
                **self._decode_options(options),
            )

            def placed() -> Iterator[Segment]:
                for s in segments:
                    i = min(int(np.searchsorted(bounds, s.start, "right")) - 1, len(batch) - 1)
                    yield batch[i].to_original(s, bounds[i])

            return placed(), info

        first, info = run(batches[0], options.language or None)

        def generate() -> Iterator[Segment]:
            for segments in chain([first], (run(b, info.language)[0] for b in batches[1:])):
                for segment in segments:
                    if segment.end > after + 0.01:  # else: re-decoded, and already committed
                        yield segment

        return generate(), TranscriptionInfo(info.language, duration, _detected(info, options))

    def _sequential(
        self, prepared: Prepared, options: TranscribeOptions, resume: ResumePoint | None
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """One window after another over the speech, which is still being found as decoding starts.

        The speech's length is known only once all of it is found, and only the last
        windows need it: when one of them is reached before it was known, decoding
        starts again there (TailReached) with the prompt it had, as a resume does.
        """
        speech, shift = prepared.speech, prepared.shift
        assert speech is not None
        window = resume.window if resume is not None and resume.window is not None else None
        prompt = self._prompt_tokens(options) + list(resume.prompt if resume is not None else ())
        after = resume.after if window is not None else -1.0

        def start(seek: float | None, prompt: list[int]) -> tuple[Iterator[Any], Any]:
            features = WindowFeatures(self._feature_extractor, speech, exact=speech.done)
            self.model.feature_extractor = GivenFeatures(self._feature_extractor, features)
            # faster-whisper takes only the length of this audio (for its log); the features are ours.
            return self.model.transcribe(
                np.broadcast_to(np.float32(0), (int(prepared.duration * SAMPLE_RATE),)),
                language=options.language or None,
                clip_timestamps=[seek] if seek is not None else "0",
                initial_prompt=prompt or None,
                **self._decode_options(options),
            )

        try:
            segments, info = start(window, prompt)
        except TailReached as tail:
            segments, info = start(tail.seek / FRAMES_PER_SECOND, prompt)

        def generate() -> Iterator[Segment]:
            nonlocal segments
            tokens, reset = list(prompt), 0
            try:
                while True:
                    try:
                        for s in segments:
                            tokens.extend(s.tokens)
                            if s.temperature > PROMPT_RESET_TEMPERATURE:
                                reset = len(tokens)  # faster-whisper drops the prompt after such a window
                            segment = _restored(s, speech, shift)
                            if segment.end > after + 0.01:  # else: re-decoded part of the resumed window
                                yield segment
                        return
                    except TailReached as tail:
                        segments, _ = start(tail.seek / FRAMES_PER_SECOND, tokens[reset:])
            finally:
                speech.close()

        return generate(), TranscriptionInfo(info.language, prepared.duration, _detected(info, options))


def _restored(s: Any, speech: SpeechStream, shift: float) -> Segment:
    """A segment decoded from the speech, on the file's timeline (as faster-whisper restores VAD times).

    Each word keeps to the speech span that holds its middle; a segment spans its words.
    """
    words = []
    for w in s.words or []:
        span = speech.span_of((w.start + w.end) / 2)
        start, end = (speech.original_time(t, span) + shift for t in (w.start, w.end))
        words.append({"start": start, "end": end, "word": w.word, "probability": w.probability})
    if words:
        start, end = words[0]["start"], words[-1]["end"]
    else:
        start = speech.original_time(s.start) + shift
        end = speech.original_time(s.end, is_end=True) + shift
    return Segment(start, end, s.text.strip(), words or None, list(s.tokens), s.seek / FRAMES_PER_SECOND)


@dataclass(frozen=True)
class Clip:
    """Up to 30 s of speech: the VAD spans (in samples) it joins, and their audio end to end."""

    spans: tuple[tuple[int, int], ...]
    audio: np.ndarray = field(repr=False, compare=False)

    @property
    def end(self) -> float:
        return self.spans[-1][1] / SAMPLE_RATE

    def original_time(self, t: float) -> float:
        """A time within this clip's joined audio, on the file's timeline."""
        sample = t * SAMPLE_RATE
        for start, end in self.spans:
            if sample <= end - start:
                return float(start + sample) / SAMPLE_RATE
            sample -= end - start
        return self.end

    def to_original(self, s: Any, clip_start: float) -> Segment:
        """A decoded segment (times within the batch's audio) on the file's timeline."""
        return _segment(s, lambda t: self.original_time(t - clip_start))


def speech_clips(audio: np.ndarray, vad: bool) -> list[Clip]:
    """The clips faster-whisper's batched pipeline makes (VAD speech joined up to 30 s), in order.

    The first clip holds only up to FIRST_CLIP_SECONDS of speech, so that the first
    text comes quickly. Without VAD the audio is cut every CLIP_SECONDS.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if vad:
        options = VadOptions(max_speech_duration_s=CLIP_SECONDS, min_silence_duration_ms=160)
        spans = [(s["start"], s["end"]) for s in get_speech_timestamps(audio, options)]
    else:
        step = int(CLIP_SECONDS * SAMPLE_RATE)
        spans = [(i, min(i + step, len(audio))) for i in range(0, len(audio), step)]
    clips: list[Clip] = []
    joined: list[tuple[int, int]] = []
    limit = FIRST_CLIP_SECONDS * SAMPLE_RATE
    for start, end in spans + [(0, 0)]:  # the empty span at the end closes the last clip
        length = sum(b - a for a, b in joined)
        if joined and (length + end - start > limit or end == start):
            clips.append(Clip(tuple(joined), np.concatenate([audio[a:b] for a, b in joined])))
            joined, limit = [], CLIP_SECONDS * SAMPLE_RATE
        if end > start:
            joined.append((start, end))
    return clips


def _segment(s: Any, at: Callable[[float], float], window: float | None = None) -> Segment:
    """Our Segment from faster-whisper's, its times (and its words') mapped through `at`."""
    words = [
        {"start": at(w.start), "end": at(w.end), "word": w.word, "probability": w.probability}
        for w in s.words or []
    ]
    return Segment(at(s.start), at(s.end), s.text.strip(), words or None, list(s.tokens), window)
