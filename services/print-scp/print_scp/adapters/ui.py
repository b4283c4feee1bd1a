"""Pages under /ui/print/: static shells that load their data through the API.

The review page needs a staff token (it calls /api/print/films?match_status=review); the cloud
film page reads the share token from the URL fragment (never sent to the server in the URL) and
posts it with the identity check. Both use the staff pages' shared stylesheet and icon (imaging_common.web,
under `common/`); the review page also their navigation bar and sign-in, the patients' page does not.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from imaging_common import web

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(tags=["print pages"])
router.include_router(web.assets_router)
web.add_static(router, STATIC)
HEADERS = {"cache-control": "no-store", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


@router.get("/review", response_class=HTMLResponse, summary="Review list: films staff must match by hand")
async def review_page() -> Response:
    return web.staff_page(STATIC / "review.html", "print")


@router.get("/cloud-film", response_class=HTMLResponse, summary="Cloud film viewer (public page, own checks)")
async def cloud_film_page() -> HTMLResponse:
    return HTMLResponse((STATIC / "cloud-film.html").read_text(encoding="utf-8"), headers=HEADERS)
