"""Central configuration (admin): queues, rooms, placement rules, screens (smart-imaging standard 6.2.2 (7))."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import time
from typing import Any, Literal

import asyncpg
from fastapi import APIRouter
from imaging_common import audit
from imaging_common.json_out import listing
from pydantic import BaseModel, Field

from queue_calling.adapters.deps import Admin, ClientIp, Ctx, TerminalStaff
from queue_calling.adapters.flows import after_commit, hub_of, seal
from queue_calling.adapters.schemas import Queues, QueueSaved, Rooms, RoomSaved, RuleAdded, Rules, Screens, ScreenSaved
from queue_calling.domain import configuration
from queue_calling.domain.scope import Change

router = APIRouter(tags=["queue configuration"])

IDENT = r"^[A-Za-z0-9_.:-]{1,64}$"


class QueueIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["CT 平扫"])
    ticket_prefix: str = Field(min_length=1, max_length=8, examples=["CT"])
    policy: dict[str, Any] = Field({}, description="priority policy over the defaults, see domain/priority.py")
    skip_rule: dict[str, Any] = Field({"mode": "after_n", "n": 3},
                                      examples=[{"mode": "end_of_slice", "slice_minutes": 30}])
    avg_service_minutes: float = Field(10, gt=0, le=600)


class RoomIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["CT1"])
    door_cap: int = Field(2, ge=1, le=50)
    active: bool = True
    queue_ids: list[str] = Field(min_length=1, description="queues served, in round-robin order")


class RuleIn(BaseModel):
    queue_id: str
    rank: int = 100
    modality: str | None = None
    exam_code_prefix: str | None = None
    preparation: Literal["none", "injection", "anaesthesia"] | None = None
    room_id: str | None = None
    technologist: str | None = None


class ScreenIn(BaseModel):
    kind: Literal["hall", "door"]
    title: str = Field("", max_length=100)
    room_ids: list[str] = Field(min_length=1)
    layout: dict[str, Any] = Field({}, examples=[{"columns": 2, "next_count": 3, "theme": "dark", "font_scale": 1.2}])
    on_time: time | None = Field(None, description="local time the screen wakes, e.g. 07:30")
    off_time: time | None = Field(None, description="local time the screen sleeps, e.g. 18:30")
    mask_rule: dict[str, Any] = Field({"mode": "middle"}, examples=[{"mode": "middle", "char": "*"}])
    speech: bool = True
    token: str | None = Field(None, min_length=16, max_length=100,
                              description="the screen's access token; generated when omitted on creation")


async def _saved(ctx: Ctx, user: Any, ip: str | None, entity: str, entity_id: str,
                 put: Callable[..., Awaitable[Change]], fields: dict[str, Any]) -> dict[str, Any]:
    """Save one queue or room, seal the views it changes and audit it in one transaction; then tell the
    screens. The answer is what was saved."""
    configuration_id_ok(entity_id)
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            change = await put(conn, **{f"{entity}_id": entity_id}, **fields)
            queued = await seal(conn, change)
            await audit.record(conn, actor=user.username, action="update", entity=entity, entity_id=entity_id,
                               source_ip=ip, detail=fields)
    await after_commit(ctx, change, queued)
    return {f"{entity}_id": entity_id, **fields}


async def _listed(ctx: Ctx, fetch: Callable[[asyncpg.Connection], Awaitable[list[dict[str, Any]]]]) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        return listing(await fetch(conn))


@router.put("/queues/{queue_id}", summary="Create or change a queue")
async def put_queue(queue_id: str, body: QueueIn, user: Admin, ctx: Ctx, ip: ClientIp) -> QueueSaved:
    return await _saved(ctx, user, ip, "queue", queue_id, configuration.put_queue, body.model_dump())


@router.get("/queues", summary="Queues")
async def list_queues(user: TerminalStaff, ctx: Ctx) -> Queues:
    return await _listed(ctx, configuration.list_queues)


@router.put("/rooms/{room_id}", summary="Create or change a room and the queues it serves")
async def put_room(room_id: str, body: RoomIn, user: Admin, ctx: Ctx, ip: ClientIp) -> RoomSaved:
    return await _saved(ctx, user, ip, "room", room_id, configuration.put_room, body.model_dump())


@router.get("/rooms", summary="Rooms")
async def list_rooms(user: TerminalStaff, ctx: Ctx) -> Rooms:
    return await _listed(ctx, configuration.list_rooms)


@router.post("/placement-rules", status_code=201, summary="Add a check-in placement rule")
async def add_rule(body: RuleIn, user: Admin, ctx: Ctx, ip: ClientIp) -> RuleAdded:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            rule_id = await configuration.add_rule(conn, **body.model_dump())
            await audit.record(conn, actor=user.username, action="create", entity="placement_rule",
                               entity_id=str(rule_id), source_ip=ip, detail=body.model_dump())
    return {"rule_id": rule_id, **body.model_dump()}


@router.get("/placement-rules", summary="Placement rules, in the order they are tried")
async def list_rules(user: TerminalStaff, ctx: Ctx) -> Rules:
    return await _listed(ctx, configuration.list_rules)


@router.delete("/placement-rules/{rule_id}", status_code=204, summary="Remove a placement rule")
async def delete_rule(rule_id: int, user: Admin, ctx: Ctx, ip: ClientIp) -> None:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            await configuration.delete_rule(conn, rule_id)
            await audit.record(conn, actor=user.username, action="delete", entity="placement_rule",
                               entity_id=str(rule_id), source_ip=ip)


@router.put("/screens/{screen_id}", summary="Create or change a screen (its URL carries the token)")
async def put_screen(screen_id: str, body: ScreenIn, user: Admin, ctx: Ctx, ip: ClientIp) -> ScreenSaved:
    configuration_id_ok(screen_id)
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            screen = await configuration.put_screen(conn, screen_id=screen_id, **body.model_dump())
            await audit.record(conn, actor=user.username, action="update", entity="screen", entity_id=screen_id,
                               source_ip=ip, detail=body.model_dump(exclude={"token"}))
    await hub_of(ctx).publish_screen_config(screen_id)
    return {**screen, "url": f"{ctx.spec.ui_prefix}/screens/{screen_id}?token={screen['token']}"}


@router.get("/screens", summary="Screens and their settings")
async def list_screens(user: Admin, ctx: Ctx) -> Screens:
    async with ctx.pool.acquire() as conn:
        data = await configuration.list_screens(conn)
    online = await hub_of(ctx).online()
    for screen in data:
        screen["connected"] = online.get(screen["screen_id"], 0)
    return listing(data)


def configuration_id_ok(value: str) -> None:
    import re

    from queue_calling.domain.errors import Invalid

    if not re.match(IDENT, value):
        raise Invalid("ids are 1-64 characters of letters, digits and _ . : -")
