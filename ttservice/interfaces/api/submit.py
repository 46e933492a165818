"""From a multipart request to a queued job: the form read and checked, the file handed over.

The routes declare their form in OpenAPI (`form_schema`) and read it here
(`parse_form`), since the body is streamed to disk rather than parsed by FastAPI.
"""

from __future__ import annotations

from typing import Any, TypeVar

from anyio import to_thread
from fastapi import Request
from pydantic import BaseModel, ValidationError

from ... import actions
from ...exceptions import TTServiceError
from ...jobs import Job, Runner, TranscribeOptions
from ...messages import Message
from .context import Context
from .errors import ApiError, from_error
from .uploads import Upload, receive

Form = TypeVar("Form", bound=BaseModel)


def form_schema(form: type[BaseModel]) -> dict[str, Any]:
    """The multipart request body of a route, for OpenAPI: a binary `file` and the form's fields."""
    schema = form.model_json_schema(by_alias=True)
    properties = {"file": {"type": "string", "format": "binary", "description": "The audio or video file."}}
    properties.update(schema.get("properties", {}))
    required = ["file", *schema.get("required", [])]
    body = {"type": "object", "properties": properties, "required": required}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": body}}}}


async def parse_form(request: Request, settings: Any, form: type[Form]) -> tuple[Upload, Form]:
    """The upload on disk and its fields checked against `form`; a bad field is a 400 of one sentence."""
    upload = await receive(request, settings)
    try:
        if upload.path is None:
            raise ApiError(400, Message("api.no_file"), param="file")
        fields: dict[str, Any] = {}
        for name, values in upload.fields.items():
            list_field = name.endswith("[]")
            fields[name] = values if list_field else values[-1]
        try:
            return upload, form.model_validate(fields)
        except ValidationError as error:
            first = error.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            raise ApiError(
                400, Message("api.invalid_value", param=param, detail=first["msg"]), param=param
            ) from None
    except ApiError:
        upload.discard()
        raise


async def submit(
    ctx: Context,
    upload: Upload,
    callback_url: str | None = None,
    **choices: Any,
) -> Job:
    """Queue the upload as an API job; a refusal is an ApiError (with the failed job's id, if one exists)."""
    assert upload.path is not None
    options = TranscribeOptions.from_settings(ctx.settings, **choices)
    name = upload.filename or "upload"

    def queue() -> tuple[int, TTServiceError | None]:
        return actions.submit_saved(
            ctx.store, ctx.settings, upload.path, name, options, Runner.API, callback_url, upload.sha256
        )

    try:
        job_id, refusal = await to_thread.run_sync(queue)
    except TTServiceError as error:  # a RequestError (no job exists), a StoreError
        upload.discard()
        raise from_error(error) from None
    if refusal is not None:  # a job failed at once: not media, or a model that cannot be had
        error = from_error(refusal)
        error.message = f"{error.message.rstrip('.')} (job {job_id})."
        raise error
    return ctx.store.get_job(job_id)
