"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, for every route.

`message` is one English sentence a user can act on, `code` its code in TTService's registry
(`ttservice/messages`), for programs. Nothing reaches a client as a traceback: an unexpected
exception is logged here and answered with a 500 of one sentence.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ... import messages
from ...exceptions import (
    JobNotFound,
    MediaError,
    MediaTooLarge,
    ModelError,
    NotMedia,
    RequestError,
    SegmentNotFound,
    StoreError,
    TTServiceError,
)
from ...messages import Message, Said

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


# Declared on every route, so that clients and schemathesis know an error's shape.
ERRORS = {
    "4XX": {"model": ErrorResponse, "description": "The request cannot be carried out; `message` says why."},
    "5XX": {"model": ErrorResponse, "description": "TTService could not carry it out; `message` says why."},
}


def sse_schema(*names: str) -> dict:
    """One server-sent event, as OpenAPI describes a text/event-stream: its name and JSON data."""
    event = {"type": "string", "enum": list(names)} if names else {"type": "string"}
    return {
        "type": "object",
        "properties": {"event": event, "data": {"type": "string", "contentMediaType": "application/json"}},
        "required": ["data", *(["event"] if names else [])],
    }


class ApiError(Exception):
    def __init__(
        self, status: int, said: Said, type: str = "invalid_request_error", param: str | None = None
    ) -> None:
        message = messages.text(said)
        super().__init__(message)
        self.status, self.message, self.type, self.param = status, message, type, param
        self.code = code.code if (code := messages.of(said)) is not None else None

    def detail(self) -> dict:
        return ErrorDetail(
            message=self.message, type=self.type, param=self.param, code=self.code
        ).model_dump()

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": self.detail()}, self.status, headers=headers)


def from_error(error: TTServiceError) -> ApiError:
    """The HTTP status of one of our errors (its message and code are its own)."""
    if isinstance(error, JobNotFound | SegmentNotFound):
        return ApiError(404, error)
    if isinstance(error, MediaTooLarge):
        return ApiError(413, error, param="file")
    if isinstance(error, NotMedia):
        return ApiError(415, error, param="file")
    if isinstance(error, MediaError):
        return ApiError(400, error, param="file")
    if isinstance(error, ModelError):
        return ApiError(400, error, param="model")
    if isinstance(error, RequestError):
        return ApiError(400, error)
    if isinstance(error, StoreError):
        return ApiError(503, error, type="server_error")
    return ApiError(409, error)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error.response()

    @app.exception_handler(TTServiceError)
    async def service_error(request: Request, error: TTServiceError) -> JSONResponse:
        return from_error(error).response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        said = Message(
            "api.invalid_value", param=param or "The request", detail=first.get("msg", "is not valid")
        )
        return ApiError(400, said, param=param).response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        said = {
            404: Message("api.no_such_path", path=request.url.path),
            405: Message("api.method_not_allowed", method=request.method),
        }.get(error.status_code) or Message("api.http_error", detail=str(error.detail).rstrip("."))
        return ApiError(error.status_code, said).response(headers=getattr(error, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, error: ClientDisconnect) -> Response:
        return Response(status_code=499)  # the client hung up mid-upload: nobody reads this

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        said = Message("api.unexpected", kind=type(error).__name__)
        return ApiError(500, said, type="server_error").response()
