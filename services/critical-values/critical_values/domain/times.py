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

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

# YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]][+/-ZZZZ]  (HL7 v2.5 TS / DTM)
_HL7 = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?(?:([+-])(\d{2})(\d{2}))?$")


def zone(name: str | None) -> tzinfo:
    return ZoneInfo(name or "Asia/Shanghai")


def hl7_instant(value: str | None, local: tzinfo) -> datetime | None:
    """The instant of an HL7 TS (first component), local time when it carries no offset."""
    text = (value or "").split("^", 1)[0].strip()
    m = _HL7.match(text)
    if not m:
        return None
    year, month, day, hour, minute, second, fraction, sign, oh, om = m.groups()
    try:
        tz: tzinfo = local
        if sign:
            offset = timedelta(hours=int(oh), minutes=int(om))
            tz = timezone(-offset if sign == "-" else offset)
        micro = int((fraction or "0").ljust(6, "0")[:6])
        at = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                      int(second or 0), micro, tzinfo=tz)
    except ValueError:
        return None
    return at.astimezone(UTC)


def fhir_instant(value: Any, local: tzinfo) -> datetime | None:
    """The instant of a FHIR instant/dateTime string, local time when it carries no offset."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=local)
    return at.astimezone(UTC)


SKEW = timedelta(minutes=5)
FUTURE = "in the future"
BEFORE_RAISED = "before the critical value was raised"
UNREADABLE = "unreadable"


def skew_of(settings: Any) -> timedelta:
    return timedelta(seconds=float(getattr(settings, "critical_clock_skew_seconds", SKEW.total_seconds())))


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
