"""Pages: public screens under /ui/queue/screens/<id> (and their WebSocket), the staff terminal.

A screen page holds no data; it opens the WebSocket with the screen's token (from its URL)
and shows only what the hub sends: masked names, ticket numbers, room names and counts.
The terminal page is a static shell too: it loads everything through the API with the staff
member's bearer token, so the API's roles and audit apply; its navigation bar, sign-in and stylesheet are
the staff pages' shared ones (imaging_common.web, under `common/`). The screens keep their own look.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from pathlib import Path

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, Response
from imaging_common import web

from queue_calling.adapters.hub import ScreenHub
from queue_calling.domain import configuration
from queue_calling.domain.errors import NotFound

router = APIRouter(tags=["queue screens"])
router.include_router(web.assets_router)

STATIC = Path(__file__).resolve().parent.parent / "static"
web.add_static(router, STATIC)
POLICY_VIOLATION = 4403  # close code: unknown screen or wrong token


@router.get("/screens/{screen_id}", response_class=HTMLResponse, summary="A hall or door screen (public page)")
async def screen_page(screen_id: str) -> HTMLResponse:
    # Static shell only: no patient data until the WebSocket presents the screen's token.
    html = (STATIC / "screen.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers={"cache-control": "no-store", "x-frame-options": "DENY",
                                       "referrer-policy": "no-referrer"})


@router.get("/terminal", response_class=HTMLResponse, summary="Calling terminal (staff; data via the API)")
async def terminal_page() -> Response:
    return web.staff_page(STATIC / "terminal.html", "queue")


@router.websocket("/screens/{screen_id}/ws")
async def screen_socket(ws: WebSocket, screen_id: str) -> None:
    ctx = ws.app.state.ctx
    hub: ScreenHub = ctx.extras["hub"]
    token = ws.query_params.get("token", "")
    async with ctx.pool.acquire() as conn:
        try:
            screen = await configuration.get_screen(conn, screen_id)
        except NotFound:
            screen = None
    if screen is None or not hmac.compare_digest(screen["token"].encode(), token.encode()):
        await ws.close(code=POLICY_VIOLATION)
        return
    await ws.accept()
    client = await hub.attach(ws, screen)
    try:
        # Screens only listen; reading keeps the close handshake working and notices a gone peer.
        receiver = asyncio.create_task(_drain(ws))
        closed = asyncio.create_task(client.closed.wait())
        await asyncio.wait({receiver, closed}, return_when=asyncio.FIRST_COMPLETED)
        for task in (receiver, closed):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    finally:
        await hub.detach(client)


async def _drain(ws: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await ws.receive_text()
