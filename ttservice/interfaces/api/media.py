"""GET /internal/media/{job_id}: a running job's media, for the agent of another machine that runs it.

The request shows the token the job's attempt was claimed with (`X-TTService-Media-Token`),
not an API key: only the worker of the attempt that runs now can read the file, and
only while it runs. The answer carries the media's SHA-256 (recorded the first time the
file is sent, and its ETag), so that the agent checks what it received, and `Range`
requests (with `If-Range`) let it continue a fetch that was cut. Not in the public
schema: no client but an agent has a use for it.
"""

from __future__ import annotations

from pathlib import Path

from anyio import to_thread
from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse

from ...jobs.files import sha256_of
from ...messages import Message
from ...transcription.remote import SHA256_HEADER, TOKEN_HEADER
from .context import context
from .errors import ApiError

PREFIX = "/internal/media/"

router = APIRouter(include_in_schema=False)


@router.get(PREFIX + "{job_id}")
async def media(
    request: Request,
    job_id: int,
    token: str = Header("", alias=TOKEN_HEADER),
) -> FileResponse:
    ctx = context(request)
    grant = await to_thread.run_sync(ctx.store.media_grant, job_id, token) if token else None
    if grant is None:
        raise ApiError(403, Message("media.only_for_its_worker", job_id=job_id), type="permission_error")
    path, sha256 = Path(grant[0]), grant[1]
    if not path.is_file():
        raise ApiError(410, Message("media.gone_from_central", job_id=job_id))
    if sha256 is None:  # the first machine to ask: the hash every later attempt is held to
        sha256 = await to_thread.run_sync(sha256_of, path)
        sha256 = await to_thread.run_sync(ctx.store.record_media_sha256, job_id, sha256)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        headers={"ETag": f'"{sha256}"', SHA256_HEADER: sha256},
    )
