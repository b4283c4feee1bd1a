"""Domain refusals every service shares, free of any protocol library.

A service's domain raises a `Refusal` (or its own subclass) when a request cannot be done as
asked; each adapter says it in its protocol's terms: the service factory turns it into an HTTP
problem document with `status`, `title` and the stable `code` clients branch on (the Chinese wording
comes from imaging_common.problem_texts), an HL7 adapter into an AE acknowledgement.
"""

from __future__ import annotations


class Refusal(Exception):
    """Base of refusals the caller can act on; `str(exc)` is the detail shown to them."""

    status = 400
    title = "Bad Request"
    code: str | None = None  # None: from the detail's pattern in problem_texts, else from the status


class NotFound(Refusal):
    status = 404
    title = "Not Found"


class Conflict(Refusal):
    status = 409
    title = "Conflict"


class Invalid(Refusal):
    status = 422
    title = "Unprocessable Content"
