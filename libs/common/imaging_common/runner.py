"""Running services: one alone (`python -m <package>`) or all in one process (`make run`).

Switches that act on the whole process (the garbage collector) are made here, once per process,
never by a service: in the all-in-one process a service's switch would act on the other six.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI

from imaging_common.config import CommonSettings
from imaging_common.preflight import check_infrastructure
from imaging_common.service import ServiceSpec

# What a service can start without, and what it does meanwhile (it connects when they answer).
CAN_WAIT = {
    "rabbitmq": "events wait in the outbox; the event bus connects in the background",
    "redis": "logins and sessions answer 503 until it answers",
}


def check_infrastructure_before_start(settings: CommonSettings, *, what: str = "start") -> None:
    """Start with PostgreSQL only: exit 2 naming every missing server when PostgreSQL does not answer
    within IMAGING_STARTUP_WAIT_SECONDS (migrations and readiness need it; Kubernetes restarts the
    container), but only warn for RabbitMQ and Redis, which the service connects to when they answer."""
    deadline = time.monotonic() + settings.startup_wait_seconds
    attempt = 0
    while True:
        attempt += 1
        problems = asyncio.run(check_infrastructure(settings))
        if not any(p.startswith("postgresql") for p in problems):
            break
        if time.monotonic() >= deadline:
            for message in problems:
                print(f"cannot {what}: {message}", file=sys.stderr)
            raise SystemExit(2)
        print(f"waiting for PostgreSQL (attempt {attempt}): {problems[0]}", file=sys.stderr, flush=True)
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))
    for message in problems:
        name = message.split(" ", 1)[0]
        print(f"starting without {name}: {message}; {CAN_WAIT.get(name, 'connecting when it answers')}",
              file=sys.stderr, flush=True)


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
    check_infrastructure_before_start(settings)
    serve(create_app(settings), settings)
