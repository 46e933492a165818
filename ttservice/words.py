"""Word boundaries in any language: at spaces, and inside Thai text by a word segmenter.

Thai is written without spaces between words, so Whisper's word timestamps for Thai come
one token (often one letter) at a time, and a subtitle cannot break a Thai line at a space.
PyThaiNLP's `newmm` (dictionary-based maximal matching, its default) finds the words.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

THAI = re.compile(r"[\u0E00-\u0E7F]")
SPACED = re.compile(r"\S+\s*|\s+")


def has_thai(text: str) -> bool:
    return THAI.search(text) is not None


@cache
def _segmenter():
    from pythainlp.tokenize import word_tokenize  # ~0.6 s the first time: its dictionary loads

    return word_tokenize


def split_words(text: str) -> list[str]:
    """`text` cut into words, each with the spaces that follow it; joined, they give `text` back."""
    if not has_thai(text):
        return SPACED.findall(text)
    units: list[str] = []
    for token in _segmenter()(text, engine="newmm", keep_whitespace=True):
        if token.isspace() and units:
            units[-1] += token
        elif units and not units[-1][-1:].isspace() and not has_thai(token) and not has_thai(units[-1]):
            units[-1] += token  # a number or a Latin word the segmenter cut in two ("3.5", "e-mail")
        else:
            units.append(token)
    return units


def search_terms(text: str) -> list[str]:
    """The words of a search query: split at spaces, and unspaced Thai into its words."""
    terms: list[str] = []
    for chunk in text.split():
        if has_thai(chunk):
            terms += [w.strip() for w in split_words(chunk) if w.strip()]
        else:
            terms.append(chunk)
    return terms


def merge_words(words: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Whisper's per-token word timings for a Thai segment, merged into the segmenter's words.

    Each word starts when the first token it holds starts and ends when its last one ends;
    its probability is the lowest of theirs (one unsure letter makes an unsure word).
    """
    text = "".join(w["word"] for w in words)
    owner: list[int] = []  # the index in `words` of each character of `text`
    for i, w in enumerate(words):
        owner += [i] * len(w["word"])
    merged: list[dict[str, Any]] = []
    at = 0
    for unit in split_words(text):
        # A unit's tokens are those under its letters, not under the space after it: that space
        # often starts the next word's token (" wanting").
        lead = len(unit) - len(unit.lstrip())
        shown = len(unit.rstrip()) or len(unit)
        first, last = owner[at + min(lead, shown - 1)], owner[at + shown - 1]
        at += len(unit)
        if merged and merged[-1]["_last"] >= first:
            # The token under this word's start also held the previous word's end: one word.
            merged[-1].update(word=merged[-1]["word"] + unit, end=words[last]["end"], _last=last)
            continue
        probabilities = [
            w["probability"] for w in words[first : last + 1] if w.get("probability") is not None
        ]
        merged.append(
            {
                "start": words[first]["start"],
                "end": words[last]["end"],
                "word": unit,
                "probability": min(probabilities) if probabilities else None,
                "_last": last,
            }
        )
    for word in merged:
        del word["_last"]
    return merged
