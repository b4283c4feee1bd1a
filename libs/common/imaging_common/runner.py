"""Running services: one alone (`python -m <package>`) or all in one process (`make run`).

Switches that act on the whole process (the garbage collector) are made here, once per process,
never by a service: in the all-in-one process a service's switch would act on the other six.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Callable
from typing import Any

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


def freeze_startup_objects() -> None:
    """Everything loaded by the end of start-up (modules, fhir.resources' many models, settings, pools)
    lives as long as the process: moved out of the collector's sight, a full collection no longer
    walks it, which was a ~70 ms pause in ~5% of scheduling's slot searches."""
    gc.collect()
    gc.freeze()


class AfterStartup:
    """ASGI wrapper calling `hook` once the app's lifespan has started (before the first request)."""

    def __init__(self, app: Any, hook: Callable[[], None]) -> None:
        self.app, self.hook = app, hook

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def sent(message: Any) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.hook()
            await send(message)

        await self.app(scope, receive, sent)


def serve(app: object, settings: CommonSettings) -> None:
    uvicorn.run(
        AfterStartup(app, freeze_startup_objects),
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
