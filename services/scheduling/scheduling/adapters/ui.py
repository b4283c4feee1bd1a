"""The schedulers' page `/ui/scheduling/`: a day or week board per campus and room; book a waiting exam,
move a booking (drag or form), cancel with a reason, print the slip through a short-lived link.

The page holds no patient data itself (served without a token); it loads everything through
`/api/scheduling/...` with the user's bearer token (roles checked there). Navigation bar, sign-in and
stylesheet are the staff pages' shared ones (imaging_common.web, under `common/`).
"""

from __future__ import annotations

from pathlib import Path

from imaging_common import web

ui_router = web.pages_router("scheduling", Path(__file__).resolve().parent.parent / "static" / "scheduling.html")
