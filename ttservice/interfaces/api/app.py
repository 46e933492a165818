"""The API application: both route sets, errors in one shape, keys, and callback delivery."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from ... import __version__
from ...config import Settings
from ...jobs import open_store
from ...supervision import ProcessManager
from . import compat, errors, jobs, media, segments
from .callbacks import Callbacks
from .context import Context
from .health import DatabaseProbe
from .keys import KeyCheck

DESCRIPTION = """Local transcription with supervised workers.

`/v1` is OpenAI's audio API: point an OpenAI client's `base_url` at `http://HOST:PORT/v1`.
`/api/v1` is the jobs API: submit, follow, stop, resume, export. When the server has
API keys, send one as `Authorization: Bearer KEY`.
"""


def create_app(settings: Settings) -> FastAPI:
    store = open_store(settings, migrate=False)  # the service migrated it before it started us
    ctx = Context(settings, store, ProcessManager(store, settings), DatabaseProbe(store))
    callbacks = Callbacks(ctx) if settings.api_callbacks else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if callbacks is not None:
            callbacks.start()
        try:
            yield
        finally:
            if callbacks is not None:
                callbacks.stop()

    app = FastAPI(title="TTService", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.context = ctx
    errors.install(app)
    app.include_router(compat.router)
    app.include_router(jobs.router)
    app.include_router(media.router)
    app.include_router(segments.router)
    app.add_middleware(KeyCheck, keys=settings.api_keys)
    return app
