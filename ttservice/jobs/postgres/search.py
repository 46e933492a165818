"""PostgreSQL's search condition: pg_trgm's index behind ILIKE, and a plain look for short words."""

from __future__ import annotations

from ..sql.terms import like_pattern, query_terms


def search_clause(text: str) -> tuple[str, list[str], bool]:
    """A condition on `transcription_jobs` for the jobs with a segment that holds every word of
    `text`, anywhere, in any case; its values; and whether it goes through the trigram index.

    The words are the SQLite store's (spaces, and the segmenter in unspaced Thai). Words of
    three characters or more are ILIKE patterns, which the GIN trigram index answers; a
    shorter one is looked for with `strpos`, which the planner cannot take for an index
    condition, among the segments the others matched (or among each job's own when alone).
    """
    long, short = query_terms(text)
    if not long and not short:
        return "", [], False
    conditions = ["s.text ILIKE ?" for _ in long] + [_contains(t) for t in short]
    values = [like_pattern(t) for t in long] + short
    if not long:
        exists = "SELECT 1 FROM transcription_segments s WHERE s.job_id = transcription_jobs.id"
        return f"EXISTS ({exists} AND {' AND '.join(conditions)})", values, False
    return (
        f"id IN (SELECT s.job_id FROM transcription_segments s WHERE {' AND '.join(conditions)})",
        values,
        True,
    )


def _contains(term: str) -> str:
    """A segment holds `term` in any case: a word with no case (Thai, digits) is looked for as it
    is, six times faster than through lower() (docs/performance.md, item 13)."""
    if term.lower() == term.upper():
        return "strpos(s.text, ?) > 0"
    return "strpos(lower(s.text), lower(?)) > 0"
