"""The radiologists' page `/ui/reporting/`: worklist, editor with template fields and phrases,
priors, QC warnings, sign and amend.

The page itself holds no patient data, so it is served without a token; it loads everything
through `/api/reporting/...` with the user's bearer token (roles checked there).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

ui_router = APIRouter(tags=["pages"], include_in_schema=False)
PAGE = Path(__file__).resolve().parent.parent / "static" / "reporting.html"


@ui_router.get("")
async def page_redirect() -> RedirectResponse:
    return RedirectResponse("/ui/reporting/")


@ui_router.get("/")
async def page() -> FileResponse:
    return FileResponse(PAGE, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})
