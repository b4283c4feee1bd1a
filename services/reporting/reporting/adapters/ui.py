"""The radiologists' page `/ui/reporting/`: worklist, editor with template fields and phrases,
priors, QC warnings, sign and amend.

The page itself holds no patient data, so it is served without a token; it loads everything
through `/api/reporting/...` with the user's bearer token (roles checked there). Its navigation bar,
sign-in and stylesheet are the staff pages' shared ones (imaging_common.web, under `common/`).
"""

from __future__ import annotations

from pathlib import Path

from imaging_common import web

ui_router = web.pages_router("reporting", Path(__file__).resolve().parent.parent / "static" / "reporting.html")
