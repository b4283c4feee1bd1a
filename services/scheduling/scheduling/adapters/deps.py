"""Route dependencies in domain words: the database connection, the scheduler, the acting user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, TypeAlias

import asyncpg
from fastapi import Depends, Request
from imaging_common.auth import Principal, require_roles
from imaging_common.service import Ctx as ServiceCtx

from scheduling.domain.booking import Actor, Scheduler
from scheduling.settings import Settings

# Who may do what (least privilege): reading the pool and booking is front-line work; changing
# resources and rules is the admin's.
READERS = ("clerk", "nurse", "clinician", "technologist", "radiologist", "senior-radiologist", "admin")
BOOKERS = ("clerk", "nurse", "clinician", "admin")
DESK = ("clerk", "nurse", "technologist", "admin")  # arrivals, check-in, no-shows, fulfilment
ADMINS = ("admin",)
# The service context, its settings typed as scheduling's own: ctx.settings.<field> is checked.
Ctx: TypeAlias = ServiceCtx[Settings]


async def _conn(ctx: Ctx) -> AsyncIterator[asyncpg.Connection]:
    async with ctx.pool.acquire() as conn:
        yield conn


def scheduler_for(settings: Settings) -> Scheduler:
    return Scheduler(
        tz=settings.tz, hold_minutes=settings.scheduling_hold_minutes, horizon_days=settings.scheduling_horizon_days
    )


def _scheduler(ctx: Ctx) -> Scheduler:
    return scheduler_for(ctx.settings)


Conn = Annotated[asyncpg.Connection, Depends(_conn)]
SchedulerDep = Annotated[Scheduler, Depends(_scheduler)]
Reader = Annotated[Principal, Depends(require_roles(*READERS))]
Booker = Annotated[Principal, Depends(require_roles(*BOOKERS))]
Desk = Annotated[Principal, Depends(require_roles(*DESK))]
Admin = Annotated[Principal, Depends(require_roles(*ADMINS))]


def actor(user: Principal, request: Request) -> Actor:
    return Actor(user.user_id, user.username, request.client.host if request.client else None)
