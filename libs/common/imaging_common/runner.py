"""Running services: one alone (`python -m <package>`) or all in one process (`make run`)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from imaging_common.config import CommonSettings
from imaging_common.preflight import check_infrastructure
from imaging_common.service import ServiceSpec


def exit_if_infrastructure_missing(settings: CommonSettings) -> None:
    problems = asyncio.run(check_infrastructure(settings))
    if problems:
        for message in problems:
            print(f"cannot start: {message}", file=sys.stderr)
        raise SystemExit(2)


def serve(app: object, settings: CommonSettings) -> None:
    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # our JSON logging is already configured
        access_log=False,
        lifespan="on",
        timeout_keep_alive=settings.http_keep_alive,
        # Screens get a couple of kB per call on the LAN; deflating each message for each socket
        # costs more CPU than the rest of a call (tests/bench/test_queue_bench.py).
        ws_per_message_deflate=False,
    )


def run_service(spec: ServiceSpec, create_app: Callable[..., FastAPI], settings: CommonSettings) -> None:
    exit_if_infrastructure_missing(settings)
    serve(create_app(settings), settings)
