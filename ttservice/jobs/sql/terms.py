"""A search query as both stores' search conditions take it: its words, long and short."""

from __future__ import annotations

from ...words import search_terms

TRIGRAM = 3  # the shortest text either store's trigram index can find


def query_terms(text: str) -> tuple[list[str], list[str]]:
    """The query's words (at spaces, and inside unspaced Thai), split into those a trigram index
    can find and those shorter; control characters, which no index can take, are spaces."""
    terms = search_terms("".join(c if c.isprintable() or c.isspace() else " " for c in text))
    return [t for t in terms if len(t) >= TRIGRAM], [t for t in terms if len(t) < TRIGRAM]


def like_pattern(term: str) -> str:
    """A LIKE pattern for `term` anywhere, its wildcards only themselves (escape: backslash)."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
