"""Pages: the live board `/ui/critical-values/` and the clinician's acknowledgement page
`/ui/critical-values/ack/<id>`. They hold no patient data; everything loads through the API with
the user's bearer token (roles checked there). Their navigation bar, sign-in and stylesheet are the
staff pages' shared ones (imaging_common.web, under `common/`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from imaging_common import web

ui_router = APIRouter(tags=["pages"], include_in_schema=False)
ui_router.include_router(web.assets_router)
STATIC = Path(__file__).resolve().parent.parent / "static"


@ui_router.get("")
async def board_redirect() -> RedirectResponse:
    return RedirectResponse("/ui/critical-values/")


@ui_router.get("/")
async def board_page() -> FileResponse:
    return web.page(STATIC / "board.html")


@ui_router.get("/ack/{critical_id}")
async def ack_page(critical_id: str) -> FileResponse:
    return web.page(STATIC / "ack.html")
