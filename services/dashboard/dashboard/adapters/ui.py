"""Pages: the department head's dashboard `/ui/dashboard/` and quality control `/ui/dashboard/qc/` (staff
pages: shared shell and stylesheet, everything through the API with the user's bearer token) and the wall
screen `/ui/dashboard/big-screen`
(public: no login; it holds no data until its WebSocket presents the screen's token, then it is sent
today's figures every IMAGING_DASHBOARD_SCREEN_SECONDS, names masked). Charts: Chart.js, served from
static/ (MIT, licence beside it), never from a CDN."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

from fastapi import WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse
from imaging_common import web

from dashboard.domain import devices, screens

STATIC = Path(__file__).resolve().parent.parent / "static"
ui_router = web.pages_router("dashboard", STATIC / "dashboard.html")
POLICY_VIOLATION = 4403  # close code: unknown screen or wrong token


@ui_router.get("/qc/", summary="Quality control: drawn exams, readings, statistics (staff page; data via the API)")
async def qc_page() -> HTMLResponse:
    return web.staff_page(STATIC / "qc.html", "dashboard")


@ui_router.get("/big-screen", summary="The wall screen (public page; data only over its WebSocket)")
async def big_screen_page() -> FileResponse:
    return web.page(STATIC / "big-screen.html")


@ui_router.websocket("/big-screen/ws")
async def big_screen_socket(ws: WebSocket) -> None:
    ctx = ws.app.state.ctx
    screen_id, token = ws.query_params.get("screen", ""), ws.query_params.get("token", "")
    async with ctx.pool.acquire() as conn:
        expected = await screens.screen_token(conn, screen_id)
    if expected is None or not hmac.compare_digest(expected.encode(), token.encode()):
        await ws.close(code=POLICY_VIOLATION)
        return
    await ws.accept()
    drain = asyncio.create_task(_drain(ws))
    try:
        while not drain.done():
            await ws.send_text(json.dumps(await _snapshot(ctx), ensure_ascii=False, default=str))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(drain), ctx.settings.dashboard_screen_seconds)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the screen went away
    finally:
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await drain


async def _snapshot(ctx: object) -> dict[str, object]:
    s = ctx.settings  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    async with ctx.pool.acquire() as conn:  # type: ignore[attr-defined]
        figures = await screens.today(conn, now=now, timezone=s.dashboard_timezone)
        board = await devices.board(conn, now=now, timezone=s.dashboard_timezone, idle_minutes=s.dashboard_idle_minutes)
    return {"now": now.isoformat(), **figures,
            "devices": [{"name": d["name"], "kind": d["kind"], "modality": d["modality"], "state": d["state"],
                         "today_exams": d["today_exams"]} for d in board]}


async def _drain(ws: WebSocket) -> None:
    """Screens only listen; reading notices a gone peer and keeps the close handshake working."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await ws.receive_text()
