"""The engine's two modes, and resuming each exactly where a run stopped (real model)."""

import jiwer
import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from ttservice.engine import CLIP_SECONDS, FIRST_CLIP_SECONDS, FasterWhisperEngine, ResumePoint, speech_clips
from ttservice.jobs import TranscribeOptions

from .conftest import words


def test_speech_clips_are_short_ordered_and_cut_in_pauses(long_speech):
    audio = decode_audio(str(long_speech), sampling_rate=16000)
    clips = speech_clips(audio, vad=True)
    assert clips[0][1] - clips[0][0] <= FIRST_CLIP_SECONDS + 0.5
    assert all(end - start <= CLIP_SECONDS for start, end in clips)
    assert all(a[1] <= b[0] for a, b in zip(clips, clips[1:], strict=False))
    fixed = speech_clips(np.zeros(16000 * 70, dtype=np.float32), vad=False)
    assert fixed == [(0.0, 30.0), (30.0, 60.0), (60.0, 70.0)]


@pytest.mark.parametrize("batch_size", [8, 0], ids=["batched", "sequential"])
def test_resume_gives_the_uninterrupted_transcript(long_speech, batch_size):
    options = TranscribeOptions(batch_size=batch_size, language="en")
    engine = FasterWhisperEngine(options)
    audio = decode_audio(str(long_speech), sampling_rate=16000)
    full = list(engine.transcribe(audio, options)[0])
    assert len(full) > 12
    for stop in (5, len(full) // 2):  # mid-window and wherever the middle falls
        kept = full[:stop]
        rest = list(engine.transcribe(audio, options, ResumePoint.from_segments(kept))[0])
        assert rest[0].start >= kept[-1].end - 0.01  # nothing repeated at the seam
        resumed = " ".join(words(" ".join(s.text for s in kept + rest)))
        assert jiwer.wer(" ".join(words(" ".join(s.text for s in full))), resumed) <= 0.02
