"""One way to run a change: transaction, views sealed, notifications queued, audit, then fan-out.

    row, change = await run_change(ctx, lambda conn: calling.recall(conn, ...), audit=Audit(...))

Everything that must agree with the change (entry, log, room versions, notifications, audit row,
outbox event) commits with it; the screens and the notification sender are told after commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
from imaging_common import audit
from imaging_common.service import ServiceContext

from queue_calling.adapters.hub import ScreenHub
from queue_calling.adapters.notify_worker import NotificationSender
from queue_calling.domain import notifications, views
from queue_calling.domain.scope import Change

T = TypeVar("T")


@dataclass
class Audit:
    actor: str
    action: str
    entity: str = "queue_entry"
    source_ip: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def hub_of(ctx: ServiceContext) -> ScreenHub:
    return ctx.extra("hub", ScreenHub)


def sender_of(ctx: ServiceContext) -> NotificationSender:
    return ctx.extra("sender", NotificationSender)


async def after_commit(ctx: ServiceContext, change: Change, queued: int) -> None:
    await hub_of(ctx).publish(change)
    if queued:
        sender_of(ctx).kick()


async def seal(conn: asyncpg.Connection, change: Change) -> int:
    """Inside the transaction: new room versions and views, then notifications of the change."""
    await views.seal(conn, change)
    return await notifications.queue_for(conn, change, datetime.now(UTC))


async def run_change(
    ctx: ServiceContext, fn: Callable[[asyncpg.Connection], Awaitable[tuple[Any, Change]]], *, audit_as: Audit,
) -> Any:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            row, change = await fn(conn)
            queued = await seal(conn, change)
            if isinstance(row, dict) and "entry_id" in row:
                await audit.record(conn, actor=audit_as.actor, action=audit_as.action, entity=audit_as.entity,
                                   entity_id=str(row["entry_id"]), patient_id=row.get("patient_id"),
                                   source_ip=audit_as.source_ip, detail={**audit_as.detail, "state": row["state"]},
                                   service=ctx.spec.name)
    await after_commit(ctx, change, queued)
    return row
