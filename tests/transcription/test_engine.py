"""The engine's two modes, and resuming each exactly where a run stopped (real model)."""

import jiwer
import numpy as np
import pytest
from faster_whisper import BatchedInferencePipeline
from faster_whisper.audio import decode_audio

from ttservice.jobs import TranscribeOptions
from ttservice.transcription.clips import CLIP_SECONDS, PHRASE_PAUSE, PHRASE_SECONDS, phrases, speech_clips
from ttservice.transcription.engine import COMPRESSION_LIMIT, LOGPROB_LIMIT, ResumePoint, temperatures
from ttservice.transcription.fasterwhisper import FasterWhisperEngine

from ..conftest import SHARED, words


def test_speech_clips_join_speech_up_to_30_s_and_map_back(long_speech):
    audio = decode_audio(str(long_speech), sampling_rate=16000)
    clips = speech_clips(audio, vad=True)
    assert all(len(c.audio) <= CLIP_SECONDS * 16000 for c in clips)
    assert all(len(c.audio) > CLIP_SECONDS * 16000 * 0.8 for c in clips[:-1])  # joined up to 30 s
    spans = [span for c in clips for span in c.spans]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # in order, no overlap
    second = clips[1]
    first_span = second.spans[0]
    assert second.original_time(0.0) == first_span[0] / 16000
    inside = (first_span[1] - first_span[0]) / 16000  # the end of its first span, then the next
    assert second.original_time(inside) == first_span[1] / 16000
    fixed = speech_clips(np.zeros(16000 * 70, dtype=np.float32), vad=False)
    assert [c.spans for c in fixed] == [((0, 480000),), ((480000, 960000),), ((960000, 1120000),)]


def test_the_last_text_ends_with_the_file_not_with_whispers_window():
    """faster-whisper ended the last segment of a 26.73-s recording (pocketsphinx's Austen reading)
    at 30.76 s, the end of its window; the job stores it, and its words, ending with the file."""
    from ttservice.jobs import Segment
    from ttservice.transcription.pipeline import ending_by

    said = [
        {"start": 23.76, "end": 24.1, "word": " He", "probability": 0.9},
        {"start": 26.2, "end": 30.76, "word": " himself.", "probability": 0.8},
    ]
    last = ending_by(Segment(23.76, 30.76, "He himself.", said), 26.73)
    assert (last.start, last.end, last.text) == (23.76, 26.73, "He himself.")
    assert last.words == [said[0], {**said[1], "end": 26.73}]
    within = Segment(1.0, 5.0, "Within the file.", said[:1])
    assert ending_by(within, 26.73) is within


def test_a_word_over_the_seam_of_two_spans_keeps_to_the_one_that_holds_its_middle():
    """A clip joins the speech at 0-1 s and 3-4 s of a file. A word aligned over the seam (0.8 to
    1.6 s of the joined audio) is placed from the span that holds its middle, at 2.8 to 3.6 s;
    mapped end by end it ran from 0.8 s across the 2 s of silence taken out. The pause then cuts
    the text in two, as subtitles should be."""
    from types import SimpleNamespace

    from ttservice.transcription.clips import Clip

    clip = Clip(((0, 16000), (48000, 64000)), np.zeros(32000, np.float32))
    said = [
        SimpleNamespace(start=0.2, end=0.8, word=" One", probability=0.9),
        SimpleNamespace(start=0.8, end=1.6, word=" two.", probability=0.9),
    ]
    one, two = clip.phrases(SimpleNamespace(words=said, text=" One two."), 0.0, keep_words=True)
    assert (one.text, one.start, one.end) == ("One", pytest.approx(0.2), pytest.approx(0.8))
    assert (two.text, two.start, two.end) == ("two.", pytest.approx(2.8), pytest.approx(3.6))
    assert clip.word_times(1.2, 1.4) == (pytest.approx(3.2), pytest.approx(3.4))  # within a span: as it was
    assert clip.original_time(0.8) == pytest.approx(0.8) and clip.original_time(1.6) == pytest.approx(3.6)


def test_a_long_files_first_clips_come_before_all_of_it_is_decoded(long_speech):
    """A file still being decoded: its first clips come from its first two minutes, and they are
    the whole file's first clips; then every other clip, none twice, none missing."""
    import threading

    from ttservice.transcription.clips import ClipStream
    from ttservice.transcription.samples import GrowingAudio

    speech = decode_audio(str(long_speech), sampling_rate=16000)
    audio = np.concatenate([speech, speech])  # six minutes
    growing = GrowingAudio(len(audio))
    fed = threading.Event()

    def feed() -> None:
        growing.append(audio[: 16000 * 150])
        fed.wait(30)  # the rest only once the first clips were found
        growing.append(audio[16000 * 150 :])
        growing.finish()

    threading.Thread(target=feed, daemon=True).start()
    stream = ClipStream(growing, vad=True)
    assert len(stream.head) >= 2 and not growing.done
    fed.set()
    whole = speech_clips(audio, vad=True)
    assert [c.spans for c in stream.head] == [c.spans for c in whole[: len(stream.head)]]
    assert [c.spans for c in stream] == [c.spans for c in whole]


def test_batched_decoding_gives_the_words_of_the_engines_own_pipeline(long_speech):
    """Same clips, same decoding: what BatchedInferencePipeline gives for the file, word for word."""
    options = TranscribeOptions(batch_size=8)
    engine = FasterWhisperEngine(options)
    audio = decode_audio(str(long_speech), sampling_rate=16000)
    ours = list(engine.transcribe(audio, options)[0])
    theirs, _ = BatchedInferencePipeline(engine.model).transcribe(audio, batch_size=8, beam_size=1)
    assert words(" ".join(s.text for s in ours)) == words(" ".join(s.text for s in theirs))
    assert len(ours) > 2 * len(speech_clips(audio, vad=True))  # clips cut into phrases
    assert all(s.end - s.start <= PHRASE_SECONDS + 0.5 and s.words is None for s in ours)


def test_on_the_cpu_a_batch_holds_two_clips_per_thread_and_the_words_stay(long_speech, caplog):
    """More clips at once than twice the job's threads were slower on the CPU: a job on one
    thread decodes two at a time where its batch size says eight; on two threads, two batches of
    two side by side, sharing both threads. All give the same segments, times included (a clip's
    words do not depend on its batch). The first clip goes alone only where someone may read
    the text as it comes (`live`)."""
    audio = decode_audio(str(long_speech), sampling_rate=16000)
    heard, batches = {}, {}
    for threads, live in ((1, True), (2, True), (2, False)):  # five clips
        options = TranscribeOptions(batch_size=8, cpu_threads=threads, language="en")
        engine = FasterWhisperEngine(options)
        sizes: list[int] = []

        class Counted(BatchedInferencePipeline):
            def transcribe(self, audio, sizes=sizes, **kw):
                sizes.append(kw["batch_size"])
                return super().transcribe(audio, **kw)

        engine._pipeline = Counted
        with caplog.at_level("INFO", logger="ttservice.worker"):
            segments = engine.transcribe(audio, options, live=live)[0]
            heard[threads, live] = [(s.start, s.end, s.text) for s in segments]
        batches[threads, live] = sizes
    # On 2 threads, the 4 clips it decodes at once are two batches of 2, side by side.
    assert batches == {(1, True): [1, 2, 2], (2, True): [1, 2, 2], (2, False): [2, 2, 1]}
    assert heard[1, True] == heard[2, True] == heard[2, False]
    assert "Decoding 2 clips at a time, 2 per CPU thread of the job (1)" in caplog.text
    assert "Decoding 4 clips at a time: 2 batches of 2 side by side, sharing 2 CPU threads" in caplog.text


def test_batched_detects_as_the_engine_and_decodes_its_bad_clips_again(base_model_dir, monkeypatch):
    """Real speech (English, then German) with a multilingual model and no language given: the
    language the engine's pipeline detects, its words for each clip it decodes well, and a clip
    it decodes badly (the German one, heard as English, on the CPUs of earlier runs; not on every
    CPU: the int8 kernels differ) decoded again on its own with the fallback. (The fallback
    samples: its words are not the same from run to run.)"""
    options = TranscribeOptions(model=str(base_model_dir), batch_size=8, word_timestamps=True)
    engine = FasterWhisperEngine(options)
    again = []
    redecode = engine._again
    monkeypatch.setattr(engine, "_again", lambda clip, *rest: again.append(clip) or redecode(clip, *rest))
    audio = decode_audio(str(SHARED / "data" / "multilingual.mp3"), sampling_rate=16000)
    segments, info = engine.transcribe(audio, options)
    ours = list(segments)
    theirs, their_info = BatchedInferencePipeline(engine.model).transcribe(audio, batch_size=8, beam_size=1)
    assert info.language == their_info.language
    assert info.language_probability == their_info.language_probability
    assert all(s.words and s.start == s.words[0]["start"] and s.end == s.words[-1]["end"] for s in ours)
    decoded_again = [c.spans for c in again]
    for clip, their in zip(speech_clips(audio, vad=True), theirs, strict=True):
        start = clip.spans[0][0] / 16000
        mine = words(" ".join(s.text for s in ours if start <= s.start <= clip.end))
        if their.compression_ratio > COMPRESSION_LIMIT or their.avg_logprob < LOGPROB_LIMIT:
            assert clip.spans in decoded_again
        if clip.spans in decoded_again:
            assert mine and mine != words(their.text)
        else:
            assert mine == words(their.text)


def test_a_clip_decoded_badly_is_decoded_again_on_its_own(monkeypatch):
    """Whichever clips a CPU's kernels decode badly, the way back is the same: each such clip is
    decoded again on its own, with timestamps and the fallback, and its words are what it said."""
    from ttservice.transcription.clips import Clip

    monkeypatch.setattr(Clip, "decoded_badly", lambda self, s, start: True)
    options = TranscribeOptions(batch_size=8, language="en", word_timestamps=True)
    engine = FasterWhisperEngine(options)
    again, redecode = [], engine._again
    monkeypatch.setattr(engine, "_again", lambda clip, *rest: again.append(clip) or redecode(clip, *rest))
    audio = decode_audio(str(SHARED / "data" / "jfk.wav"), sampling_rate=16000)
    ours = list(engine.transcribe(audio, options)[0])
    assert [c.spans for c in again] == [c.spans for c in speech_clips(audio, vad=True)]
    said = (SHARED / "data" / "jfk.txt").read_text()
    assert jiwer.wer(" ".join(words(said)), " ".join(words(" ".join(s.text for s in ours)))) < 0.1
    assert all(s.words and s.start == s.words[0]["start"] for s in ours)


def test_the_rest_of_a_clip_whose_text_stops_early_is_decoded_on_its_own(monkeypatch):
    """Two real recordings one after the other (jfk.wav, then the MIT license read in English):
    in one clip, decoded without timestamps, tiny.en stopped after the first and never heard the
    second on most CPUs we ran it on (not on all: the int8 kernels differ). The rest of that clip,
    from the pause after jfk's last word, is decoded as a clip of its own: both are heard, and
    the clip is not decoded again from its start."""
    from ttservice.transcription.clips import Clip

    jfk = decode_audio(str(SHARED / "data" / "jfk.wav"), sampling_rate=16000)
    mit = decode_audio(str(SHARED / "data" / "multilingual.mp3"), sampling_rate=16000)[: 16000 * 30]
    audio = np.concatenate([jfk, np.zeros(16000, dtype=np.float32), mit])
    options = TranscribeOptions(batch_size=8, language="en")
    engine = FasterWhisperEngine(options)
    again, redecode = [], engine._again
    monkeypatch.setattr(engine, "_again", lambda clip, *rest: again.append(clip) or redecode(clip, *rest))
    rests, unheard = [], Clip.unheard
    monkeypatch.setattr(Clip, "unheard", lambda *args: rests.append(unheard(*args)) or rests[-1])
    # each None, or the speech the clip's text left before it and after it
    theirs, _ = BatchedInferencePipeline(engine.model).transcribe(audio, batch_size=8, language="en")
    theirs = " ".join(words(" ".join(s.text for s in theirs)))
    ours = list(engine.transcribe(audio, options)[0])
    said = " ".join(words(" ".join(s.text for s in ours)))
    assert "ask not what your country can do for you" in said and "permission is hereby granted" in said
    assert all(word in said for word in ("merge", "publish", "distribute", "copyright notice"))
    assert all(a.end <= b.start + 0.01 for a, b in zip(ours[:-1], ours[1:], strict=True))  # nothing twice
    if "permission is hereby granted" not in theirs:  # the engine's pipeline lost it here
        assert rests and rests[0] is not None and rests[0][1] is not None and not again
        assert len(jfk) < rests[0][1].spans[0][0] < len(jfk) + 16000 * 2  # from the pause on
        permission = next(s for s in ours if s.text.lower().startswith("permission"))
        assert abs(permission.start - (len(jfk) + 16000) / 16000) < 1.5  # on the file's timeline
    heard = [s for s in ours if s.end <= len(jfk) / 16000 + 0.5]  # stopped after jfk's words
    resumed = list(engine.transcribe(audio, options, ResumePoint.from_segments(heard))[0])
    assert heard + resumed == ours


def test_the_rest_of_a_clip_starts_at_the_pause_after_its_last_word():
    from types import SimpleNamespace

    from ttservice.transcription.clips import UNHEARD_SECONDS, Clip

    second = 16000
    spans = ((0, 4 * second), (5 * second, 12 * second), (13 * second, 30 * second))  # 28 s joined
    clip = Clip(spans, np.arange(28 * second, dtype=np.float32))

    def decoded(start, end, ratio=1.5, logprob=-0.3, first=(0.5, 0.9)):
        said = [SimpleNamespace(start=first[0], end=first[1]), SimpleNamespace(start=start, end=end)]
        return SimpleNamespace(words=said, compression_ratio=ratio, avg_logprob=logprob)

    before, rest = clip.unheard(decoded(9.5, 10.6), 0.0)  # the last word in the second span, to 11 s
    assert before is None and rest.spans == spans[2:]
    assert rest.audio[0] == 11 * second and len(rest.audio) == 17 * second
    assert rest.original_time(0.0) == 13.0
    assert clip.unheard(decoded(39.5, 40.6, first=(30.5, 30.9)), 30.0)[1].spans == spans[2:]  # its place
    assert clip.unheard(decoded(3.0, 11.0 - UNHEARD_SECONDS), 0.0) is None  # stopped mid-speech
    assert clip.unheard(decoded(15.0, 16.0), 0.0) is None  # in the last span: no pause to start at
    assert clip.unheard(decoded(9.5, 10.6, ratio=COMPRESSION_LIMIT + 0.1), 0.0) is None  # a loop


def test_the_speech_before_a_clips_late_text_ends_at_the_pause_before_its_first_word():
    """The mirror image: text that began 5 s or more into the clip (the batch heard the second of
    two voices only) leaves the spans before the one that holds its first word."""
    from types import SimpleNamespace

    from ttservice.transcription.clips import UNHEARD_SECONDS, Clip

    second = 16000
    spans = ((0, 4 * second), (5 * second, 12 * second), (13 * second, 30 * second))  # 28 s joined
    clip = Clip(spans, np.arange(28 * second, dtype=np.float32))

    def decoded(start, end=27.5):
        said = [SimpleNamespace(start=start, end=start + 0.4), SimpleNamespace(start=end - 0.4, end=end)]
        return SimpleNamespace(words=said, compression_ratio=1.5, avg_logprob=-0.3)

    before, after = clip.unheard(decoded(11.2), 0.0)  # the first word in the third span, from 11 s
    assert after is None and before.spans == spans[:2]
    assert len(before.audio) == 11 * second and before.audio[-1] == 11 * second - 1
    assert before.original_time(10.0) == 11.0  # 10 s into it: 6 s into the second span
    assert clip.unheard(decoded(41.2, 57.5), 30.0)[0].spans == spans[:2]  # its place in the batch counts
    assert clip.unheard(decoded(11.0 + UNHEARD_SECONDS), 0.0) is None  # began mid-speech
    longer = Clip(((0, 20 * second), (21 * second, 28 * second)), np.zeros(27 * second, dtype=np.float32))
    assert longer.unheard(decoded(UNHEARD_SECONDS + 1.0, 26.5), 0.0) is None  # in the first span: no pause


def test_a_clip_is_decoded_badly_when_its_words_begin_late_stop_early_or_whispers_tests_fail():
    from types import SimpleNamespace

    from ttservice.transcription.clips import UNHEARD_SECONDS, Clip

    clip = Clip(((0, 20 * 16000),), np.zeros(20 * 16000, dtype=np.float32))

    def decoded(last_word_end, first_word_start=0.5, ratio=1.5, logprob=-0.3, words=True):
        said = [SimpleNamespace(start=first_word_start), SimpleNamespace(end=last_word_end)] if words else []
        return SimpleNamespace(words=said, compression_ratio=ratio, avg_logprob=logprob)

    assert clip.decoded_badly(decoded(20 - UNHEARD_SECONDS - 0.1), 0.0)  # 5 s and more unheard
    assert clip.decoded_badly(decoded(19.0, UNHEARD_SECONDS + 0.1), 0.0)  # as many before the words
    assert not clip.decoded_badly(decoded(19.0), 0.0)
    assert not clip.decoded_badly(decoded(49.0, 30.5), 30.0)  # the clip's place in its batch counts
    assert clip.decoded_badly(decoded(19.0, ratio=COMPRESSION_LIMIT + 0.1), 0.0)  # a loop
    assert clip.decoded_badly(decoded(19.0, logprob=LOGPROB_LIMIT - 0.1), 0.0)  # text it doubts
    assert clip.decoded_badly(decoded(0.0, words=False), 0.0)  # 20 s and no word


def test_phrases_end_at_a_sentence_a_pause_or_a_length():
    def word(text, start, end):
        return {"word": text, "start": start, "end": end}

    sentence = [word(" Ask", 0.0, 0.4), word(" not.", 0.5, 0.9), word(" My", 1.0, 1.2)]
    assert [len(p) for p in phrases(sentence)] == [2, 1]
    pause = [word(" one", 0.0, 0.3), word(" two", 0.3 + PHRASE_PAUSE, 1.6 + PHRASE_PAUSE)]
    assert [len(p) for p in phrases(pause)] == [1, 1]
    steady = [word(f" w{i}", i * 0.5, i * 0.5 + 0.4) for i in range(int(3 * PHRASE_SECONDS))]
    runs = list(phrases(steady))
    assert len(runs) == 2 and all(r[-1]["end"] - r[0]["start"] <= PHRASE_SECONDS for r in runs)
    assert sum(runs, []) == steady and list(phrases([])) == []


@pytest.mark.parametrize(
    ("batch_size", "beam_size"),
    [(8, 1), (8, 5), (0, 1)],
    ids=["batched", "batched, 5 beams (the default)", "sequential"],
)
def test_resume_gives_the_uninterrupted_transcript(long_speech, batch_size, beam_size):
    options = TranscribeOptions(batch_size=batch_size, beam_size=beam_size, language="en")
    engine = FasterWhisperEngine(options)
    audio = decode_audio(str(long_speech), sampling_rate=16000)
    full = list(engine.transcribe(audio, options)[0])
    assert len(full) > 12
    for stop in (5, len(full) // 2):  # mid-window and wherever the middle falls
        kept = full[:stop]
        rest = list(engine.transcribe(audio, options, ResumePoint.from_segments(kept))[0])
        assert rest[0].start >= kept[-1].end - 0.01  # nothing repeated at the seam
        resumed = " ".join(words(" ".join(s.text for s in kept + rest)))
        uninterrupted = " ".join(words(" ".join(s.text for s in full)))
        if batch_size:  # clips are independent: the very same words
            assert resumed == uninterrupted and kept + rest == full
        else:
            assert jiwer.wer(uninterrupted, resumed) <= 0.02


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
