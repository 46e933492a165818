"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, for every route.

Each message is one sentence a user can act on. Nothing reaches a client as a
traceback: an unexpected exception is logged here and answered with a 500 of one
sentence.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ...exceptions import (
    JobNotFound,
    MediaError,
    MediaTooLarge,
    ModelError,
    NotMedia,
    RequestError,
    StoreError,
    TTServiceError,
)

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
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def detail(self) -> dict:
        return ErrorDetail(
            message=self.message, type=self.type, param=self.param, code=self.code
        ).model_dump()

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": self.detail()}, self.status, headers=headers)


def from_error(error: TTServiceError) -> ApiError:
    """The HTTP status and code of one of our errors."""
    message = str(error)
    if isinstance(error, JobNotFound):
        return ApiError(404, message, code="job_not_found")
    if isinstance(error, MediaTooLarge):
        return ApiError(413, message, param="file", code="file_too_large")
    if isinstance(error, NotMedia):
        return ApiError(415, message, param="file", code="unsupported_media")
    if isinstance(error, MediaError):
        return ApiError(400, message, param="file", code="invalid_file")
    if isinstance(error, ModelError):
        return ApiError(400, message, param="model", code="model_not_available")
    if isinstance(error, RequestError):
        return ApiError(400, message, code="unsupported_request")
    if isinstance(error, StoreError):
        return ApiError(503, message, type="server_error", code="database_unavailable")
    return ApiError(409, message, code="conflict")


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
        message = f"{param or 'The request'}: {first.get('msg', 'is not valid')}."
        return ApiError(400, message, param=param, code="invalid_value").response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        messages = {
            404: f"There is no {request.url.path} here.",
            405: f"{request.method} is not allowed here.",
        }
        message = messages.get(error.status_code, str(error.detail).rstrip(".") + ".")
        return ApiError(error.status_code, message).response(headers=getattr(error, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, error: ClientDisconnect) -> Response:
        return Response(status_code=499)  # the client hung up mid-upload: nobody reads this

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        message = f"TTService could not answer this request ({type(error).__name__}); its log says more."
        return ApiError(500, message, type="server_error").response()
