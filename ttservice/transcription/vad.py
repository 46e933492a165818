"""The speech of a file, found by Silero VAD a block at a time ahead of the decoder.

faster-whisper finds the speech of the whole file before it decodes anything:
0.65 s for three minutes, ~12 s for an hour, all of it before the first text.
`SpeechStream` runs the same model in a thread of its own, 16 s of audio at a
time with the model's state carried over, which gives the very probabilities of
one whole-file call, and keeps 60 s of speech ahead of what the decoder has read.
Speech is appended to what the decoder reads as soon as it is certain; a span's
padded end is final when the next span begins. The audio itself may still be
being decoded (`GrowingAudio`): the finder waits for each block it needs. The spans are faster-whisper's
(`get_speech_timestamps` with default `VadOptions`), and the tests hold them equal.
"""

from __future__ import annotations

import bisect
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .samples import GROWTH, GrowingAudio

SAMPLE_RATE = 16_000
WINDOW = 512  # samples the VAD model judges at a time
CONTEXT = 64  # samples of the previous window it also sees
BLOCK_WINDOWS = 500  # windows per model call (16 s)
AHEAD = 60 * SAMPLE_RATE  # speech found ahead of what the decoder has asked for
PADDING = 160  # zero samples after the speech, as faster-whisper's feature extractor adds


@dataclass(frozen=True)
class Thresholds:
    """VadOptions() in samples: speech from 0.5, silence below 0.35, a span ends after 2 s of it.

    Every span heard is kept (min_speech_duration_ms 0), so a span is final as soon as the next begins.
    """

    speech: float = 0.5
    silence: float = 0.35
    min_silence: int = 2 * SAMPLE_RATE
    pad: int = int(0.4 * SAMPLE_RATE)


class SpanFinder:
    """Raw speech spans from probabilities fed in order, told as they unfold:
    ("start", sample), ("heard", up to sample: speech for certain), ("end", sample)."""

    def __init__(self, length: int, thresholds: Thresholds = Thresholds()) -> None:
        self.length, self.t = length, thresholds
        self.index = 0  # of the next window
        self.start: int | None = None  # of the span being heard
        self.silence_from = 0  # where the silence that may end it began (0: none yet)

    def feed(self, probabilities: np.ndarray) -> Iterator[tuple[str, int]]:
        for p in probabilities:
            at = WINDOW * self.index
            self.index += 1
            if p >= self.t.speech:
                self.silence_from = 0
                if self.start is None:
                    self.start = at
                    yield "start", at
                    continue
            if p < self.t.silence and self.start is not None:
                self.silence_from = self.silence_from or at
                if at - self.silence_from >= self.t.min_silence:
                    yield "end", self.silence_from
                    self.start, self.silence_from = None, 0
        if self.start is not None:  # the span ends no earlier than where silence began, or here
            yield "heard", min(self.silence_from or WINDOW * self.index, self.length)

    def finish(self) -> Iterator[tuple[str, int]]:
        if self.start is not None:
            yield "end", self.length
            self.start = None


class SpeechStream:
    """The file's speech end to end, growing while a thread finds it; `vad=False` is all of it.

    Spans are padded as faster-whisper pads them: by 0.4 s, or by half the gap when
    two are closer than 0.8 s; so a span's end is final when the next one starts.
    """

    def __init__(
        self, audio: np.ndarray | GrowingAudio, vad: bool = True, thresholds: Thresholds = Thresholds()
    ) -> None:
        self.audio = audio if isinstance(audio, GrowingAudio) else GrowingAudio.of(audio)
        self.vad, self.thresholds = vad, thresholds
        self.spans: list[tuple[int, int]] = []  # final, on the file's timeline
        self._speech = np.zeros(self.audio.capacity + PADDING, np.float32)
        self._filled = 0
        self._taken_to = 0  # file sample the speech has been copied up to
        self._open: list[int] | None = None  # [start, raw end or None] of the last span
        self._ends: list[int] = []  # speech-timeline end of each span (the last one growing)
        self._silence_before: list[int] = []  # samples of the file dropped before each span
        self._changed = threading.Condition()
        self._wanted = 0  # speech samples the decoder has asked for
        self._done = self._closed = False
        self.error: BaseException | None = None
        find = self._find if vad else self._take_all
        threading.Thread(target=self._run, args=(find,), name="vad", daemon=True).start()

    @property
    def done(self) -> bool:
        with self._changed:
            return self._done

    def samples(self, start: int, stop: int) -> tuple[np.ndarray, int | None]:
        """Speech samples [start, stop), waiting until they are found; and the padded length once known."""
        with self._changed:
            self._wanted = max(self._wanted, stop)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._done or self._filled >= stop)
            if self.error is not None:
                raise self.error
            total = self._filled if self._done else None
            return self._speech[start : min(stop, self._filled)], total

    def wait(self) -> int:
        """The padded length of the speech, once all of it is found."""
        return self.samples(0, sys.maxsize)[1] or 0

    def close(self) -> None:
        """Stop finding speech nobody will read."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self.audio.close()

    def original_time(self, t: float, span: int | None = None, is_end: bool = False) -> float:
        """A time on the speech timeline on the file's; an end on a boundary stays in its span."""
        if not self.vad or not self._ends:
            return t
        span = self.span_of(t, is_end) if span is None else span
        return round(self._silence_before[span] / SAMPLE_RATE + t, 2)

    def span_of(self, t: float, is_end: bool = False) -> int:
        sample = int(t * SAMPLE_RATE)
        at = bisect.bisect_left(self._ends, sample)
        if is_end and at < len(self._ends) and self._ends[at] == sample:
            return at
        return min(bisect.bisect_right(self._ends, sample), len(self._ends) - 1)

    def _run(self, find: Callable[[], bool]) -> None:
        """The thread: find the speech, then mark it done; an error goes to the decoder waiting on us."""
        try:
            if not find():
                return  # closed: nobody reads on
        except BaseException as error:
            self.error = error
        self._finish()

    def _find(self) -> bool:
        from faster_whisper.vad import get_vad_model

        session = get_vad_model().session
        finder = SpanFinder(0, self.thresholds)
        h = c = np.zeros((1, 1, 128), np.float32)
        first, count = 0, None  # windows in all: known once the audio is decoded
        while count is None or first < count:
            if not self._wait_for_demand():
                return False
            finder.length = self.audio.available((first + BLOCK_WINDOWS) * WINDOW)
            if self.audio.done:  # get_speech_timestamps pads to whole windows, at least one sample
                finder.length = self.audio.length  # final (it may have grown since)
                count = finder.length // WINDOW + 1
            windows = self._model_input(first, count)
            probabilities, h, c = session.run(None, {"input": windows, "h": h, "c": c})
            for kind, at in finder.feed(probabilities.reshape(-1)):
                self._event(kind, at)
            first += BLOCK_WINDOWS
        for kind, at in finder.finish():
            self._event(kind, at)
        return True

    def _take_all(self) -> bool:
        """No VAD: all of the audio is speech, taken as it is decoded."""
        self._event("start", 0)
        while not self.audio.done:
            if not self._wait_for_demand():
                return False
            self._event("heard", self.audio.available(self._taken_to + BLOCK_WINDOWS * WINDOW))
        self._event("end", self.audio.available())
        return True

    def _model_input(self, first: int, count: int | None) -> np.ndarray:
        """Windows [first, first + BLOCK_WINDOWS), each after the last CONTEXT samples of the one before."""
        last = first + BLOCK_WINDOWS if count is None else min(first + BLOCK_WINDOWS, count)
        lo, hi = first * WINDOW, last * WINDOW
        samples = self.audio[lo - CONTEXT if first else 0 : hi]
        if not first:
            samples = np.concatenate([np.zeros(CONTEXT, np.float32), samples])
        if len(samples) < hi - lo + CONTEXT:  # the last block: zero padding, and as faster-whisper's
            samples = np.pad(samples, (0, hi - lo + CONTEXT - len(samples)))  # model call zeroes the
            samples[-CONTEXT:] = 0  # end of the last window in place, so do we
        windows = np.lib.stride_tricks.sliding_window_view(samples, WINDOW + CONTEXT)[::WINDOW]
        return np.ascontiguousarray(windows, dtype=np.float32)

    def _wait_for_demand(self) -> bool:
        """Keep AHEAD of the decoder, no further: the model's threads need the cores. False: closed."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or self._filled < self._wanted + AHEAD)
            return not self._closed

    def _event(self, kind: str, at: int) -> None:
        with self._changed:
            if kind == "start":
                self._start_span(at)
            elif kind == "heard":
                self._take(at)
            else:
                self._take(at)
                self._open[1] = at  # padded once the next span starts, or the file ends
            self._changed.notify_all()

    def _start_span(self, at: int) -> None:
        pad, start = self.thresholds.pad, max(0, at - self.thresholds.pad)
        if self._open is not None:
            previous_end = self._open[1]
            gap = at - previous_end
            if gap < 2 * pad:
                end, start = previous_end + gap // 2, max(0, at - gap // 2)
            else:
                end = min(self.audio.length, previous_end + pad)
            self._close_span(end)
        dropped = start - (self.spans[-1][1] if self.spans else 0)
        self._silence_before.append((self._silence_before[-1] if self._silence_before else 0) + dropped)
        self._ends.append(self._filled)
        self._open, self._taken_to = [start, None], start

    def _close_span(self, end: int) -> None:
        self._take(end)
        self.spans.append((self._open[0], end))
        self._open = None

    def _take(self, to: int) -> None:
        """Copy the file's samples up to `to` onto the end of the speech."""
        if to > self._taken_to:
            count = to - self._taken_to
            if self._filled + count + PADDING > len(self._speech):  # longer than the media declared
                grown = np.zeros(int((self._filled + count + PADDING) * GROWTH), np.float32)
                grown[: self._filled] = self._speech[: self._filled]
                self._speech = grown
            self._speech[self._filled : self._filled + count] = self.audio[self._taken_to : to]
            self._filled += count
            self._taken_to = to
            self._ends[-1] = self._filled

    def _finish(self) -> None:
        with self._changed:
            if self._open is not None and self._open[1] is not None:
                self._close_span(min(self.audio.length, self._open[1] + self.thresholds.pad))
            self._filled += PADDING  # zeros already
            self._done = True
            self._changed.notify_all()
