"""`python -m ttservice.interfaces.api --host H --port P`: the API process the service starts."""

from __future__ import annotations

import argparse
import logging
import signal

import uvicorn

from ...config import Settings
from ...platform import die_with_parent
from .app import create_app

# How long uvicorn lets requests finish once asked to stop: the service interrupts their
# jobs meanwhile, and each request answers with that.
GRACEFUL_SECONDS = 30


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ttservice.interfaces.api")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    die_with_parent(signal.SIGTERM)  # the service's child: never outlives it
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(Settings.from_env()),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )


if __name__ == "__main__":
    main()
