"""Refusals the HTTP and HL7 adapters translate into their own terms (problem+json, AE)."""

from __future__ import annotations

from imaging_common import errors


class CriticalError(errors.Refusal):
    pass


class NotFound(errors.NotFound, CriticalError):
    pass


class Conflict(errors.Conflict, CriticalError):
    pass


class Invalid(errors.Invalid, CriticalError):
    pass
