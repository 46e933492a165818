"""Clips: up to 30 s of speech joined as faster-whisper's batched pipeline joins it.

Batched decoding and whisper.cpp both decode a file clip by clip, each on its own:
a resumed job skips the clips done and re-decodes the one it stopped in.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate
from typing import Any

import numpy as np

from ..jobs import Segment
from .engine import COMPRESSION_LIMIT, LOGPROB_LIMIT, ResumePoint
from .samples import GrowingAudio
from .vad import SAMPLE_RATE

CLIP_SECONDS = 30.0  # Whisper hears 30 s at a time
PHRASE_ENDS = tuple(".?!。？！")  # a batched clip's text is cut into segments after these,
PHRASE_PAUSE = 1.0  # at a pause of this many seconds between words,
PHRASE_SECONDS = 10.0  # and before a word that would make a segment longer than this
# Decoded without timestamps, a clip's text can stop early (it did where one recording followed
# another inside a clip: 18 s of speech left unheard), or begin late (20 s of one voice before
# the next unheard, bench item 23); elsewhere the last word ended at most 1.4 s before the clip
# did, on every real recording we have.
UNHEARD_SECONDS = 5.0


@dataclass(frozen=True)
class Clip:
    """Up to 30 s of speech: the VAD spans (in samples) it joins, and their audio end to end."""

    spans: tuple[tuple[int, int], ...]
    audio: np.ndarray = field(repr=False, compare=False)

    @property
    def start(self) -> float:
        return self.spans[0][0] / SAMPLE_RATE

    @property
    def end(self) -> float:
        return self.spans[-1][1] / SAMPLE_RATE

    @cached_property
    def _ends(self) -> list[int]:
        """Where each span ends in the joined audio, in samples."""
        return list(accumulate(last - first for first, last in self.spans))

    def _span_of(self, t: float) -> int:
        """The span that holds time `t` of the joined audio (len(spans) past its end)."""
        return bisect_left(self._ends, t * SAMPLE_RATE)

    def original_time(self, t: float, span: int | None = None) -> float:
        """A time within this clip's joined audio, on the file's timeline: in the span that holds
        it, or counted from the start of `span` (which may put it outside that span)."""
        i = self._span_of(t) if span is None else span
        if i >= len(self.spans):
            return self.end
        before = self._ends[i - 1] if i else 0
        return float(self.spans[i][0] + t * SAMPLE_RATE - before) / SAMPLE_RATE

    def word_times(self, start: float, end: float) -> tuple[float, float]:
        """A word's times within the joined audio, on the file's timeline, both counted from the
        span that holds its middle, as sequential decoding places them: mapped each on its own,
        a word aligned over the seam of two spans ran across the silence taken out between them
        ("now." for 3.8 s, into a pause of 3 s: a subtitle shown through it)."""
        span = min(self._span_of((start + end) / 2), len(self.spans) - 1)
        return self.original_time(start, span), self.original_time(end, span)

    def decoded_badly(self, s: Any, clip_start: float) -> bool:
        """Whether the batch's text for this clip fails Whisper's own tests (a loop, or text it
        doubts), or begins UNHEARD_SECONDS or more after the clip's speech does, or stops as long
        before it ends."""
        if self.fails_whispers_tests(s):
            return True
        if not s.words:
            return len(self.audio) / SAMPLE_RATE >= UNHEARD_SECONDS
        return self._began_late(s, clip_start) or self._stopped_early(s, clip_start)

    @staticmethod
    def fails_whispers_tests(s: Any) -> bool:
        return s.compression_ratio > COMPRESSION_LIMIT or s.avg_logprob < LOGPROB_LIMIT

    def unheard(self, s: Any, clip_start: float) -> tuple[Clip | None, Clip | None] | None:
        """The speech the text left unheard, as clips of their own: before text that began late,
        the spans before the one that holds the first word; after text that stopped early, the
        spans after the one that holds the last (None for a side where nothing was left). None
        where the text fails Whisper's tests, left nothing so, or began or stopped in the middle
        of speech (UNHEARD_SECONDS or more of its span unheard: no pause to cut at).

        Each part starts and ends at a span, so with speech: cut where the words stopped, a rest
        started in a silence that tiny.en filled with "Thank you." on the two-voice espeak dialogue.
        """
        if self.fails_whispers_tests(s) or not s.words:
            return None
        before = after = None
        if self._began_late(s, clip_start):
            first = s.words[0]
            i = self._span_of((first.start + first.end) / 2 - clip_start)  # the span that holds it
            at = self._ends[i - 1] if 0 < i < len(self.spans) else None
            if at is None or first.start - clip_start - at / SAMPLE_RATE >= UNHEARD_SECONDS:
                return None
            before = Clip(self.spans[:i], self.audio[:at])
        if self._stopped_early(s, clip_start):
            last = s.words[-1]
            i = self._span_of((last.start + last.end) / 2 - clip_start)
            if i + 1 >= len(self.spans):
                return None
            at = self._ends[i]
            if at / SAMPLE_RATE - (last.end - clip_start) >= UNHEARD_SECONDS:
                return None
            after = Clip(self.spans[i + 1 :], self.audio[at:])
        return None if before is None and after is None else (before, after)

    def _began_late(self, s: Any, clip_start: float) -> bool:
        return s.words[0].start - clip_start >= UNHEARD_SECONDS

    def _stopped_early(self, s: Any, clip_start: float) -> bool:
        return len(self.audio) / SAMPLE_RATE - (s.words[-1].end - clip_start) >= UNHEARD_SECONDS

    def phrases(self, s: Any, clip_start: float, keep_words: bool) -> Iterator[Segment]:
        """A decoded clip (times within the batch's audio) as segments on the file's timeline.

        The pipeline gives times to 10 ms; each is taken back to 10 ms within the clip, so that
        it is the same wherever in its batch the clip was (60.0 + 4.62 less 60.0 is not 4.62)."""
        at = []
        for w in s.words or []:
            start, end = self.word_times(round(w.start - clip_start, 2), round(w.end - clip_start, 2))
            at.append({"start": start, "end": end, "word": w.word, "probability": w.probability})
        if not at and s.text.strip():  # no word could be aligned: the text spans the clip
            yield Segment(self.start, self.end, s.text.strip())
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
