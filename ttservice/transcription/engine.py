"""Speech-to-text engines behind one small interface; faster-whisper first.

The worker only needs `Engine.prepare(audio, options)` (before the model loads,
in any thread) and `Engine.transcribe(prepared, options)` yielding segments, so
another engine (or a remote one) can come without touching supervision.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
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
N_FRAMES = 3000  # one 30-s window of mel frames: what language detection hears
PHRASE_ENDS = tuple(".?!。？！")  # a batched clip's text is cut into segments after these,
PHRASE_PAUSE = 1.0  # at a pause of this many seconds between words,
PHRASE_SECONDS = 10.0  # and before a word that would make a segment longer than this
PROMPT_RESET_TEMPERATURE = 0.5  # faster-whisper's prompt_reset_on_temperature
SAMPLING_SEED = 0
# Whisper's own tests of a window it decoded badly (a loop repeating a word, or text it doubts):
COMPRESSION_LIMIT = 2.4  # gzip ratio of the text above which it is a loop
LOGPROB_LIMIT = -1.0  # average log-probability of its tokens below which it is doubtful
# Decoded without timestamps, a clip's text can stop early (it did where one recording followed
# another inside a clip: 18 s of speech left unheard); elsewhere the last word ended at most
# 1.4 s before the clip did, on every real recording we have.
UNHEARD_SECONDS = 5.0
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
    - batched (N > 0): faster-whisper's `BatchedInferencePipeline`, fed the
      clips it would cut itself (VAD speech joined up to 30 s) and decoding as it
      does (without timestamp tokens: decoding them in batches cost 3 to 7 WER
      points on real speech), N clips at a time, each on its own; the first batch
      is the first clip alone, for a quick first text. Each clip's text is cut into
      segments at its words' timings (see `phrases`). Resuming skips the clips
      already done and re-decodes the one it stopped in, dropping what was
      committed: clips are independent.
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
        self._fit_mel_bins()
        self.pipeline = BatchedInferencePipeline(self.model)
        self._feature_extractor = self.model.feature_extractor
        self._loaded = _model_key(options)
        self.doubt = Doubt()  # of the last transcription, filled as its segments are decoded

    def _fit_mel_bins(self) -> None:
        """A folder without preprocessor_config.json gets faster-whisper's 80 mel bins; v3 and turbo
        models take 128: the model's own count decides (CTranslate2 reads it from its weights)."""
        wanted = self.model.model.n_mels
        if self.model.feature_extractor.mel_filters.shape[0] != wanted:
            from faster_whisper.feature_extractor import FeatureExtractor

            self.model.feat_kwargs = {**self.model.feat_kwargs, "feature_size": wanted}
            self.model.feature_extractor = FeatureExtractor(**self.model.feat_kwargs)

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
            return Prepared(source, declared, clips=ClipStream(source, options.vad, resume))
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
        self.doubt = Doubt()
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
        after = resume.after if resume is not None else -1.0
        clips = prepared.clips
        self.model.feature_extractor = self._feature_extractor  # each clip is one window
        if clips is None or clips.empty():
            return iter(()), TranscriptionInfo(options.language, prepared.duration)
        language, probability = self._language(clips, options)

        def batches() -> Iterator[list[Clip]]:
            found = iter(clips)
            yield list(islice(found, 1))  # the first text comes after one clip, not eight
            while batch := list(islice(found, options.batch_size)):
                yield batch

        decode = {**self._decode_options(options), "temperature": options.temperature}
        decode.update(without_timestamps=True, word_timestamps=True)  # words place the segments

        def run(batch: list[Clip]) -> Iterator[Segment]:
            # Clip k starts at k × 30 s, a time that floats hold exactly: its samples, its words'
            # times and so its segments are the same whichever batch and place it has (a resumed
            # run batches the clips differently).
            stride = int(CLIP_SECONDS * SAMPLE_RATE)
            audio = np.zeros(len(batch) * stride, dtype=np.float32)
            for k, clip in enumerate(batch):
                audio[k * stride : k * stride + len(clip.audio)] = clip.audio
            self.pipeline.last_speech_timestamp = 0.0  # each batch on its own timeline
            segments, _ = self.pipeline.transcribe(
                audio,
                language=language,
                clip_timestamps=[
                    # half a sample more: the pipeline rounds the end down to a sample
                    {"start": k * CLIP_SECONDS, "end": k * CLIP_SECONDS + (len(c.audio) + 0.5) / SAMPLE_RATE}
                    for k, c in enumerate(batch)
                ],
                batch_size=len(batch),
                initial_prompt=options.prompt or None,
                **decode,
            )
            for s in segments:  # one for each clip
                k = round(s.seek / FRAMES_PER_SECOND / CLIP_SECONDS)
                if batch[k].decoded_badly(s, k * CLIP_SECONDS):
                    yield from self._again(batch[k], language, options)
                else:
                    self.doubt.add(len(batch[k].audio) / SAMPLE_RATE, s)
                    yield from batch[k].phrases(s, k * CLIP_SECONDS, options.word_timestamps)

        def generate() -> Iterator[Segment]:
            for segment in chain.from_iterable(run(b) for b in batches()):
                if segment.end > after + 0.01:  # else: re-decoded, and already committed
                    yield segment

        return generate(), TranscriptionInfo(language, prepared.duration, probability)

    def _again(self, clip: Clip, language: str, options: TranscribeOptions) -> Iterator[Segment]:
        """A clip the batch decoded badly, decoded again on its own as sequential decoding does:
        with timestamps (so that it goes on after text that stopped early), hotter at each
        failure, the text dropped where Whisper finds no speech."""
        segments, _ = self.model.transcribe(
            clip.audio,
            language=language,
            initial_prompt=options.prompt or None,
            **{**self._decode_options(options), "word_timestamps": True},
        )
        for s in segments:
            self.doubt.add(s.end - s.start, s)
            yield from clip.phrases(s, 0.0, options.word_timestamps)

    def _language(self, clips: Iterable[Clip], options: TranscribeOptions) -> tuple[str, float | None]:
        """The language given, or detected as the batched pipeline detects it: on the first 30 s
        of the clips' features, each clip's as it will be decoded."""
        if options.language:
            return options.language, None
        if not self.multilingual:
            return "en", None
        features, frames = [], 0
        for clip in clips:
            features.append(self._feature_extractor(clip.audio)[..., :-1])
            frames += features[-1].shape[-1]
            if frames >= N_FRAMES:
                break
        features.append(np.full((self.model.model.n_mels, 1), -1.5, dtype=np.float32))  # as theirs
        language, probability, _ = self.model.detect_language(
            features=np.concatenate(features, axis=1), language_detection_segments=1
        )
        return language, probability

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
                            self.doubt.add(s.end - s.start, s)
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

        probability = _detected(info, options, self.multilingual)
        return generate(), TranscriptionInfo(info.language, prepared.duration, probability)


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

    def decoded_badly(self, s: Any, clip_start: float) -> bool:
        """Whether the batch's text for this clip fails Whisper's own tests (a loop, or text it
        doubts), or stops UNHEARD_SECONDS or more before the clip's speech does."""
        if s.compression_ratio > COMPRESSION_LIMIT or s.avg_logprob < LOGPROB_LIMIT:
            return True
        heard = s.words[-1].end - clip_start if s.words else 0.0
        return len(self.audio) / SAMPLE_RATE - heard >= UNHEARD_SECONDS

    def phrases(self, s: Any, clip_start: float, keep_words: bool) -> Iterator[Segment]:
        """A decoded clip (times within the batch's audio) as segments on the file's timeline."""
        at = [
            {
                "start": self.original_time(w.start - clip_start),
                "end": self.original_time(w.end - clip_start),
                "word": w.word,
                "probability": w.probability,
            }
            for w in s.words or []
        ]
        if not at and s.text.strip():  # no word could be aligned: the text spans the clip
            yield Segment(self.spans[0][0] / SAMPLE_RATE, self.end, s.text.strip())
            return
        for words in phrases(at):
            text = "".join(w["word"] for w in words).strip()
            if text:
                yield Segment(words[0]["start"], words[-1]["end"], text, words if keep_words else None)


def phrases(words: list[dict]) -> Iterator[list[dict]]:
    """Words in runs that read as subtitles do: cut after a sentence's end, at a pause of
    PHRASE_PAUSE, and before a run would grow longer than PHRASE_SECONDS."""
    run: list[dict] = []
    for word in words:
        if run and (
            run[-1]["word"].rstrip().endswith(PHRASE_ENDS)
            or word["start"] - run[-1]["end"] >= PHRASE_PAUSE
            or word["end"] - run[0]["start"] > PHRASE_SECONDS
        ):
            yield run
            run = []
        run.append(word)
    if run:
        yield run


class ClipStream:
    """The clips of a file still being decoded, the first ones before all of it is.

    A long file's first clips come from its first EARLY_SECONDS (VAD's probabilities and
    spans up to a point do not depend on what comes after, so they are the whole file's; the
    last two clips of that head are left to the whole file's list, whose start the test holds
    equal to the head), so that its first text does not wait for the whole file to be decoded
    and searched for speech; the rest come once a thread has found all of it. A resumed job's
    clips start at the clip it stopped in.
    """

    EARLY_SECONDS = 120.0

    def __init__(self, audio: GrowingAudio, vad: bool, resume: ResumePoint | None = None) -> None:
        self.audio, self.vad = audio, vad
        self.after = resume.after if resume is not None else -1.0
        self._all: list[Clip] | None = None
        self._error: BaseException | None = None
        self._found = threading.Event()
        threading.Thread(target=self._find_all, name="clips", daemon=True).start()
        early = int(self.EARLY_SECONDS * SAMPLE_RATE)
        if audio.available(early + 1) > early and not audio.done:
            self.head = speech_clips(audio[:early], vad)[:-2]
        else:
            self.head = []

    def _find_all(self) -> None:
        try:
            self._all = speech_clips(self.audio.result(), self.vad)
        except BaseException as error:  # the media's decoding failed: the reader raises it
            self._error = error
        self._found.set()

    def all(self) -> list[Clip]:
        self._found.wait()
        if self._error is not None:
            raise self._error
        return self._all

    def empty(self) -> bool:
        return not any(True for _ in self)

    def __iter__(self) -> Iterator[Clip]:
        for clip in self.head:
            if clip.end > self.after + 0.01:
                yield clip
        last = self.head[-1].end if self.head else -1.0
        for clip in self.all():
            if clip.end > max(last, self.after) + 0.01:
                yield clip


def speech_clips(audio: np.ndarray, vad: bool) -> list[Clip]:
    """The clips faster-whisper's batched pipeline makes (VAD speech joined up to 30 s), in order.

    Without VAD the audio is cut every CLIP_SECONDS.
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
    for start, end in spans + [(0, 0)]:  # the empty span at the end closes the last clip
        length = sum(b - a for a, b in joined)
        if joined and (length + end - start > CLIP_SECONDS * SAMPLE_RATE or end == start):
            clips.append(Clip(tuple(joined), np.concatenate([audio[a:b] for a, b in joined])))
            joined = []
        if end > start:
            joined.append((start, end))
    return clips
