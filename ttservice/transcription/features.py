"""Whisper's log-mel features, computed a window at a time as the decoder reads them.

faster-whisper computes the features of its whole input before the first window:
a second for three minutes of speech, ~1 GB of transient memory for an hour, and
not before all of the speech has been found. `WindowFeatures` stands in for that
array: each 30-s block of frames is computed from the speech samples it covers
when a window first reads it (the very frames of the whole-file STFT), and each
window is normalised on its own, its loudest bin setting the floor, as Whisper's
30-s training clips and the batched pipeline's clips are.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .vad import PADDING, SpeechStream

UNBOUNDED_SAMPLES = 2**40  # the frame count faster-whisper is shown before the length is known


class TailReached(Exception):
    """A window reads past the end of the speech, whose length was not known when decoding began.

    Windows that end before the end of the speech decode the same either way; the
    last ones must know where it ends, so decoding starts again at `seek` (frames).
    """

    def __init__(self, seek: int) -> None:
        super().__init__(seek)
        self.seek = seek


class GivenFeatures:
    """faster-whisper's feature extractor, handing back features made beforehand for its input."""

    def __init__(self, extractor: Any, features: WindowFeatures) -> None:
        self._extractor, self._features = extractor, features

    def __getattr__(self, name: str) -> Any:
        return getattr(self._extractor, name)

    def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None) -> Any:
        return self._features


class WindowFeatures:
    """Stands in for the (n_mels, frames) feature array of a stream's speech.

    With `exact` False the speech is still being found, and the frame count is an
    upper bound (the whole file's, or unbounded while it is being decoded); a read
    that would differ from the exact array's raises TailReached.
    """

    def __init__(self, extractor: Any, stream: SpeechStream, exact: bool) -> None:
        self._stream, self._exact = stream, exact
        self._log_mel = _BlockedLogMel(extractor, stream)
        self._hop, self._window_frames = extractor.hop_length, extractor.nb_max_frames
        if exact:
            total = stream.wait()
        elif stream.audio.done:  # the speech is no longer than the file
            total = stream.audio.length + PADDING
        else:  # the file is still being decoded: any bound is too short for some file
            total = UNBOUNDED_SAMPLES
        self.start, self.stop = 0, total // self._hop
        self.shape = (extractor.mel_filters.shape[0], self.stop)

    def __getitem__(self, key: tuple) -> Any:
        start, stop, step = key[-1].indices(self.shape[-1])
        if step != 1:
            raise IndexError("window features are read in steps of one frame")
        start, stop = self.start + start, self.start + max(start, stop)
        if stop - start > self._window_frames:  # a view, as in `features[..., seek:]`
            view = copy.copy(self)
            view.start, view.stop, view.shape = start, stop, (self.shape[0], stop - start)
            return view
        if not self._exact:
            self._check_tail(start)
        log_spec = self._log_mel.frames_between(start, stop)
        if log_spec.size:
            log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0

    def _check_tail(self, start: int) -> None:
        """faster-whisper reads min(one window, frames left) from `start`: the same here while a full
        window and one frame more are left; otherwise only the exact length decodes the same."""
        _, total = self._stream.samples(0, (start + self._window_frames + 2) * self._hop)
        if total is not None and total // self._hop - 1 - start < self._window_frames:
            raise TailReached(start)


class _BlockedLogMel:
    """log10 mel power of a stream's speech, in 30-s blocks computed when first read."""

    def __init__(self, extractor: Any, stream: SpeechStream) -> None:
        self.extractor, self.stream = extractor, stream
        self.block_frames = extractor.nb_max_frames
        self.window = np.hanning(extractor.n_fft + 1)[:-1].astype(np.float32)
        self.blocks: dict[int, np.ndarray] = {}

    def frames_between(self, start: int, stop: int) -> np.ndarray:
        size = self.block_frames
        first, last = start // size, max(start, stop - 1) // size
        for k in [k for k in self.blocks if k < first]:
            del self.blocks[k]  # windows only move forward
        for k in range(first, last + 1):
            if k not in self.blocks:
                self.blocks[k] = self._block(k * size, (k + 1) * size)
        joined = np.concatenate([self.blocks[k] for k in range(first, last + 1)], axis=1)
        return joined[:, start - first * size : stop - first * size]

    def _block(self, start: int, stop: int) -> np.ndarray:
        """The frames the extractor's centred STFT of all the speech has, from their samples only."""
        fx, n_fft, hop = self.extractor, self.extractor.n_fft, self.extractor.hop_length
        samples, total = self.stream.samples(max(0, start * hop - n_fft // 2), (stop - 1) * hop + n_fft // 2)
        if total is not None:
            stop = min(stop, total // hop)
            if stop <= start:
                return np.zeros((fx.mel_filters.shape[0], 0), np.float32)
        lo, hi = start * hop - n_fft // 2, (stop - 1) * hop + n_fft // 2
        samples = samples[: hi - max(lo, 0)]
        end = total if total is not None else hi
        samples = np.pad(samples, (max(0, -lo), max(0, hi - end)), mode="reflect")
        stft = fx.stft(samples, n_fft, hop, window=self.window, center=False, return_complex=True)
        mel = fx.mel_filters @ (np.abs(stft.astype(np.complex64)) ** 2)
        return np.log10(np.clip(mel, a_min=1e-10, a_max=None))
