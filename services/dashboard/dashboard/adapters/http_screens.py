"""Wall screens (admin): a screen's token, which its page presents instead of a login."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path
from imaging_common import audit

from dashboard.adapters.deps import Admin, ClientIp, Ctx
from dashboard.adapters.schemas import Screen, ScreenIn
from dashboard.domain import screens

router = APIRouter(tags=["wall screens"])


@router.put("/screens/{screen_id}", response_model=Screen,
            summary="Register a wall screen (its token for /ui/dashboard/big-screen?screen=<id>&token=<token>)")
async def put_screen(body: ScreenIn, user: Admin, ctx: Ctx, ip: ClientIp,
                     screen_id: str = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")) -> Any:
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await screens.put_screen(conn, screen_id, body.title, new_token=body.new_token)
        await audit.record(conn, actor=user.username, action="update", entity="screen", entity_id=screen_id,
                           source_ip=ip, service="dashboard", detail={"title": body.title, "new_token": body.new_token})
    return row
