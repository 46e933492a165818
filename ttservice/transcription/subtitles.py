"""Subtitle cues from segments: lines broken at word boundaries (Thai ones too), within a line
length, a number of lines and a cue duration.

Whisper's segments run up to 30 s and, in Thai, a hundred characters or more: as one cue
each, they fill the screen and stay too long. A segment that breaks the rules is cut at word
boundaries into several cues; each cue's time comes from the words' timestamps where the job
has them, else from the characters' share of the segment's time.
"""

from __future__ import annotations

import math
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..jobs import Segment
from ..words import split_words


@dataclass(frozen=True)
class CueRules:
    """Common subtitle guidelines (BBC, Netflix): 42 characters a line, two lines, 7 seconds."""

    line_chars: int = 42
    lines: int = 2
    cue_seconds: float = 7.0

    @classmethod
    def from_settings(cls, settings) -> CueRules:
        return cls(settings.subtitle_line_chars, settings.subtitle_lines, settings.subtitle_cue_seconds)


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]
    speaker: str | None = None  # its segment's

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class _Clock:
    """The time at a character offset of a segment's text: its word's, or the characters' share."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.offsets: list[int] = []  # where each word starts in the text
        words = segment.words or []
        joined = "".join(w["word"] for w in words)
        if words and joined.strip() == segment.text:
            at = len(joined.lstrip()) - len(joined)
            for word in words:
                self.offsets.append(at)
                at += len(word["word"])
        self.words = words if self.offsets else []

    def at(self, offset: int, end: bool = False) -> float:
        if self.words:
            if end:  # the last character shown, not the space after it (the next word's)
                offset -= 1
                while offset > 0 and self.segment.text[offset].isspace():
                    offset -= 1
            i = max(bisect_right(self.offsets, offset) - 1, 0)
            return self.words[i]["end" if end else "start"]
        s = self.segment
        length = max(len(s.text), 1)
        return s.start + (s.end - s.start) * min(offset, length) / length


def width(text: str) -> int:
    """Characters as a screen shows them: Thai vowel and tone marks sit above or below a letter."""
    return sum(1 for c in text if not unicodedata.combining(c) and unicodedata.category(c) != "Mn")


def _wrap(units: Sequence[str], limit: int) -> list[str]:
    """Words into lines of up to `limit` characters wide; a wider word has a line of its own."""
    lines: list[str] = []
    line = ""
    for unit in units:
        if line and width((line + unit).rstrip()) > limit:
            lines.append(line.rstrip())
            line = ""
        line += unit
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _lines(units: list[str], limit: int) -> tuple[str, ...]:
    """A cue's words in as few lines as fit, of even lengths where that still fits."""
    lines = _wrap(units, limit)
    if len(lines) > 1:
        even = ["".join(run).strip() for run in _balanced(units, len(lines))]
        if len(even) == len(lines) and all(width(line) <= limit for line in even):
            return tuple(even)
    return tuple(lines)


def _balanced(units: list[str], n: int) -> list[list[str]]:
    """`units` in `n` runs of about the same width, cut at the word boundaries nearest the even shares."""
    widths = [width(u) for u in units]
    total = sum(widths) or 1
    ends, done = [], 0
    for i, w in enumerate(widths):
        done += w
        ends.append((i + 1, done / total))  # a cut after unit i leaves this share behind it
    cuts = [0]
    for k in range(1, n):
        later = [(abs(share - k / n), i) for i, share in ends if cuts[-1] < i < len(units)]
        if later:
            cuts.append(min(later)[1])
    cuts.append(len(units))
    return [units[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def segment_cues(segment: Segment, rules: CueRules) -> list[Cue]:
    """One cue for a segment within the rules; else the fewest cues that are, of even length
    (so that no cue is a two-word remnant of the one before)."""
    text = segment.text.strip()
    if not text:
        return []
    units = split_words(text)
    if not segment.timed:  # an earlier app's whole transcript: one cue, since no time is known inside it
        return [Cue(segment.start, segment.end, tuple(_wrap(units, rules.line_chars)))]
    clock = _Clock(Segment(segment.start, segment.end, text, segment.words))
    shown = rules.line_chars * rules.lines
    n = max(math.ceil(width(text) / shown), math.ceil((segment.end - segment.start) / rules.cue_seconds), 1)
    while True:
        runs = _balanced(units, n)
        made, at = [], 0
        for run in runs:
            chars = sum(len(u) for u in run)
            made.append(Cue(clock.at(at), clock.at(at + chars, end=True), _lines(run, rules.line_chars)))
            at += chars
        fits = all(len(c.lines) <= rules.lines and c.end - c.start <= rules.cue_seconds for c in made)
        if fits or len(runs) == len(units) or n >= len(units):
            break
        n += 1
    if len(made) == 1:  # one cue: exactly the segment's time
        return [Cue(segment.start, segment.end, made[0].lines)]
    return made


def cues(segments: Sequence[Segment], rules: CueRules | None = None) -> list[Cue]:
    rules = rules or CueRules()
    return [
        replace(cue, speaker=segment.speaker) for segment in segments for cue in segment_cues(segment, rules)
    ]
