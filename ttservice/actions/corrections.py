"""Corrections to a transcript, whatever the interface: `ttservice edit` and `ttservice
speakers`, History's segment table and speakers panel, and the API's PATCH of a segment and of
a job's speakers call these.

A segment is named by its index in the transcript (0 the first, in time order), as the
JSON export and the API list them. Its text and speaker can be corrected, and put back
as the engine wrote them; every correction is a revision, kept.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import RequestError, SegmentNotFound
from ..jobs import Job, Runner, Segment, Store

MAX_TEXT = 10_000  # characters a corrected segment may hold (a segment is up to 30 s of speech)
MAX_SPEAKER = 100


def edit(
    store: Store, job_id: int, index: int, text: str | None = None, speaker: str | None = None
) -> Segment:
    """Correct the text and/or speaker ("" for no speaker) of segment `index`; the segment as it
    now reads. One sentence (RequestError) for what cannot be done."""
    store.get_job(job_id)  # one sentence if there is no such job
    changes: dict[str, Any] = {}
    if text is not None:
        text = " ".join(text.split())
        if not text:
            raise RequestError("edit.empty_text")
        if len(text) > MAX_TEXT:
            raise RequestError("edit.text_too_long", limit=MAX_TEXT)
        changes["text"] = text
    if speaker is not None:
        speaker = speaker.strip()
        if len(speaker) > MAX_SPEAKER:
            raise RequestError("edit.speaker_too_long", limit=MAX_SPEAKER)
        changes["speaker"] = speaker or None
    if not changes:
        raise RequestError("edit.nothing")
    if not store.edit_segment(job_id, index, changes):
        raise _no_segment(store, job_id, index)
    return store.segments(job_id)[index]


def restore(store: Store, job_id: int, index: int) -> Segment:
    """Put segment `index` back as the engine wrote it; the segment as it now reads."""
    store.get_job(job_id)
    if not store.restore_segment(job_id, index):
        raise _no_segment(store, job_id, index)
    return store.segments(job_id)[index]


def revisions(store: Store, job_id: int, index: int) -> list[dict[str, Any]]:
    store.get_job(job_id)
    found = store.segment_revisions(job_id, index)
    if not found:
        raise _no_segment(store, job_id, index)
    return found


def _no_segment(store: Store, job_id: int, index: int) -> SegmentNotFound:
    count = len(store.segments(job_id))
    if count == 0:
        return SegmentNotFound("edit.no_segments", job_id=job_id)
    return SegmentNotFound("edit.no_such_segment", job_id=job_id, index=index, last=count - 1)


# --- speakers ----------------------------------------------------------------------------------


def speakers(store: Store, job_id: int) -> list[dict[str, Any]]:
    """The job's speakers in order of first appearance: label, name, talk time, segments."""
    store.get_job(job_id)
    return store.speakers(job_id)


def rename_speaker(store: Store, job_id: int, who: str, name: str) -> list[dict[str, Any]]:
    """Name speaker `who` (SPEAKER_N, or the name it has) `name` everywhere in the job; "" takes
    the name away. The job's speakers after it."""
    store.get_job(job_id)
    name = " ".join(name.split())
    if len(name) > MAX_SPEAKER:
        raise RequestError("edit.speaker_too_long", limit=MAX_SPEAKER)
    if not store.name_speaker(job_id, who.strip(), name):
        raise _no_speaker(store, job_id, who)
    return store.speakers(job_id)


def merge_speakers(store: Store, job_id: int, who: str, into: str) -> list[dict[str, Any]]:
    """Speaker `who`'s segments become speaker `into`'s (each SPEAKER_N or a name)."""
    store.get_job(job_id)
    if not store.merge_speakers(job_id, who.strip(), into.strip()):
        missing = who if not any(_is(s, who) for s in store.speakers(job_id)) else into
        raise _no_speaker(store, job_id, missing)
    return store.speakers(job_id)


def _is(speaker: dict[str, Any], who: str) -> bool:
    return who.strip() in (speaker["label"], speaker["name"])


def _no_speaker(store: Store, job_id: int, who: str) -> SegmentNotFound:
    known = ", ".join(s["name"] or s["label"] for s in store.speakers(job_id))
    if not known:
        return SegmentNotFound("edit.no_speakers", job_id=job_id)
    return SegmentNotFound("edit.no_such_speaker", job_id=job_id, speaker=who, known=known)


def relabel(store: Store, job_id: int, num: int | None, runner: Runner) -> Job:
    """Queue a finished job to label (or label again) its speakers from its media, without
    transcribing again: "auto", or `num` speakers. Its worker does it under supervision like
    any run (progress, Stop, its log); a speaker a person set stays. The job as queued."""
    from dataclasses import replace
    from pathlib import Path

    from ..transcription import speakers

    job = store.get_job(job_id)
    if not job.finished:
        raise RequestError("speakers.job_running", job_id=job_id, status=job.status.value)
    who = speakers.checked(str(num) if num is not None else "auto")
    if not job.media_path or not Path(job.media_path).is_file():
        raise RequestError("speakers.no_media", job_id=job_id)
    if not store.segments(job_id):
        raise SegmentNotFound("edit.no_segments", job_id=job_id)
    if job.progress < 1.0:
        raise RequestError("speakers.transcript_not_whole", job_id=job_id, status=job.status.value)
    if not store.requeue_for_labelling(job_id, runner, replace(job.options, speakers=who)):
        raise RequestError("speakers.job_running", job_id=job_id, status=store.get_job(job_id).status.value)
    return store.get_job(job_id)
