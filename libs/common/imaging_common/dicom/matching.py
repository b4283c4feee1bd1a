"""Attribute matching of DICOM queries (PS3.4 C.2.2.2): wildcards and ranges, as SQL-ready values.

Wildcards: `*` is any run of characters, `?` exactly one *character* — a Han character is one
character although GB18030 spends two or four bytes on it. We match on decoded `str`, so the
translation to SQL LIKE (`%`, `_` on a UTF-8 database, which count characters) keeps that meaning.

Ranges: DA "20240101-20240131", "-20240131", "20240101-"; TM likewise; DA and TM given together
are one combined range (C.2.2.2.5.1): 20240101-20240102 with 2300-0100 is 01-01 23:00 to 01-02 01:00.
All ranges here are half-open [start, end) with the end rounded up to the value's precision,
so "0930" matches 09:30:00 through 09:30:59.999999.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

WILDCARDS = ("*", "?")


class InvalidMatchValue(ValueError):
    """A matching value that is not valid for its VR (e.g. a date "2024-13-45")."""


def has_wildcards(value: str) -> bool:
    return any(w in value for w in WILDCARDS)


def is_universal(value: str | None) -> bool:
    """Empty or only `*`: matches everything (C.2.2.2.3), so no condition is needed."""
    return value is None or value.strip(" ") == "" or set(value.strip(" ")) == {"*"}


def wildcard_to_like(value: str, escape: str = "\\") -> str:
    """A DICOM wildcard pattern as a LIKE pattern (with `escape` as the escape character)."""
    out: list[str] = []
    for ch in value:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in ("%", "_", escape):
            out.append(escape + ch)
        else:
            out.append(ch)
    return "".join(out)


def wildcard_match(pattern: str, text: str, *, case_insensitive: bool = False) -> bool:
    """Pure-Python twin of `wildcard_to_like` for in-memory matching."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (re.IGNORECASE if case_insensitive else 0)
    return re.fullmatch(regex, text, flags) is not None


# ---- dates and times -----------------------------------------------------------------------


def parse_date(value: str) -> date:
    """DA "YYYYMMDD" (the old "YYYY.MM.DD" form is accepted too)."""
    v = value.strip().replace(".", "")
    if not re.fullmatch(r"\d{8}", v):
        raise InvalidMatchValue(f"not a DICOM date (YYYYMMDD): {value!r}")
    try:
        return date(int(v[:4]), int(v[4:6]), int(v[6:8]))
    except ValueError as exc:
        raise InvalidMatchValue(f"not a valid date: {value!r} ({exc})") from None


def parse_time(value: str) -> tuple[time, timedelta]:
    """TM "HH[MM[SS[.FFFFFF]]]" (the old "HH:MM:SS" too) -> the time and its precision."""
    v = value.strip().replace(":", "")
    m = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?", v)
    if not m:
        raise InvalidMatchValue(f"not a DICOM time (HHMMSS.FFFFFF): {value!r}")
    hh, mm, ss, frac = m.groups()
    if frac is not None and ss is None:
        raise InvalidMatchValue(f"not a DICOM time (HHMMSS.FFFFFF): {value!r}")
    try:
        t = time(int(hh), int(mm or 0), int(ss or 0), int((frac or "0").ljust(6, "0")))
    except ValueError as exc:
        raise InvalidMatchValue(f"not a valid time: {value!r} ({exc})") from None
    if frac is not None:
        step = timedelta(microseconds=10 ** (6 - len(frac)))
    elif ss is not None:
        step = timedelta(seconds=1)
    elif mm is not None:
        step = timedelta(minutes=1)
    else:
        step = timedelta(hours=1)
    return t, step


def _split_range(value: str) -> tuple[str, str] | None:
    v = value.strip()
    if "-" not in v:
        return None
    if v.count("-") > 1:
        raise InvalidMatchValue(f"a range has one '-': {value!r}")
    lo, hi = v.split("-")
    if not lo.strip() and not hi.strip():
        raise InvalidMatchValue(f"a range needs at least one end: {value!r}")
    return lo.strip(), hi.strip()


def parse_date_range(value: str) -> tuple[date | None, date | None]:
    """DA single value or range -> inclusive (first day, last day); None for an open end."""
    parts = _split_range(value)
    if parts is None:
        d = parse_date(value)
        return d, d
    lo, hi = parts
    first = parse_date(lo) if lo else None
    last = parse_date(hi) if hi else None
    if first and last and first > last:
        raise InvalidMatchValue(f"range ends before it starts: {value!r}")
    return first, last


def parse_time_range(value: str) -> tuple[tuple[time, timedelta] | None, tuple[time, timedelta] | None]:
    parts = _split_range(value)
    if parts is None:
        t = parse_time(value)
        return t, t
    lo, hi = parts
    return (parse_time(lo) if lo else None), (parse_time(hi) if hi else None)


@dataclass(frozen=True)
class DateTimeRange:
    """[start, end) on naive local date-times; None is an open end. `time_of_day` is set when
    only a time was given: it matches that time of day on every date, as [from, to) seconds."""

    start: datetime | None = None
    end: datetime | None = None
    time_of_day: tuple[time | None, time | None] | None = None

    def contains(self, at: datetime) -> bool:
        if self.start is not None and at < self.start:
            return False
        if self.end is not None and at >= self.end:
            return False
        if self.time_of_day is not None:
            lo, hi = self.time_of_day
            t = at.time()
            if lo is not None and t < lo:
                return False
            if hi is not None and t >= hi:
                return False
        return True


def _end_of(t: time, step: timedelta) -> time | None:
    """The first time after `t`'s precision, or None past midnight."""
    moment = datetime.combine(date(2000, 1, 1), t) + step
    return None if moment.date() != date(2000, 1, 1) else moment.time()


def combined_datetime_range(date_value: str | None, time_value: str | None) -> DateTimeRange | None:
    """The range of a DA key and a TM key matched together; None when both are universal."""
    d = (date_value or "").strip()
    t = (time_value or "").strip()
    if not d and not t:
        return None
    if not d:  # a time alone: that time of day on any date
        lo, hi = parse_time_range(t)
        tod_lo = lo[0] if lo else None
        tod_hi = _end_of(*hi) if hi else None
        return DateTimeRange(time_of_day=(tod_lo, tod_hi))
    first, last = parse_date_range(d)
    start = datetime.combine(first, time.min) if first else None
    end = datetime.combine(last + timedelta(days=1), time.min) if last else None
    if t:
        lo, hi = parse_time_range(t)
        if lo is not None and first is not None:
            start = datetime.combine(first, lo[0])
        if hi is not None and last is not None:
            end = datetime.combine(last, hi[0]) + hi[1]
        if first is None and last is None:  # unreachable: parse_date_range requires one end
            return DateTimeRange(time_of_day=(lo[0] if lo else None, _end_of(*hi) if hi else None))
    if start is not None and end is not None and start >= end:
        raise InvalidMatchValue(f"date-time range ends before it starts: {date_value!r} {time_value!r}")
    return DateTimeRange(start=start, end=end)
