"""OpenAI-compatible routes: /v1/audio/transcriptions, /v1/audio/translations, /v1/models.

An OpenAI client pointed at TTService works unchanged: the same multipart fields, the
same response shapes and streaming events, errors in OpenAI's shape. Each request is
a job (runner `api`) that the service runs like any other; the request waits for it,
and a client that disconnects before the end stops it.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from ...actions import models as model_actions
from ...jobs import Job, JobStatus, Segment
from ...messages import Message
from ...models.languages import LANGUAGES
from ...transcription import export
from ...transcription.subtitles import CueRules
from .context import Context, context
from .errors import ERRORS, ApiError, sse_schema
from .follow import ClientGone, connected, follow
from .submit import form_schema, parse_form, submit

DEFAULT_MODEL = "whisper-1"  # what OpenAI clients send; it means TTService's default model
JOB_HEADER = "X-TTService-Job"
DISCONNECTED = Message("job.stopped_because", why=Message("why.client_disconnected"))

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], responses=ERRORS)


class AudioForm(BaseModel):
    model: str = Field(min_length=1, description="A model name; whisper-1 means the server's default.")
    prompt: str | None = Field(None, description="Text to guide the style or the spelling of names.")
    response_format: Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"] = "json"
    temperature: float = Field(0.0, ge=0.0, le=1.0)
    known_speaker_names: list[Annotated[str, Field(max_length=100)]] = Field(
        [],
        alias="known_speaker_names[]",
        max_length=20,
        description="With diarized_json: the speakers' names, in the order they first speak.",
    )


class TranscriptionForm(AudioForm):
    language: str | None = Field(None, description="The language's ISO-639-1 code; detected if omitted.")
    timestamp_granularities: list[Literal["segment", "word"]] = Field(
        ["segment"], alias="timestamp_granularities[]", description="With verbose_json: word adds words[]."
    )
    stream: bool = False


class Transcript(BaseModel):
    text: str


class VerboseSegment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]


class Word(BaseModel):
    word: str
    start: float
    end: float


class VerboseTranscript(BaseModel):
    task: str
    language: str
    duration: float
    text: str
    segments: list[VerboseSegment]
    words: list[Word] | None = None


class DiarizedSegment(BaseModel):
    type: Literal["transcript.text.segment"] = "transcript.text.segment"
    id: str
    start: float
    end: float
    text: str
    speaker: str


class DiarizedTranscript(BaseModel):
    task: Literal["transcribe"] = "transcribe"
    duration: float
    text: str
    segments: list[DiarizedSegment]


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ttservice"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


def _audio_responses(streaming: bool) -> dict:
    content: dict[str, Any] = {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/Transcript"},
                    {"$ref": "#/components/schemas/VerboseTranscript"},
                ]
            }
        },
        "text/plain": {"schema": {"type": "string"}},
    }
    if streaming:
        content["text/event-stream"] = {"schema": sse_schema()}
    return {200: {"description": "The transcript, in the format asked for.", "content": content}}


@router.post(
    "/audio/transcriptions",
    summary="Transcribe audio into the input language",
    response_class=Response,
    responses=_audio_responses(streaming=True),
    openapi_extra=form_schema(TranscriptionForm),
)
async def transcriptions(request: Request) -> Response:
    return await _audio(request, "transcribe", TranscriptionForm)


@router.post(
    "/audio/translations",
    summary="Translate audio into English",
    response_class=Response,
    responses=_audio_responses(streaming=False),
    openapi_extra=form_schema(AudioForm),
)
async def translations(request: Request) -> Response:
    return await _audio(request, "translate", AudioForm)


async def _audio(request: Request, task: str, form_type: type[AudioForm]) -> Response:
    ctx = context(request)
    upload, form = await parse_form(request, ctx.settings, form_type)
    words = "word" in getattr(form, "timestamp_granularities", ())
    diarized = form.response_format == "diarized_json"
    job = await submit(
        ctx,
        upload,
        model=None if form.model == DEFAULT_MODEL else form.model,
        language=getattr(form, "language", None),
        task=task,
        word_timestamps=words,
        prompt=form.prompt,
        temperature=form.temperature,
        speakers="auto" if diarized else None,
    )
    headers = {JOB_HEADER: str(job.id)}
    if getattr(form, "stream", False):
        return StreamingResponse(
            _events(request, ctx, job.id), media_type="text/event-stream", headers=headers
        )
    done = False
    try:
        async for change in follow(ctx.store, job.id, connected(request), lease=True):
            job = change.job
        done = True
    except ClientGone:
        return Response(status_code=499)  # nobody reads it: the client went away
    finally:
        if not done:  # the client went away, or the server is stopping: nobody waits for the job
            ctx.stop_soon(job.id, DISCONNECTED)
    _raise_unless_completed(job)
    if diarized:
        return await to_thread.run_sync(_diarized, ctx, job, form.known_speaker_names, headers)
    segments = ctx.store.segments(job.id)
    return _render(form.response_format, task, job, segments, words, headers, ctx.settings.subtitles)


def _diarized(ctx: Context, job: Job, names: list[str], headers: dict[str, str]) -> Response:
    """OpenAI's diarized_json: each segment with its speaker, named from `names` in the order the
    speakers first speak, else A, B, C, ... as OpenAI's diarizing model names them."""
    found = ctx.store.speakers(job.id)
    for speaker, name in zip(found, names, strict=False):
        ctx.store.name_speaker(job.id, speaker["label"], name)
    letters = {s["label"]: chr(ord("A") + i) for i, s in enumerate(found) if i < 26}
    segments = ctx.store.segments(job.id)
    answer = DiarizedTranscript(
        duration=job.duration or 0.0,
        text=" ".join(s.text for s in segments),
        segments=[
            DiarizedSegment(
                id=f"seg_{i}",
                start=round(s.start, 3),
                end=round(s.end, 3),
                text=s.text,
                speaker=letters.get(s.speaker or "", s.speaker or ""),
            )  # fmt: skip
            for i, s in enumerate(segments)
        ],
    )
    return JSONResponse(answer.model_dump(), headers=headers)


def _raise_unless_completed(job: Job) -> None:
    if job.status is JobStatus.COMPLETED:
        return
    if job.status is JobStatus.INTERRUPTED:
        raise ApiError(503, Message("job.interrupted_resume_api", job_id=job.id), "server_error")
    if job.status is JobStatus.CANCELLED:
        raise ApiError(409, Message("job.stopped_before_finished", job_id=job.id, reason=job.reason or ""))
    raise ApiError(
        400 if job.exit_code == 2 else 500,
        job.reason or Message("job.failed_without_reason", job_id=job.id),
        "invalid_request_error" if job.exit_code == 2 else "server_error",
    )


def _render(
    fmt: str,
    task: str,
    job: Job,
    segments: list[Segment],
    words: bool,
    headers: dict[str, str],
    rules: CueRules,
) -> Response:
    text = " ".join(s.text for s in segments)
    if fmt == "json":
        return JSONResponse(Transcript(text=text).model_dump(), headers=headers)
    if fmt == "text":
        return PlainTextResponse(text + "\n", headers=headers)
    if fmt in ("srt", "vtt"):
        return PlainTextResponse(export.render(fmt, segments, job, rules), headers=headers)
    language = job.detected_language or job.options.language or ""
    verbose = VerboseTranscript(
        task="translate" if task == "translate" else "transcribe",
        language="english" if task == "translate" else LANGUAGES.get(language, language).lower(),
        duration=job.duration or 0.0,
        text=text,
        segments=[
            VerboseSegment(
                id=i,
                seek=int(round((s.window or 0.0) * 100)),
                start=round(s.start, 3),
                end=round(s.end, 3),
                text=s.text,
                tokens=s.tokens or [],
            )
            for i, s in enumerate(segments)
        ],
        words=[
            Word(word=w["word"].strip(), start=round(w["start"], 3), end=round(w["end"], 3))
            for s in segments
            for w in s.words or []
        ]
        if words
        else None,
    )
    return JSONResponse(verbose.model_dump(exclude_none=True), headers=headers)


async def _events(request: Request, ctx: Context, job_id: int) -> AsyncIterator[str]:
    """OpenAI's transcription events: a delta per committed segment, then the whole text."""
    texts: list[str] = []
    finished = False
    try:
        async for change in follow(ctx.store, job_id, connected(request), lease=True):
            for _, segment in change.segments:
                delta = segment.text if not texts else " " + segment.text
                texts.append(segment.text)
                yield _sse({"type": "transcript.text.delta", "delta": delta})
            if change.empty:
                yield ": keep-alive\n\n"
            job = change.job
        finished = True
        if job.status is JobStatus.COMPLETED:
            yield _sse({"type": "transcript.text.done", "text": " ".join(texts)})
        else:
            try:
                _raise_unless_completed(job)
            except ApiError as error:
                yield _sse({"type": "error", "error": error.detail()})
    except ClientGone:
        pass
    finally:
        if not finished:
            ctx.stop_soon(job_id, DISCONNECTED)


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.get("/models", response_model=ModelList, summary="The installed models")
def list_models(request: Request) -> ModelList:
    ctx = context(request)
    return ModelList(data=_models(ctx))


@router.get("/models/{model}", response_model=Model, summary="One installed model")
def get_model(model: str, request: Request) -> Model:
    for entry in _models(context(request)):
        if entry.id == model:
            return entry
    raise ApiError(404, Message("model.not_installed_here", model=model), param="model")


def _models(ctx: Context) -> list[Model]:
    infos = [m for m in model_actions.list_models(ctx.store, ctx.settings) if m.installed]
    created = {m.name: int(m.path.stat().st_mtime) if m.path and m.path.exists() else 0 for m in infos}
    entries = [Model(id=DEFAULT_MODEL, created=created.get(ctx.settings.model, int(time.time())))]
    return entries + [Model(id=m.name, created=created[m.name]) for m in infos]
