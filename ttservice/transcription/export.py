"""Transcript exports: plain text, SubRip, WebVTT and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..jobs import Job, Segment
from .subtitles import CueRules, cues

FORMATS = ("txt", "srt", "vtt", "json")


def clock(seconds: float | None) -> str:
    """h:mm:ss for durations in logs and pages; "-" when unknown."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def timestamp(seconds: float, separator: str) -> str:
    millis = int(round(max(seconds, 0.0) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_txt(segments: Sequence[Segment]) -> str:
    return "".join(s.text + "\n" for s in segments)


def to_srt(segments: Sequence[Segment], rules: CueRules | None = None) -> str:
    blocks = [
        f"{i}\n{timestamp(c.start, ',')} --> {timestamp(c.end, ',')}\n{c.text}\n"
        for i, c in enumerate(cues(segments, rules), 1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: Sequence[Segment], rules: CueRules | None = None) -> str:
    blocks = [
        f"{timestamp(c.start, '.')} --> {timestamp(c.end, '.')}\n{c.text}\n" for c in cues(segments, rules)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_json(segments: Sequence[Segment], job: Job | None = None) -> str:
    data = {
        "job": job.to_dict() if job else None,
        "text": " ".join(s.text for s in segments),
        "segments": [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text,
                **({"words": s.words} if s.words else {}),
                **({} if s.timed else {"timed": False}),
            }
            for s in segments
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def render(
    fmt: str, segments: Sequence[Segment], job: Job | None = None, rules: CueRules | None = None
) -> str:
    """`segments` in a format; subtitles follow `rules` (the settings' line length, lines and
    cue duration; the common guidelines' when None)."""
    if fmt == "txt":
        return to_txt(segments)
    if fmt == "srt":
        return to_srt(segments, rules)
    if fmt == "vtt":
        return to_vtt(segments, rules)
    if fmt == "json":
        return to_json(segments, job)
    raise ValueError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
