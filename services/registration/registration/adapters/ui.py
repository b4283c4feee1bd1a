"""The front-desk web UI at /ui/registration/: static page + script; all data goes through the API.
Its navigation bar, sign-in and stylesheet are the staff pages' shared ones (imaging_common.web, under
`common/`); `static/` holds the desk's own script and layout.

The page itself holds no patient data, so it is served without a token; every call it makes to
/api/registration/... carries the clerk's bearer token and is role-checked and audited there.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse
from imaging_common import web

STATIC = Path(__file__).resolve().parent.parent / "static"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}
# Strict CSP: scripts only from this origin, no inline script; the page needs nothing else.
_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)
router.include_router(web.assets_router)


@router.get("")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/registration/", status_code=308)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type=_TYPES[".html"], headers=_HEADERS)


@router.get("/static/{name}")
async def asset(name: str) -> FileResponse:
    path = (STATIC / name).resolve()
    if path.parent != STATIC or not path.is_file() or path.suffix not in _TYPES:
        raise HTTPException(404, "no such asset")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_HEADERS)
