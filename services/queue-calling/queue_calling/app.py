"""App factory of the queue calling service."""

from __future__ import annotations

import contextlib

from fastapi import Request
from fastapi.responses import JSONResponse
from imaging_common.delivery import DeliveryMetrics
from imaging_common.outbound import AllowList
from imaging_common.problems import problem
from imaging_common.service import ServiceContext, ServiceSpec, app_factory, running

from queue_calling.adapters import events, http_admin, http_terminal, ui
from queue_calling.adapters.hub import ScreenHub
from queue_calling.adapters.notify_worker import NotificationSender
from queue_calling.domain import starter
from queue_calling.domain.states import InvalidTransition
from queue_calling.settings import Settings


def screen_hub(ctx: ServiceContext[Settings]) -> contextlib.AbstractAsyncContextManager[ScreenHub]:
    s = ctx.settings
    hub = ScreenHub(pool=ctx.pool, redis=ctx.redis, namespace=s.namespace, timezone=s.queue_timezone,
                    announcement=s.queue_announcement, ping_seconds=s.queue_screen_ping_seconds,
                    buffer=s.queue_screen_send_buffer, database_url=s.database_url)
    return running(ctx, "hub", hub)


def notification_sender(ctx: ServiceContext[Settings]) -> contextlib.AbstractAsyncContextManager[NotificationSender]:
    s = ctx.settings
    allow = AllowList.from_settings(s)
    if s.queue_webhook_url:  # IMAGING_QUEUE_WEBHOOK_URL must be on IMAGING_OUTBOUND_ALLOW: refuse to start
        allow.check_url(s.queue_webhook_url)
    sender = NotificationSender(ctx.pool, max_attempts=s.queue_notify_max_attempts,
                                webhook_timeout=s.queue_webhook_timeout, allow=allow,
                                metrics=DeliveryMetrics(ctx.spec.name, ctx.registry))
    return running(ctx, "sender", sender)


async def invalid_transition(request: Request, exc: InvalidTransition) -> JSONResponse:
    return problem(409, "Conflict", str(exc), action=exc.action, state=exc.state)


SERVICE = ServiceSpec(
    name="queue_calling",
    prefix="queue",
    title="Queue calling",
    settings=Settings,
    routers=(http_terminal.router, http_admin.router),
    ui_routers=(ui.router,),
    event_handlers=events.HANDLERS,
    listeners=(screen_hub, notification_sender),
    exception_handlers={InvalidTransition: invalid_transition},
    starter=starter.load,
)

create_app = app_factory(SERVICE)
