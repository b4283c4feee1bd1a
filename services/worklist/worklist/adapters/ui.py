"""The technologists' page `/ui/worklist/`: today's list per room.

The page itself holds no patient data, so it is served without a token; it loads everything
through `/api/worklist/...` with the user's bearer token (roles checked there). Its navigation bar,
sign-in and stylesheet are the staff pages' shared ones (imaging_common.web, under `common/`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from imaging_common import web

ui_router = APIRouter(tags=["pages"], include_in_schema=False)
ui_router.include_router(web.assets_router)
PAGE = Path(__file__).resolve().parent.parent / "static" / "worklist.html"


@ui_router.get("")
async def page_redirect() -> RedirectResponse:
    return RedirectResponse("/ui/worklist/")


@ui_router.get("/")
async def page() -> FileResponse:
    return web.page(PAGE)
