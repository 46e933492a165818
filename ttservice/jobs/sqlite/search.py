"""SQLite's search condition: the FTS5 trigram index, and LIKE for words shorter than a trigram."""

from __future__ import annotations

from ..sql.terms import like_pattern, query_terms


def search_clause(text: str) -> tuple[str, list[str], bool]:
    """A condition on `transcription_jobs` for the jobs with a segment that holds every word of
    `text`, anywhere, in any language; its values; and whether it goes through the trigram index.

    Words come from spaces and, in unspaced Thai, from the word segmenter. A word of three
    characters or more is looked up in the trigram index; a shorter one (งบ, AI) is looked for
    with LIKE among the segments the others matched, or among all when it is alone. Every word
    is quoted, so no input is a syntax error; control characters, which FTS5 takes for the end
    of a string, are dropped.
    """
    long, short = query_terms(text)
    if not long and not short:
        return "", [], False
    likes = " AND ".join("s.text LIKE ? ESCAPE '\\'" for _ in short)
    patterns = [like_pattern(t) for t in short]
    if not long:
        # Each job's own segments, newest job first: a page of a common word stops at its 20th job.
        exists = "SELECT 1 FROM transcription_segments s WHERE s.job_id = transcription_jobs.id"
        return f"EXISTS ({exists} AND {likes})", patterns, False
    match = " AND ".join('"' + t.replace('"', '""') + '"' for t in long)
    sql = (
        "id IN (SELECT s.job_id FROM segments_trigram f JOIN transcription_segments s ON s.id = f.rowid"
        " WHERE segments_trigram MATCH ?" + (f" AND {likes}" if likes else "") + ")"
    )
    return sql, [match, *patterns], True
