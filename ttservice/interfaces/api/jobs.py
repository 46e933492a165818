"""The jobs API, /api/v1: what the CLI does, over HTTP, with the same guarantees.

A job submitted here is queued for the service (runner `api`) and the request
returns at once (201); the client follows it with GET /jobs/{id} or the SSE stream
/jobs/{id}/events, and gets its transcript in any export format. Stopping, resuming,
deleting and the sweep are the CLI's own actions.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ... import actions
from ...actions import models as model_actions
from ...jobs import JobStatus, Runner
from ...jobs.record import error_fields
from ...messages import Message
from ...supervision.service import running_service
from ...transcription import export
from .context import Context, context
from .errors import ERRORS, ApiError, sse_schema
from .follow import ClientGone, connected, follow
from .health import PROBE_WAIT, Checked, Health, answer, check_store
from .submit import form_schema, parse_form, submit

JobId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="The job's id.")]

router = APIRouter(prefix="/api/v1", tags=["Jobs"], responses=ERRORS)


class JobForm(BaseModel):
    model: str | None = Field(None, description="A model name or folder; the server's default if omitted.")
    language: str | None = Field(None, description="A language code or name; detected if omitted.")
    task: Literal["transcribe", "translate"] = "transcribe"
    word_timestamps: bool = False
    prompt: str | None = None
    temperature: float = Field(0.0, ge=0.0, le=1.0)
    speakers: str | None = Field(
        None,
        max_length=8,
        description="Label who speaks: auto, or the number of speakers (needs the diarizer).",
    )
    engine: Literal["auto", "faster-whisper", "whisper.cpp"] | None = Field(
        None,
        description="auto (whisper.cpp on Apple Silicon, faster-whisper elsewhere), faster-whisper or"
        " whisper.cpp; the server's TTSERVICE_ENGINE if omitted.",
    )
    callback_url: str | None = Field(
        None, description="POSTed the finished job (needs TTSERVICE_API_CALLBACKS=1 on the server)."
    )


class JobOut(BaseModel):
    """A job as `ttservice show --json` gives it."""

    model_config = ConfigDict(extra="allow")
    id: int
    status: JobStatus
    filename: str | None
    model: str
    progress: float
    runner: str
    error: str | None
    text: str | None = None


class JobList(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


class Logs(BaseModel):
    lines: list[str]


class Resumed(BaseModel):
    job: JobOut
    resumed_from: float


class Deleted(BaseModel):
    id: int
    deleted: bool = True


class ModelOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    installed: bool


class DownloadOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    status: str
    path: str | None = None


class Removed(BaseModel):
    name: str
    removed: str


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobOut,
    summary="Queue a file for transcription",
    openapi_extra=form_schema(JobForm),
)
async def create_job(request: Request) -> dict:
    ctx = context(request)
    upload, form = await parse_form(request, ctx.settings, JobForm)
    if form.callback_url is not None:
        _check_callback(form.callback_url, ctx.settings.api_callbacks, upload)
    job = await submit(
        ctx,
        upload,
        callback_url=form.callback_url,
        **form.model_dump(exclude={"callback_url"}),
    )
    return await to_thread.run_sync(ctx.details, job.id)


def _check_callback(url: str, allowed: bool, upload: Any) -> None:
    problem = None
    if not allowed:
        problem = Message("api.callbacks_off")
    elif urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        problem = Message("api.callback_scheme")
    if problem:
        upload.discard()
        raise ApiError(400, problem, param="callback_url")


@router.get("/jobs", response_model=JobList, summary="Jobs, newest first")
def list_jobs(
    request: Request,
    status: JobStatus | None = None,
    search: str | None = Query(
        None,
        max_length=500,
        description="Words of the transcript, in any language (Thai inside compounds too).",
    ),
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=2**31),
) -> dict:
    ctx = context(request)
    search = search.strip() if search and search.strip() else None
    total, rows = ctx.store.page_of_jobs(status=status, search=search, limit=limit, offset=offset)
    stall = ctx.settings.stall_timeout
    return {
        "jobs": [j.to_dict() | {"stalled": j.stalled(stall)} for j in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One job, with its process and transcript")
def get_job(job_id: JobId, request: Request) -> dict:
    ctx = context(request)
    return ctx.details(job_id)


@router.post("/jobs/{job_id}/stop", response_model=JobOut, summary="Stop a queued or running job")
def stop_job(job_id: JobId, request: Request) -> dict:
    ctx = context(request)
    if not ctx.pm.kill_process(job_id):
        job = ctx.store.get_job(job_id)
        raise ApiError(409, Message("job.not_running", job_id=job_id, status=job.status.value))
    return ctx.details(job_id)


@router.post(
    "/jobs/{job_id}/resume",
    status_code=202,
    response_model=Resumed,
    summary="Continue a stopped, failed or interrupted job after its last saved segment",
)
def resume_job(job_id: JobId, request: Request) -> dict:
    ctx = context(request)
    point = actions.resume(ctx.store, job_id, Runner.API)
    return {"job": ctx.details(job_id), "resumed_from": point}


@router.delete("/jobs/{job_id}", response_model=Deleted, summary="Delete a finished job, its upload and log")
def delete_job(job_id: JobId, request: Request) -> dict:
    ctx = context(request)
    actions.delete(ctx.store, ctx.settings, job_id)
    return {"id": job_id}


@router.get(
    "/jobs/{job_id}/transcript",
    response_class=Response,
    summary="The transcript (partial for a stopped or failed job)",
    responses={
        200: {
            "description": "The transcript in the format asked for.",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
def transcript(
    job_id: JobId, request: Request, format: Literal["txt", "srt", "vtt", "json"] = "txt"
) -> Response:
    ctx = context(request)
    job = ctx.store.get_job(job_id)
    text = export.render(format, ctx.store.segments(job_id), job, ctx.settings.subtitles)
    media = "application/json" if format == "json" else "text/plain"
    disposition = f'inline; filename="job-{job_id}.{format}"'
    return Response(text, media_type=media, headers={"Content-Disposition": disposition})


@router.get("/jobs/{job_id}/logs", response_model=Logs, summary="The end of the job's log")
def job_logs(job_id: JobId, request: Request, tail: int = Query(200, ge=1, le=100_000)) -> dict:
    ctx = context(request)
    ctx.store.get_job(job_id)
    return {"lines": ctx.pm.get_logs(job_id, tail)}


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    summary="Server-sent events: status, progress and segment, until the job has finished",
    responses={
        200: {
            "description": "An SSE stream.",
            "content": {"text/event-stream": {"schema": sse_schema("segment", "progress", "status")}},
        }
    },
)
def job_events(job_id: JobId, request: Request) -> StreamingResponse:
    ctx = context(request)
    ctx.store.get_job(job_id)  # a 404 now, not an empty stream
    return StreamingResponse(_events(request, job_id), media_type="text/event-stream")


async def _events(request: Request, job_id: int) -> AsyncIterator[str]:
    ctx = context(request)
    try:
        async for change in follow(ctx.store, job_id, connected(request)):
            job = change.job
            for index, segment in change.segments:
                data = {"index": index, "start": segment.start, "end": segment.end, "text": segment.text}
                yield _event("segment", data)
            if change.progress_changed:
                yield _event(
                    "progress", {"progress": job.progress, "processed_seconds": job.processed_seconds}
                )
            if change.status_changed:
                yield _event(
                    "status",
                    {"status": job.status.value, "error": job.error, **error_fields(job.error_detail)},
                )
            if change.empty:
                yield ": keep-alive\n\n"
    except ClientGone:
        return


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.get("/stats", summary="The figures of the Statistics page")
def stats(request: Request) -> dict[str, Any]:
    return context(request).store.stats()


@router.post("/cleanup", summary="Run the orphan sweep now")
def cleanup(request: Request) -> dict[str, Any]:
    return context(request).pm.cleanup_orphaned_processes().to_dict()


@router.get(
    "/health",
    response_model=Health,
    summary="Is the service alive: its dispatcher, the database, free slots; answers within a second",
    responses={503: {"model": Health, "description": "Something is wrong; the fields say what."}},
)
def health(request: Request, response: Response) -> dict:
    ctx = context(request)
    return _health(ctx, ctx.probe.check(PROBE_WAIT), response)


@router.get(
    "/ready",
    response_model=Health,
    summary="Is the service ready for work: as /health, but waits for the database to answer",
    responses={503: {"model": Health, "description": "Not ready; the fields say what."}},
)
def ready(request: Request, response: Response) -> dict:
    ctx = context(request)
    return _health(ctx, check_store(ctx.store), response)


def _health(ctx: Context, checked: Checked, response: Response) -> dict:
    dispatcher = running_service(ctx.settings) is not None
    response.status_code, body = answer(checked, dispatcher, ctx.settings.max_concurrent_jobs)
    return body


@router.get(
    "/models", response_model=list[ModelOut], summary="Every model: installed, known or being downloaded"
)
def list_models(request: Request) -> list[dict]:
    ctx = context(request)
    return [m.to_dict() for m in model_actions.list_models(ctx.store, ctx.settings)]


@router.post(
    "/models/{name}/download",
    status_code=202,
    response_model=DownloadOut,
    summary="Download a model (the service runs the download)",
)
def download_model(name: str, request: Request, response: Response) -> dict:
    ctx = context(request)
    result = model_actions.request_download(ctx.store, name)
    if isinstance(result, Path):
        response.status_code = 200
        return {"model": name, "status": "installed", "path": str(result)}
    return result.to_dict() | {"status": result.status.value}


@router.delete("/models/{name}", response_model=Removed, summary="Remove a downloaded model")
def remove_model(name: str, request: Request) -> dict:
    ctx = context(request)
    return {"name": name, "removed": str(model_actions.remove(ctx.store, ctx.settings, name))}
