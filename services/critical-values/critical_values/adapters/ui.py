"""Pages: the live board `/ui/critical-values/` and the clinician's acknowledgement page
`/ui/critical-values/ack/<id>`. They hold no patient data; everything loads through the API with
the user's bearer token (roles checked there). Their navigation bar, sign-in and stylesheet are the
staff pages' shared ones (imaging_common.web, under `common/`)."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import HTMLResponse
from imaging_common import web

STATIC = Path(__file__).resolve().parent.parent / "static"
ui_router = web.pages_router("critical-values", STATIC / "board.html")


@ui_router.get("/ack/{critical_id}")
async def ack_page(critical_id: str) -> HTMLResponse:
    return web.staff_page(STATIC / "ack.html", "critical-values")
