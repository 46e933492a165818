"""faster-whisper (CTranslate2): the engine on Linux and Windows, on the CPU or CUDA."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from itertools import chain, islice
from typing import Any

import numpy as np

from ..exceptions import ModelError
from ..jobs import Segment, TranscribeOptions
from ..models import requests
from . import device
from .clips import CLIP_SECONDS, Clip, ClipStream
from .engine import (
    FASTER_WHISPER,
    FRAMES_PER_SECOND,
    N_FRAMES,
    PROMPT_RESET_TEMPERATURE,
    SAMPLING_SEED,
    Doubt,
    Prepared,
    ResumePoint,
    TranscriptionInfo,
    _detected,
    temperatures,
)
from .export import clock
from .features import GivenFeatures, TailReached, WindowFeatures
from .samples import GrowingAudio
from .vad import SAMPLE_RATE, SpeechStream

log = logging.getLogger("ttservice.worker")  # the job's log, as the pipeline's lines
# Each clip of a batch gets a slot of twice the longest clip in the batch's audio. The pipeline shortens
# a clip's first word when the batch's previous word (its `last_speech_timestamp`) is far enough
# before it; a clip that followed one whose speech ran to its end within 30 s, or came first in
# its batch, kept it long: its word times moved with its place (by up to 2.5 s with base).
SLOT_SECONDS = 2 * CLIP_SECONDS


def _model_key(options: TranscribeOptions) -> tuple:
    return (
        options.model,
        options.compute_type,
        options.cpu_threads,
        options.batch_size > 0,  # batched on the CPU: batches side by side (`device.side_by_side`)
        options.device,
        options.device_index,
    )


class FasterWhisperEngine:
    """faster-whisper on the CPU, in one of two modes (`TranscribeOptions.batch_size`):

    - sequential (0): one 30-s window after another over the speech (found as it
      goes, see SpeechStream), each primed with the text before it. Resuming
      re-decodes the last window with the same prompt (see ResumePoint). (Stopping
      the first call at a pause after 10 s gave a quicker first text but cost 5
      WER points.)
    - batched (N > 0, the default: as accurate on real speech, and the fastest):
      faster-whisper's `BatchedInferencePipeline`, fed the clips it would cut
      itself (VAD speech joined up to 30 s) and decoding as it does (without
      timestamp tokens: decoding them in batches cost 3 to 7 WER points on real
      speech), N clips at a time (on the CPU at most two per thread: more were
      slower; on the CPU in two batches side by side, sharing the job's threads),
      each clip on its own; where someone may read the text as it comes
      (`live`), the first batch is the first clip alone, for a quick first
      text. Each clip's text is cut into segments at
      its words' timings (see `phrases`); where it stopped short of the clip's
      speech, the rest is decoded as a clip of its own. Resuming skips the clips
      already done and re-decodes the one it stopped in, dropping what was
      committed: clips are independent.
    """

    name = FASTER_WHISPER

    def __init__(self, options: TranscribeOptions) -> None:
        import ctranslate2
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        # Whisper falls back to sampling (temperature > 0) on windows it decodes badly; a fixed
        # seed makes that the same on every run, so a resumed job re-decodes what it decoded.
        ctranslate2.set_random_seed(SAMPLING_SEED)
        folder = requests.model_folder(options.model)
        self.device = device.resolve(options.device, options.device_index, options.compute_type)
        self.threads = options.cpu_threads or device.cpu_threads(1)  # on the CPU, what it loads with
        self.side_by_side = 1
        if self.device.kind == "cpu":
            self.side_by_side = device.side_by_side(self.threads, options.batch_size > 0)
        try:
            self.model = WhisperModel(
                str(folder),
                device=self.device.kind,
                device_index=self.device.index,
                compute_type=self.device.compute_type,
                cpu_threads=options.cpu_threads,
                num_workers=self.side_by_side,  # CTranslate2's replicas share the weights
            )
        except Exception as error:  # faster-whisper raises many kinds for a bad model
            raise ModelError("model.not_loaded", model=options.model, error=str(error)) from None
        self._fit_mel_bins()
        self._pipeline = BatchedInferencePipeline  # one per batch: it keeps the last word's time
        self._feature_extractor = self.model.feature_extractor
        self._loaded = _model_key(options)
        self.doubt = Doubt()  # of the last transcription, filled as its segments are decoded
        self._doubt_lock = threading.Lock()

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

    def describe(self) -> str:
        """Where it runs, for the job's log: "the CPU (int8)", "CUDA device 0 (float16)"."""
        return self.device.describe()

    def serves(self, options: TranscribeOptions) -> bool:
        """True when the loaded model is the one `options` ask for."""
        return self._loaded == _model_key(options)

    def unload(self) -> None:
        """Free the model's memory (a warm worker's, when its job asks for another model)."""
        self.model = self._feature_extractor = None

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
        self,
        audio: Prepared | np.ndarray,
        options: TranscribeOptions,
        resume: ResumePoint | None = None,
        live: bool = True,
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Segments as they are decoded, with original timestamps; after `resume` if given (`live`:
        see `Engine.transcribe`)."""
        requests.check_loaded(options, self.multilingual)
        self.doubt = Doubt()
        prepared = audio if isinstance(audio, Prepared) else self.prepare(audio, options, resume)
        if options.batch_size > 0:
            return self._batched(prepared, options, resume, live)
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
        self, prepared: Prepared, options: TranscribeOptions, resume: ResumePoint | None, live: bool
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        after = resume.after if resume is not None else -1.0
        clips = prepared.clips
        self.model.feature_extractor = self._feature_extractor  # each clip is one window
        if clips is None or clips.empty():
            return iter(()), TranscriptionInfo(options.language, prepared.duration)
        language, probability = self._language(clips, options)
        size = self._batch(options)

        def batches() -> Iterator[list[Clip]]:
            found = iter(clips)
            if live:  # the first text comes after one clip, not a batch of them
                yield list(islice(found, 1))
            while batch := list(islice(found, size)):
                yield batch

        decode = {**self._decode_options(options), "temperature": options.temperature}
        decode.update(without_timestamps=True, word_timestamps=True)  # words place the segments

        def run(batch: list[Clip]) -> Iterator[Segment]:
            # Clip k starts at k × SLOT_SECONDS, a time that floats hold exactly, and the pipeline's
            # last word before each clip is 30 s or more before it: its samples, its words'
            # times and so its segments are the same whichever batch and place it has (a resumed
            # run batches the clips differently).
            stride = int(SLOT_SECONDS * SAMPLE_RATE)
            audio = np.zeros(len(batch) * stride, dtype=np.float32)
            slots = []
            for k, clip in enumerate(batch):
                audio[k * stride : k * stride + len(clip.audio)] = clip.audio
                end = k * SLOT_SECONDS + (len(clip.audio) + 0.5) / SAMPLE_RATE  # the pipeline rounds down
                slots.append({"start": k * SLOT_SECONDS, "end": end})
            pipeline = self._pipeline(self.model)
            pipeline.last_speech_timestamp = -SLOT_SECONDS
            count = f"{len(batch)} clips at once" if len(batch) > 1 else "1 clip"
            log.info("Decoding %s to %s, %s", clock(batch[0].start), clock(batch[-1].end), count)
            segments, _ = pipeline.transcribe(
                audio,
                language=language,
                clip_timestamps=slots,
                batch_size=len(batch),
                initial_prompt=options.prompt or None,
                **decode,
            )
            for s in segments:  # one for each clip, all decoded by now
                k = round(s.seek / FRAMES_PER_SECOND / SLOT_SECONDS)
                yield from checked(batch[k], s, k * SLOT_SECONDS)

        def checked(clip: Clip, s: Any, start: float) -> Iterator[Segment]:
            """The clip's text as the batch decoded it; where that text began late or stopped short
            of the clip's speech, with the speech it left decoded as clips of their own; decoded
            again as sequential decoding would where that cannot be had (see `Clip.unheard`)."""
            if not clip.decoded_badly(s, start):
                self._doubted(len(clip.audio) / SAMPLE_RATE, s)
                yield from clip.phrases(s, start, options.word_timestamps)
                return
            parts = clip.unheard(s, start)
            if parts is None:
                yield from self._again(clip, language, options)
                return
            before, after = parts
            if before is not None:
                yield from run([before])
            left = sum(len(part.audio) for part in parts if part is not None)
            self._doubted((len(clip.audio) - left) / SAMPLE_RATE, s)
            yield from clip.phrases(s, start, options.word_timestamps)
            if after is not None:
                yield from run([after])

        def decoded() -> Iterator[list[Segment]]:
            """Each batch's segments, in order, `side_by_side` batches decoding at once; a lone
            first clip decodes alone, the rest of the machine left to finding the speech."""
            pool = ThreadPoolExecutor(self.side_by_side, thread_name_prefix="batch")
            pending: deque[Future] = deque()
            at_once = 1 if live else self.side_by_side
            try:
                for batch in batches():
                    pending.append(pool.submit(lambda batch=batch: list(run(batch))))
                    if len(pending) == at_once:
                        yield pending.popleft().result()
                        at_once = self.side_by_side
                while pending:
                    yield pending.popleft().result()
            finally:  # a job stopped: what is still decoding is not waited for
                pool.shutdown(wait=False, cancel_futures=True)

        def generate() -> Iterator[Segment]:
            with _quiet(self.model.logger):  # its lines tell of a batch's audio: slots, not the file
                for segment in chain.from_iterable(decoded()):
                    if segment.end > after + 0.01:  # else: re-decoded, and already committed
                        yield segment

        return generate(), TranscriptionInfo(language, prepared.duration, probability)

    def _doubted(self, seconds: float, s: Any) -> None:
        with self._doubt_lock:  # batches side by side add theirs from their threads
            self.doubt.add(seconds, s)

    def _batch(self, options: TranscribeOptions) -> int:
        """The clips of one batch: the job's batch size; on the CPU, no more than its threads
        decode fastest (`device.cpu_batch`), shared between the batches it decodes side by side;
        said in the job's log where that is fewer."""
        if self.device.kind != "cpu":
            return options.batch_size
        size = device.cpu_batch(options.batch_size, self.threads)
        each = -(-size // self.side_by_side)
        if self.side_by_side > 1:
            log.info("Decoding %d clips at a time: %d batches of %d side by side, sharing %d CPU threads",
                     size, self.side_by_side, each, self.threads)  # fmt: skip
        elif size < options.batch_size:
            log.info("Decoding %d clips at a time, %d per CPU thread of the job (%d)",
                     size, device.CPU_CLIPS_PER_THREAD, self.threads)  # fmt: skip
        return each

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
            self._doubted(s.end - s.start, s)
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


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """`logger`'s warnings only, for the time of the block."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


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
