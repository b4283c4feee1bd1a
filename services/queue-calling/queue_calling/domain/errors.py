"""Domain refusals; the HTTP adapter maps them to problem+json (404 / 409 / 422)."""

from __future__ import annotations


class QueueError(Exception):
    """Base of refusals the caller can act on."""

    status = 409
    title = "Conflict"


class NotFound(QueueError):
    status = 404
    title = "Not Found"


class Conflict(QueueError):
    status = 409
    title = "Conflict"


class Invalid(QueueError):
    status = 422
    title = "Invalid request"
