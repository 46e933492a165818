"""API keys: `Authorization: Bearer KEY` on every request but the probes (/health, /ready),
compared in constant time.

An agent's media fetch (`media.PREFIX`) shows its job's media token instead.

A pure ASGI middleware, so that it guards /docs and /openapi.json too and never
buffers a streamed upload or response.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ...messages import Message
from .errors import ApiError
from .media import PREFIX as MEDIA_PREFIX

OPEN_PATHS = frozenset({"/api/v1/health", "/api/v1/ready"})


def valid(header: bytes, keys: list[bytes]) -> bool:
    """Whether `header` is "Bearer <one of keys>"; every key is compared, whichever matches."""
    scheme, _, token = header.partition(b" ")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.strip(), key)
    return scheme.lower() == b"bearer" and matched


def open_path(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(MEDIA_PREFIX)


class KeyCheck:
    def __init__(self, app: ASGIApp, keys: list[str]) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or open_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        if valid(header, self.keys):
            await self.app(scope, receive, send)
            return
        error = ApiError(401, Message("api.key_invalid" if header else "api.key_missing"))
        await error.response(headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
