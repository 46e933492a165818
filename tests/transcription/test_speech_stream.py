"""Speech found a block at a time and features computed a window at a time equal faster-whisper's
whole-file results, and decoding that starts before all the speech is found (or all the media
decoded) decodes the same."""

import threading
import time

import numpy as np
import pytest
from faster_whisper.audio import decode_audio
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

from ttservice.exceptions import MediaError
from ttservice.jobs import TranscribeOptions
from ttservice.transcription import media
from ttservice.transcription.fasterwhisper import FasterWhisperEngine
from ttservice.transcription.features import WindowFeatures
from ttservice.transcription.samples import GrowingAudio
from ttservice.transcription.vad import PADDING, SAMPLE_RATE, SpeechStream

from ..conftest import JFK_WAV
from ..media import video_with_audio
from ..speech import speech_with_pauses


@pytest.fixture(scope="module")
def jfk():
    return decode_audio(str(JFK_WAV), sampling_rate=SAMPLE_RATE)


@pytest.fixture(scope="module")
def paused(tmp_path_factory):
    """A minute and a half of sentences with 0.5-3 s pauses: many spans, some gaps padded by half."""
    work = tmp_path_factory.mktemp("paused")
    path, _ = speech_with_pauses(work / "paused.wav", 1.5, work)
    return decode_audio(str(path), sampling_rate=SAMPLE_RATE)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


CASES = {
    "pauses": lambda jfk, paused: paused,
    "jfk": lambda jfk, paused: jfk,
    "silence": lambda jfk, paused: silence(5),
    "whole windows": lambda jfk, paused: jfk[: 512 * 300],
    "short gap": lambda jfk, paused: np.concatenate([jfk, silence(0.5), jfk[: 4 * SAMPLE_RATE]]),
    "long gap": lambda jfk, paused: np.concatenate([jfk, silence(3), jfk]),
}


@pytest.mark.parametrize("case", CASES)
def test_spans_and_speech_equal_faster_whispers_vad(case, jfk, paused):
    audio = CASES[case](jfk, paused)
    expected = get_speech_timestamps(audio.copy(), VadOptions())
    stream = SpeechStream(audio)
    total = stream.wait()
    assert stream.spans == [(s["start"], s["end"]) for s in expected]
    joined = np.concatenate(collect_chunks(audio, expected)[0]) if expected else audio[:0]
    speech, known = stream.samples(0, total)
    assert known == total == len(joined) + PADDING
    assert np.array_equal(speech[: len(joined)], joined) and not speech[len(joined) :].any()
    if case == "long gap":  # times on the speech timeline map back past the dropped silence
        second = stream.spans[1]
        on_speech = (stream.spans[0][1] - stream.spans[0][0]) / SAMPLE_RATE + 1.0
        assert stream.original_time(on_speech) == round(second[0] / SAMPLE_RATE + 1.0, 2)


def test_without_vad_the_speech_is_the_whole_file(jfk):
    stream = SpeechStream(jfk, vad=False)
    speech, total = stream.samples(0, len(jfk) + PADDING)
    assert total == len(jfk) + PADDING and np.array_equal(speech[: len(jfk)], jfk)
    assert stream.original_time(3.21) == 3.21


def test_speech_is_found_ahead_of_the_reader_and_no_further(paused):
    stream = SpeechStream(np.tile(paused, 5))  # 7.5 minutes
    first_window, _ = stream.samples(0, 30 * SAMPLE_RATE)
    assert len(first_window) == 30 * SAMPLE_RATE
    assert not stream.done  # it waits for the decoder instead of taking the cores
    assert stream.wait() > 120 * SAMPLE_RATE and stream.done


def test_one_window_of_features_equals_the_extractors(jfk):
    extractor = FeatureExtractor()
    whole = extractor(jfk)
    window = WindowFeatures(extractor, SpeechStream(jfk, vad=False), exact=True)
    assert window.shape == whole.shape
    assert np.array_equal(window[:, 0 : whole.shape[1]], whole)
    assert np.array_equal(window[..., 100:], window[:, 100 : whole.shape[1]])  # read as one window


def test_each_window_keeps_the_whole_files_frames_and_sets_its_own_floor(paused):
    extractor = FeatureExtractor()
    whole = extractor(paused)
    features = WindowFeatures(extractor, SpeechStream(paused, vad=False), exact=True)
    view = features[..., 2500:]  # longer than a window: read a window at a time later
    assert view.shape == (whole.shape[0], whole.shape[1] - 2500)
    assert np.array_equal(view[..., :3000], features[:, 2500:5500])
    for start in (0, 2500, whole.shape[1] - 3000):
        window = features[:, start : start + 3000]
        expected = whole[:, start : start + 3000]
        above_floor = expected > whole.min()  # bins the whole file's floor did not clip
        assert above_floor.mean() > 0.5
        assert np.allclose(window[above_floor], expected[above_floor], atol=1e-5)


def test_decoding_while_the_speech_is_found_equals_decoding_after(paused):
    options = TranscribeOptions(language="en")
    engine = FasterWhisperEngine(options)
    calls, transcribe = [], engine.model.transcribe
    engine.model.transcribe = lambda *args, **kwargs: calls.append(kwargs) or transcribe(*args, **kwargs)
    runs = []
    for wait in (False, True):
        prepared = engine.prepare(paused, options)
        if wait:
            prepared.speech.wait()
        runs.append([(s.start, s.end, s.text, s.window) for s in engine.transcribe(prepared, options)[0]])
    assert len(runs[0]) > 10
    assert runs[0] == runs[1]
    # decoding began before the end of the speech was known, and started again for the last windows
    assert len(calls) == 3 and calls[1]["clip_timestamps"] != "0" and calls[1]["initial_prompt"]


def fed(audio: np.ndarray, pause: float = 0.002, error: Exception | None = None) -> GrowingAudio:
    """The samples appended 7 s at a time by a thread, as the worker's decoding does."""
    out = GrowingAudio(len(audio) // 2)  # shorter than the audio: it has to grow
    step = 7 * SAMPLE_RATE

    def feed() -> None:
        for i in range(0, len(audio), step):
            out.append(audio[i : i + step])
            time.sleep(pause)
        out.finish(error)

    threading.Thread(target=feed, daemon=True).start()
    return out


@pytest.mark.parametrize("case", CASES)
def test_speech_of_audio_still_being_decoded_equals_the_whole_arrays(case, jfk, paused):
    audio = CASES[case](jfk, paused)
    whole = SpeechStream(audio)
    total = whole.wait()
    stream = SpeechStream(fed(audio))
    assert stream.wait() == total
    assert stream.spans == whole.spans
    assert np.array_equal(stream.samples(0, total)[0], whole.samples(0, total)[0])


def test_without_vad_audio_still_being_decoded_is_all_speech(paused):
    stream = SpeechStream(fed(paused), vad=False)
    total = stream.wait()
    assert total == len(paused) + PADDING
    assert np.array_equal(stream.samples(0, total)[0][: len(paused)], paused)


def test_a_decoding_error_reaches_the_reader(paused):
    stream = SpeechStream(fed(paused[: 20 * SAMPLE_RATE], error=MediaError("media.damaged", name="x.wav")))
    with pytest.raises(MediaError, match="damaged"):
        stream.wait()


@pytest.mark.parametrize("kind", ["wav", "mp4 (aac)"])
def test_decoding_as_it_goes_gives_faster_whispers_samples(kind, tmp_path):
    path = JFK_WAV if kind == "wav" else video_with_audio(tmp_path / "talk.mp4", JFK_WAV)
    info = media.probe(path, 2**30)
    out = GrowingAudio()
    media.decode_into(info, out)
    assert out.done and np.array_equal(out.result(), decode_audio(str(path), sampling_rate=SAMPLE_RATE))


def test_transcribing_media_still_being_decoded_equals_transcribing_the_array(paused):
    options = TranscribeOptions(language="en")
    engine = FasterWhisperEngine(options)
    whole = [(s.start, s.end, s.text) for s in engine.transcribe(paused, options)[0]]
    declared = len(paused) / SAMPLE_RATE
    prepared = engine.prepare(fed(paused, pause=0.05), options, declared=declared)
    assert not prepared.audio.done and prepared.duration == declared
    streamed = [(s.start, s.end, s.text) for s in engine.transcribe(prepared, options)[0]]
    assert len(whole) > 10 and streamed == whole
