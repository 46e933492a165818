"""Transcript exports: plain text, SubRip, WebVTT and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..jobs import Job, Segment
from ..words import has_thai
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
    """A line a segment; with speakers, a paragraph a speaker's turn ("Name: ..."), a blank line
    between turns. An unnamed segment in a labelled transcript keeps its own paragraph."""
    if not any(s.speaker for s in segments):
        return "".join(s.text + "\n" for s in segments)
    turns: list[tuple[str | None, list[str]]] = []
    for s in segments:
        if turns and s.speaker and turns[-1][0] == s.speaker:
            turns[-1][1].append(s.text)
        else:
            turns.append((s.speaker, [s.text]))
    paragraphs = [(f"{who}: " if who else "") + _joined(texts) for who, texts in turns]
    return "\n\n".join(paragraphs) + "\n"


def _joined(texts: list[str]) -> str:
    """Segments' texts as one paragraph: a space between them, none where Thai meets Thai
    (Thai puts spaces between sentences, not between the pieces Whisper cuts)."""
    text = texts[0]
    for piece in texts[1:]:
        glue = "" if has_thai(text[-1:]) and has_thai(piece[:1]) else " "
        text += glue + piece
    return text


def to_srt(segments: Sequence[Segment], rules: CueRules | None = None) -> str:
    """SubRip; with speakers, the name leads each cue ("Name: ...")."""
    blocks = [
        f"{i}\n{timestamp(c.start, ',')} --> {timestamp(c.end, ',')}\n"
        + (f"{c.speaker}: " if c.speaker else "")
        + f"{c.text}\n"
        for i, c in enumerate(cues(segments, rules), 1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: Sequence[Segment], rules: CueRules | None = None) -> str:
    """WebVTT; with speakers, each cue in a voice span (`<v Name>`)."""
    blocks = [
        f"{timestamp(c.start, '.')} --> {timestamp(c.end, '.')}\n"
        + (f"<v {_voice(c.speaker)}>" if c.speaker else "")
        + f"{c.text}\n"
        for c in cues(segments, rules)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _voice(name: str) -> str:
    """A name as a WebVTT voice annotation may hold it: no '>' and no line break."""
    return " ".join(name.replace(">", "").replace("&", "&amp;").replace("<", "&lt;").split())


def to_json(segments: Sequence[Segment], job: Job | None = None) -> str:
    data = {
        "job": job.to_dict() if job else None,
        "text": " ".join(s.text for s in segments),
        "segments": [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text,
                **({"speaker": s.speaker} if s.speaker else {}),
                **({"edited": True} if s.edited else {}),
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
