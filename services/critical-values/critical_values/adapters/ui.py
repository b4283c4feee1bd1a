"""Pages: the live board `/ui/critical-values/` and the clinician's acknowledgement page
`/ui/critical-values/ack/<id>`. They hold no patient data; everything loads through the API with
the user's bearer token (roles checked there)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

ui_router = APIRouter(tags=["pages"], include_in_schema=False)
STATIC = Path(__file__).resolve().parent.parent / "static"


@ui_router.get("")
async def board_redirect() -> RedirectResponse:
    return RedirectResponse("/ui/critical-values/")


@ui_router.get("/")
async def board_page() -> FileResponse:
    return FileResponse(STATIC / "board.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})


@ui_router.get("/ack/{critical_id}")
async def ack_page(critical_id: str) -> FileResponse:
    return FileResponse(STATIC / "ack.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})
