"""The dashboard's refusals: answered as problem+json by the app (app.py)."""

from __future__ import annotations


class DashboardError(Exception):
    status = 400
    title = "Bad Request"


class Invalid(DashboardError):
    status = 422
    title = "Unprocessable Content"


class NotFound(DashboardError):
    status = 404
    title = "Not Found"
