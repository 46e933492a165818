"""The engine's two modes, and resuming each exactly where a run stopped (real model)."""

import jiwer
import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from ttservice.jobs import TranscribeOptions
from ttservice.transcription.engine import (
    CLIP_SECONDS,
    FIRST_CLIP_SECONDS,
    FasterWhisperEngine,
    ResumePoint,
    speech_clips,
    temperatures,
)

from ..conftest import words


def test_speech_clips_join_speech_up_to_30_s_and_map_back(long_speech):
    audio = decode_audio(str(long_speech), sampling_rate=16000)
    clips = speech_clips(audio, vad=True)
    assert len(clips[0].audio) <= FIRST_CLIP_SECONDS * 16000 < len(clips[1].audio)
    assert all(len(c.audio) <= CLIP_SECONDS * 16000 for c in clips)
    spans = [span for c in clips for span in c.spans]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # in order, no overlap
    second = clips[1]
    first_span = second.spans[0]
    assert second.original_time(0.0) == first_span[0] / 16000
    inside = (first_span[1] - first_span[0]) / 16000  # the end of its first span, then the next
    assert second.original_time(inside) == first_span[1] / 16000
    fixed = speech_clips(np.zeros(16000 * 70, dtype=np.float32), vad=False)
    assert [c.spans for c in fixed] == [((0, 480000),), ((480000, 960000),), ((960000, 1120000),)]


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


def test_a_warm_engine_serves_jobs_that_need_its_model():
    from dataclasses import replace

    options = TranscribeOptions()
    engine = FasterWhisperEngine(options)
    assert engine.serves(replace(options, beam_size=5, language="en", vad=False))  # decoding choices
    assert not engine.serves(replace(options, compute_type="int8"))  # another model in memory
    assert not engine.serves(replace(options, cpu_threads=1))
    engine.unload()
    assert engine.model is None


def test_temperature_is_where_the_fallback_ladder_starts():
    assert temperatures(0.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert temperatures(0.5) == [0.5, 0.6, 0.8, 1.0]
    assert temperatures(1.0) == [1.0]


def test_a_prompt_is_encoded_as_faster_whisper_encodes_it():
    from faster_whisper.tokenizer import Tokenizer

    prompt = "  President Kennedy's inaugural address. "
    engine = FasterWhisperEngine(TranscribeOptions(prompt=prompt))
    theirs = Tokenizer(engine.model.hf_tokenizer, False, task="transcribe", language="en")
    assert engine._prompt_tokens(TranscribeOptions(prompt=prompt)) == theirs.encode(" " + prompt.strip())
    assert engine._prompt_tokens(TranscribeOptions(prompt="   ")) == []
