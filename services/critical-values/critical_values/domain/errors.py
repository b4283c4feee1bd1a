"""Refusals the HTTP and HL7 adapters translate into their own terms (problem+json, AE)."""

from __future__ import annotations


class CriticalError(Exception):
    status = 400
    title = "Bad Request"


class NotFound(CriticalError):
    status = 404
    title = "Not Found"


class Conflict(CriticalError):
    status = 409
    title = "Conflict"


class Invalid(CriticalError):
    status = 422
    title = "Unprocessable Content"
