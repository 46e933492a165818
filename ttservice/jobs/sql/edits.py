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
from collections.abc import Mapping, Sequence
from typing import Any

from ..record import JobStatus, Segment
from .base import SQLStore
from .lifecycle import INSERT_SEGMENT_SQL, segment_row

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
            if "speaker" in changes and new_speaker:  # a name given to a label stands for that label
                new_speaker = self._label(conn, job_id, new_speaker) or new_speaker
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

    # --- speakers ---------------------------------------------------------------------------

    def _label(self, conn: Any, job_id: int, who: str) -> str | None:
        """The label segments carry for `who`: a label of the job's, or the label a name was given to."""
        row = conn.execute(
            "SELECT label FROM speaker_names WHERE job_id = ? AND name = ? ORDER BY label LIMIT 1",
            (job_id, who),
        ).fetchone()
        if row is not None:
            return row["label"]
        row = conn.execute(
            "SELECT 1 FROM transcription_segments WHERE job_id = ? AND speaker = ? LIMIT 1", (job_id, who)
        ).fetchone()
        return who if row is not None else None

    def name_speaker(self, job_id: int, who: str, name: str) -> bool:
        """Give speaker `who` (a label, or its current name) the name `name` everywhere in the job
        ("" takes the name away); False if the job has no such speaker."""
        with self.db.transaction() as conn:
            label = self._label(conn, job_id, who)
            if label is None:
                return False
            conn.execute("DELETE FROM speaker_names WHERE job_id = ? AND label = ?", (job_id, label))
            if name and name != label:
                conn.execute(
                    "INSERT INTO speaker_names (job_id, label, name) VALUES (?, ?, ?)", (job_id, label, name)
                )
        return True

    def merge_speakers(self, job_id: int, who: str, into: str) -> bool:
        """Make every segment of speaker `who` one of speaker `into`'s (each a label or a name);
        False if the job lacks either."""
        with self.db.transaction() as conn:
            label, target = self._label(conn, job_id, who), self._label(conn, job_id, into)
            if label is None or target is None:
                return False
            if label != target:
                conn.execute(
                    "UPDATE transcription_segments SET speaker = ? WHERE job_id = ? AND speaker = ?",
                    (target, job_id, label),
                )
                conn.execute("DELETE FROM speaker_names WHERE job_id = ? AND label = ?", (job_id, label))
        return True

    def speakers(self, job_id: int) -> list[dict[str, Any]]:
        """The job's speakers in order of first appearance: label, name (None until named), talk
        time (seconds), segments, and when each first speaks."""
        rows = self.db.read(
            'SELECT s.speaker AS label, n.name AS name, sum(s."end" - s.start) AS talk, count(*) AS segments,'
            " min(s.start) AS first FROM transcription_segments s LEFT JOIN speaker_names n"
            " ON n.job_id = s.job_id AND n.label = s.speaker WHERE s.job_id = ? AND s.speaker IS NOT NULL"
            " GROUP BY s.speaker, n.name ORDER BY min(s.start), s.speaker",
            (job_id,),
        )
        return [
            {
                "label": r["label"],
                "name": r["name"],
                "talk_seconds": r["talk"],
                "segments": r["segments"],
                "first_start": r["first"],
            }  # fmt: skip
            for r in rows
        ]

    def jobs_with_speakers(self, limit: int = 50) -> list[int]:
        """The newest jobs whose transcript has speakers, newest first."""
        rows = self.db.read(
            "SELECT DISTINCT job_id FROM transcription_segments WHERE speaker IS NOT NULL"
            " ORDER BY job_id DESC LIMIT ?",
            (limit,),
        )
        return [r["job_id"] for r in rows]

    def label_speakers(
        self, job_id: int, labelled: Sequence[tuple[int, Sequence[Segment]]], attempt: int | None = None
    ) -> bool:
        """Write a labelling: for each segment (by its id), the segments it becomes (one: its
        speaker; several: it is cut where the speaker changes). A speaker a person set stays,
        and a corrected segment is never cut. With `attempt`, only while that run of the job
        is processing; False if it is not."""
        with self.db.transaction() as conn:
            if attempt is not None:
                row = conn.execute(
                    "SELECT 1 FROM transcription_jobs WHERE id = ? AND status = ? AND attempt = ?",
                    (job_id, JobStatus.PROCESSING.value, attempt),
                ).fetchone()
                if row is None:
                    return False
            for segment_id, pieces in labelled:
                row = conn.execute(
                    "SELECT original, edited_speaker FROM transcription_segments WHERE id = ? AND job_id = ?",
                    (segment_id, job_id),
                ).fetchone()
                if row is None or row["edited_speaker"]:
                    continue
                if len(pieces) == 1 or row["original"]:
                    conn.execute(
                        "UPDATE transcription_segments SET speaker = ? WHERE id = ?",
                        (pieces[0].speaker, segment_id),
                    )
                    continue
                conn.execute("DELETE FROM transcription_segments WHERE id = ?", (segment_id,))
                conn.executemany(INSERT_SEGMENT_SQL, [segment_row(job_id, s) for s in pieces])
        return True
