"""App factory of the queue calling service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from imaging_common.delivery import DeliveryMetrics
from imaging_common.outbound import AllowList
from imaging_common.problems import problem
from imaging_common.service import ServiceContext, ServiceSpec, create_service_app

from queue_calling.adapters import events, http_admin, http_terminal, ui
from queue_calling.adapters.hub import ScreenHub
from queue_calling.adapters.notify_worker import NotificationSender
from queue_calling.domain.states import InvalidTransition
from queue_calling.settings import Settings


@contextlib.asynccontextmanager
async def screen_hub(ctx: ServiceContext[Settings]) -> AsyncIterator[None]:
    s = ctx.settings
    hub = ScreenHub(pool=ctx.pool, redis=ctx.redis, namespace=s.namespace, timezone=s.queue_timezone,
                    announcement=s.queue_announcement, ping_seconds=s.queue_screen_ping_seconds,
                    buffer=s.queue_screen_send_buffer, database_url=s.database_url)
    await hub.start()
    ctx.extras["hub"] = hub
    try:
        yield
    finally:
        await hub.stop()


@contextlib.asynccontextmanager
async def notification_sender(ctx: ServiceContext[Settings]) -> AsyncIterator[None]:
    s = ctx.settings
    allow = AllowList.from_settings(s)
    if s.queue_webhook_url:  # IMAGING_QUEUE_WEBHOOK_URL must be on IMAGING_OUTBOUND_ALLOW: refuse to start
        allow.check_url(s.queue_webhook_url)
    sender = NotificationSender(ctx.pool, max_attempts=s.queue_notify_max_attempts,
                                webhook_timeout=s.queue_webhook_timeout, allow=allow,
                                metrics=DeliveryMetrics(ctx.spec.name, ctx.registry))
    await sender.start()
    ctx.extras["sender"] = sender
    try:
        yield
    finally:
        await sender.stop()


SERVICE = ServiceSpec(
    name="queue_calling",
    prefix="queue",
    title="Queue calling",
    migrations=Path(__file__).parent / "migrations",
    settings=Settings,
    routers=(http_terminal.router, http_admin.router),
    ui_routers=(ui.router,),
    event_handlers=events.HANDLERS,
    listeners=(screen_hub, notification_sender),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    app = create_service_app(SERVICE, settings or Settings())

    @app.exception_handler(InvalidTransition)
    async def invalid_transition(request: Request, exc: InvalidTransition) -> JSONResponse:
        return problem(409, "Conflict", str(exc), action=exc.action, state=exc.state)

    return app
