"""Times a clinician system claims (HL7 TS/DTM, FHIR instant/dateTime), read as the instant meant.

A time with an offset is that instant (`20261207095541+0800` is 01:55:41Z); one without an offset
is local time in the service's zone (IMAGING_CRITICAL_TIMEZONE), never UTC. What a peer claims is
evidence, kept beside the time we received it; the record (deadlines, statistics) uses ours.
A time that cannot be read is None: nothing is made up for it.

`claim_problem` judges a claim against what we know: never ahead of our clock beyond the allowed
skew, never before the critical value was raised. An implausible claim is kept with its reason and
flagged; it is never used for deadlines or statistics (those use the time we received it anyway).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

# Reading a claimed time is shared with registration's HIS feed: one implementation.
from imaging_common.hl7.times import fhir_instant, hl7_instant, zone

if TYPE_CHECKING:
    from critical_values.settings import Settings

__all__ = ["claim_problem", "fhir_instant", "hl7_instant", "raised_since", "skew_of", "zone"]

SKEW = timedelta(minutes=5)
FUTURE = "in the future"
BEFORE_RAISED = "before the critical value was raised"
UNREADABLE = "unreadable"


def skew_of(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.critical_clock_skew_seconds)


def claim_problem(claimed: datetime | None, *, received: datetime, not_before: datetime | None = None,
                  skew: timedelta = SKEW) -> str | None:
    """Why a claimed time cannot be believed (None: plausible, or nothing claimed)."""
    if claimed is None:
        return None
    if claimed > received + skew:
        return FUTURE
    if not_before is not None and claimed < not_before - skew:
        return BEFORE_RAISED
    return None


def raised_since(cv: Any) -> datetime:
    """The earliest believable moment a critical value existed: its claimed discovery when that claim
    was plausible (a value found while the system was down), else when it reached us."""
    claimed = cv["raised_claimed_at"]
    if claimed is not None and cv["raised_claim_invalid"] is None:
        return min(claimed, cv["raised_at"])
    return cv["raised_at"]  # type: ignore[no-any-return]
