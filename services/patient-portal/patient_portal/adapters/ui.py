"""The patient's page /ui/patient/: a static shell (mobile first, Chinese) that loads everything through the
patient API with the session token it holds in memory only (no storage, no cookie): a reload or closing
the tab forgets it, and nothing of the patient's stays on the phone."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from imaging_common import web

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(tags=["patient pages"], include_in_schema=False)
router.include_router(web.assets_router)
web.add_static(router, STATIC)


@router.get("")
async def page_redirect() -> RedirectResponse:
    return RedirectResponse("/ui/patient/")


@router.get("/")
async def patient_page() -> FileResponse:
    return web.page(STATIC / "patient.html")


@router.get("/shared")
async def shared_page() -> FileResponse:
    """What a share link opens: the token stays in the URL fragment (never sent in a request line)."""
    return web.page(STATIC / "shared.html")
