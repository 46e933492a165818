"""Decoded audio that can be read while it is still being decoded.

The worker decodes the media in a thread and appends the samples here; the
speech finder reads them as they arrive, so the first text of a long file does
not wait for all of it to be decoded (0.55 s for 30 minutes of WAV, more for
compressed media).
"""

from __future__ import annotations

import sys
import threading

import numpy as np

GROWTH = 1.5  # the buffer grows by half when the media is longer than it declared


class GrowingAudio:
    """Mono float32 samples, appended by one thread and read by others.

    Readers wait for the samples they need with `available()`, then slice; a
    slice of samples already there stays valid when the buffer grows. The writer
    keeps only a little ahead of what readers have asked for (`wait_for_room`), so
    that decoding does not take the cores from the first window's transcription.
    """

    def __init__(self, capacity: int = 0) -> None:
        self._data = np.empty(max(capacity, 1), np.float32)
        self._length = 0
        self._done = self._closed = False
        self._wanted = 0  # the most samples a reader has asked for
        self.error: BaseException | None = None
        self._changed = threading.Condition()

    @classmethod
    def of(cls, samples: np.ndarray) -> GrowingAudio:
        """Samples decoded already, without a copy."""
        audio = cls()
        audio._data, audio._length, audio._done = samples, len(samples), True
        return audio

    def append(self, chunk: np.ndarray) -> None:
        with self._changed:
            end = self._length + len(chunk)
            if end > len(self._data):
                grown = np.empty(max(end, int(len(self._data) * GROWTH)), np.float32)
                grown[: self._length] = self._data[: self._length]
                self._data = grown
            self._data[self._length : end] = chunk
            self._length = end
            self._changed.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        """No more samples; with `error`, readers raise it."""
        with self._changed:
            self._done, self.error = True, error
            self._changed.notify_all()

    def wait_for_room(self, ahead: int) -> bool:
        """For the writer: wait until it is less than `ahead` samples ahead of the readers. False: closed."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or self._length < self._wanted + ahead)
            return not self._closed

    def close(self) -> None:
        """Nobody will read more: the writer may stop."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def available(self, stop: int = sys.maxsize) -> int:
        """How many samples there are, once `stop` of them are there, decoding has ended, or it was closed."""
        with self._changed:
            self._wanted = max(self._wanted, stop)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._done or self._closed or self._length >= stop)
            if self.error is not None:
                raise self.error
            return self._length

    @property
    def done(self) -> bool:
        with self._changed:
            return self._done

    @property
    def capacity(self) -> int:
        return len(self._data)

    @property
    def length(self) -> int:
        """Samples decoded so far (all of them once `done`)."""
        with self._changed:
            return self._length

    def __getitem__(self, key: slice) -> np.ndarray:
        return self._data[: self._length][key]

    def result(self) -> np.ndarray:
        """All the samples, once decoding has ended."""
        return self._data[: self.available()]
