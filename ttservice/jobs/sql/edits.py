"""Corrections to a transcript, `segment_edits` (a part of both stores).

An edit changes the segment's own `text` and `speaker`, so that everything that
reads segments (exports, search, Statistics, the API, History) reads the
corrected transcript with no second path. What the engine wrote is kept in the
segment's `original` (JSON: its text, speaker and word timings, written by the first
edit and cleared by a restore; a corrected text has no word timings),
and every edit and restore is a row of `segment_edits`: a revision, with its
time. A resumed run only adds segments after the last one, and a re-run is a new
job, so neither touches an edited segment; labelling speakers again skips the
segments whose speaker a person set (`edited_speaker`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .base import SQLStore

EDITABLE = ("text", "speaker")


class SegmentEdits(SQLStore):
    def _nth_segment(self, conn: Any, job_id: int, index: int) -> Any:
        """The segment at `index` (0-based) in the transcript's order, or None."""
        if index < 0:
            return None
        cur = conn.execute(
            "SELECT id, text, speaker, words_json, original, edited_speaker FROM transcription_segments"
            " WHERE job_id = ? ORDER BY start, id LIMIT 1 OFFSET ?",
            (job_id, index),
        )
        return cur.fetchone()

    def edit_segment(
        self, job_id: int, index: int, changes: Mapping[str, str | None], now: float | None = None
    ) -> bool:
        """Correct the segment at `index`: `changes` has its new "text", its new "speaker" (None:
        no speaker), or both. The first edit keeps the original; each edit is a revision. False if
        there is no such segment."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
        at = now or self.clock()
        with self.db.transaction() as conn:
            row = self._nth_segment(conn, job_id, index)
            if row is None:
                return False
            original = row["original"] or json.dumps(
                {"text": row["text"], "speaker": row["speaker"], "words_json": row["words_json"]}
            )
            new_text = changes.get("text", row["text"])
            new_speaker = changes.get("speaker", row["speaker"])
            by_hand = int(bool(row["edited_speaker"]) or "speaker" in changes)
            # The words' timings were the engine's text's: a corrected text has none (its cues
            # are timed by its characters' share of the segment); a restore brings them back.
            words = row["words_json"] if new_text == row["text"] else None
            conn.execute(
                "UPDATE transcription_segments SET text = ?, speaker = ?, words_json = ?, original = ?,"
                " edited_speaker = ? WHERE id = ?",
                (new_text, new_speaker, words, original, by_hand, row["id"]),
            )
            conn.execute(
                "INSERT INTO segment_edits (job_id, segment_id, text, speaker, restored, created_at)"
                " VALUES (?, ?, ?, ?, 0, ?)",
                (job_id, row["id"], new_text, new_speaker, at),
            )
        return True

    def restore_segment(self, job_id: int, index: int, now: float | None = None) -> bool:
        """Put back what the engine (or the labelling) wrote; a revision too. False if there is no
        such segment; True, changing nothing, for one never edited."""
        at = now or self.clock()
        with self.db.transaction() as conn:
            row = self._nth_segment(conn, job_id, index)
            if row is None:
                return False
            if not row["original"]:
                return True
            original = json.loads(row["original"])
            conn.execute(
                "UPDATE transcription_segments SET text = ?, speaker = ?, words_json = ?, original = NULL,"
                " edited_speaker = 0 WHERE id = ?",
                (original["text"], original["speaker"], original.get("words_json"), row["id"]),
            )
            conn.execute(
                "INSERT INTO segment_edits (job_id, segment_id, text, speaker, restored, created_at)"
                " VALUES (?, ?, ?, ?, 1, ?)",
                (job_id, row["id"], original["text"], original["speaker"], at),
            )
        return True

    def segment_revisions(self, job_id: int, index: int) -> list[dict[str, Any]]:
        """The segment's revisions, oldest first: what the engine wrote, then each edit and restore."""
        with self.db.transaction() as conn:
            row = self._nth_segment(conn, job_id, index)
        if row is None:
            return []
        first = (
            json.loads(row["original"])
            if row["original"]
            else {"text": row["text"], "speaker": row["speaker"]}
        )
        revisions = [{"text": first["text"], "speaker": first["speaker"], "kind": "original", "at": None}]
        edits = self.db.read(
            "SELECT text, speaker, restored, created_at FROM segment_edits WHERE segment_id = ? ORDER BY id",
            (row["id"],),
        )
        for e in edits:
            kind = "restore" if e["restored"] else "edit"
            revisions.append(
                {"text": e["text"], "speaker": e["speaker"], "kind": kind, "at": e["created_at"]}
            )
        return revisions
