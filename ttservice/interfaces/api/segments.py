"""A transcript's segments over HTTP: list them, correct one (text, speaker), put it back, read
its revisions; and the job's speakers, renamed or merged. The same rules as `ttservice edit` and
`ttservice speakers` (actions.corrections)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from ... import actions
from ...actions.corrections import MAX_SPEAKER, MAX_TEXT
from ...jobs import Runner, Segment, iso
from .context import context
from .errors import ERRORS
from .jobs import JobOut

JobId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="The job's id.")]
Index = Annotated[int, PathParam(ge=0, le=2**31 - 1, description="The segment's index: 0 is the first.")]

router = APIRouter(prefix="/api/v1", tags=["Transcripts"], responses=ERRORS)


class SegmentOut(BaseModel):
    index: int
    start: float
    end: float
    text: str
    speaker: str | None = Field(description="Who said it, where labelled or corrected.")
    edited: bool = Field(description="Corrected by a person (the original is kept).")


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, max_length=MAX_TEXT, description="The corrected text.")
    speaker: str | None = Field(None, max_length=MAX_SPEAKER, description='Who said it; "" for no one.')
    restore: bool = Field(False, description="Put the segment back as the engine wrote it.")


class Revision(BaseModel):
    kind: str = Field(description="original, edit or restore")
    text: str
    speaker: str | None
    at: str | None = Field(description="When (ISO 8601 UTC); none for the original.")


def _out(index: int, s: Segment) -> dict[str, Any]:
    return {
        "index": index,
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "speaker": s.speaker,
        "edited": s.edited,
    }


@router.get("/jobs/{job_id}/segments", response_model=list[SegmentOut], summary="The transcript's segments")
def list_segments(job_id: JobId, request: Request) -> list[dict[str, Any]]:
    ctx = context(request)
    ctx.store.get_job(job_id)
    return [_out(i, s) for i, s in enumerate(ctx.store.segments(job_id))]


@router.patch(
    "/jobs/{job_id}/segments/{index}",
    response_model=SegmentOut,
    summary="Correct a segment's text or speaker, or restore its original",
)
def patch_segment(job_id: JobId, index: Index, patch: SegmentPatch, request: Request) -> dict[str, Any]:
    ctx = context(request)
    if patch.restore:
        segment = actions.corrections.restore(ctx.store, job_id, index)
    else:
        segment = actions.corrections.edit(ctx.store, job_id, index, patch.text, patch.speaker)
    return _out(index, segment)


@router.get(
    "/jobs/{job_id}/segments/{index}/revisions",
    response_model=list[Revision],
    summary="A segment's revisions, the original first",
)
def segment_revisions(job_id: JobId, index: Index, request: Request) -> list[dict[str, Any]]:
    ctx = context(request)
    found = actions.corrections.revisions(ctx.store, job_id, index)
    return [{**r, "at": iso(r["at"])} for r in found]


class SpeakerOut(BaseModel):
    label: str = Field(description="What the segments carry: SPEAKER_N, or a name given by hand.")
    name: str | None = Field(description="The name given to the label, if any.")
    talk_seconds: float = Field(description="The length of the speaker's segments.")
    segments: int
    first_start: float = Field(description="When the speaker first speaks (s).")


class SpeakersPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rename: dict[str, Annotated[str, Field(max_length=MAX_SPEAKER)]] = Field(
        default_factory=dict, description='Speaker (label or name) to its new name; "" takes the name away.'
    )
    merge: dict[str, str] = Field(
        default_factory=dict, description="Speaker whose segments become another's."
    )


@router.get(
    "/jobs/{job_id}/speakers", response_model=list[SpeakerOut], summary="The job's speakers, talk time"
)
def list_speakers(job_id: JobId, request: Request) -> list[dict[str, Any]]:
    return actions.corrections.speakers(context(request).store, job_id)


class LabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num: int | None = Field(None, ge=1, le=20, description="How many speakers there are; found if omitted.")


@router.post(
    "/jobs/{job_id}/speakers/label",
    status_code=202,
    response_model=JobOut,
    summary="Label the job's speakers (again), without transcribing again",
)
def label_speakers(job_id: JobId, body: LabelRequest, request: Request) -> dict:
    """The finished job is queued for the service, whose worker labels its speakers under
    supervision (`phase` says "labelling speakers"; Stop works as for any job). Speakers a person
    set stay as set."""
    ctx = context(request)
    actions.corrections.relabel(ctx.store, job_id, body.num, Runner.SERVICE)
    return ctx.details(job_id)


@router.patch("/jobs/{job_id}/speakers", response_model=list[SpeakerOut], summary="Rename or merge speakers")
def patch_speakers(job_id: JobId, patch: SpeakersPatch, request: Request) -> list[dict[str, Any]]:
    store = context(request).store
    for who, name in patch.rename.items():
        actions.corrections.rename_speaker(store, job_id, who, name)
    for who, into in patch.merge.items():
        actions.corrections.merge_speakers(store, job_id, who, into)
    return actions.corrections.speakers(store, job_id)
