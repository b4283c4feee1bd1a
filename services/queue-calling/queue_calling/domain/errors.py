"""Domain refusals; the service factory maps them to problem+json (404 / 409 / 422)."""

from __future__ import annotations

from imaging_common import errors


class QueueError(errors.Refusal):
    """Base of refusals the caller can act on."""

    status = 409
    title = "Conflict"


class NotFound(errors.NotFound, QueueError):
    pass


class Conflict(errors.Conflict, QueueError):
    pass


class Invalid(errors.Invalid, QueueError):
    title = "Invalid request"
