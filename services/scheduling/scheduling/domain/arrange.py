"""Auto-arrangement (smart-imaging standard 6.1.5): the earliest slot for one exam; for several exams
of one patient, one day with the exams as close together as the rules allow, in a valid order.

For each day from the earliest, every order of the exams is tried; in each order the first exam
takes each allowed slot of the day in turn and the others follow greedily at the earliest allowed
slot after the previous exam (plus the next exam's preparation time). The plan with the shortest
span wins (ties: the earliest start). When no day within the horizon holds them all (a rule may
demand days between two exams), the exams are placed one after the other, each at its earliest.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from scheduling.domain.calendar import Calendar
from scheduling.domain.model import ExamRequest, ExamType, Placement, PlannedExam

MAX_EXAMS = 5  # 5! orders; more exams are split by the desk into visits
FIRST_SLOT_TRIES = 24  # starts of the first exam tried per order and day
FOLLOW_LOOKAHEAD = 40  # placements looked at for each following exam before the branch is given up
ORDER_GIVE_UP = 3  # failed starts after which an order is dropped for the day

Exams = Sequence[tuple[ExamRequest, ExamType]]


@dataclass(frozen=True)
class Plan:
    placements: list[Placement]
    same_day: bool

    @property
    def span(self) -> timedelta:
        return max(p.end for p in self.placements) - min(p.start for p in self.placements)


def _planned(p: Placement) -> PlannedExam:
    return PlannedExam(p.exam, p.start, p.end, p.room.id)


class _Allowed:
    """One exam's placements of one day that break nothing on their own, generated once and kept,
    in time order; a plan then re-checks only what depends on the plan's other exams."""

    def __init__(
        self,
        cal: Calendar,
        request: ExamRequest,
        exam: ExamType,
        day: date,
        channel: str,
        not_before: datetime,
        campus: str | None,
    ):
        self._source: Iterator[Placement] = (
            p
            for p in cal.candidates_on(day, request, exam, channel, not_before=not_before, campus=campus)
            if not cal.check(p, first_only=True)
        )
        self._seen: list[Placement] = []

    def __iter__(self) -> Iterator[Placement]:
        i = 0
        while True:
            if i < len(self._seen):
                yield self._seen[i]
            else:
                p = next(self._source, None)
                if p is None:
                    return
                self._seen.append(p)
                yield p
            i += 1


def _next_allowed(cal: Calendar, allowed: _Allowed, after: datetime, plan: list[PlannedExam]) -> Placement | None:
    """The first placement at or after `after` that the plan so far allows; looks a bounded way ahead,
    since an order that a rule forbids would otherwise scan the whole day for every start."""
    looked = 0
    for p in allowed:
        if p.start < after:
            continue
        if not cal.check(p, plan=plan, first_only=True):
            return p
        looked += 1
        if looked >= FOLLOW_LOOKAHEAD:
            return None
    return None


def _span(plan: Sequence[Placement]) -> timedelta:
    return max(p.end for p in plan) - min(p.start for p in plan)


def _key(plan: Sequence[Placement]) -> tuple[timedelta, datetime]:
    return (_span(plan), min(p.start for p in plan))


def _tightest(exams: Exams) -> timedelta:
    """The shortest span any plan can have: back to back, each after its preparation but the first."""
    preps = [e.preparation_minutes for _, e in exams]
    minutes = sum(e.duration_minutes for _, e in exams) + sum(preps) - max(preps)
    return timedelta(minutes=minutes)


def arrange_day(
    cal: Calendar, exams: Exams, channel: str, day: date, *, not_before: datetime, campus: str | None = None
) -> list[Placement] | None:
    """The tightest valid plan of these exams on one day, or None."""
    since = max(not_before, cal.now)
    allowed = [_Allowed(cal, r, e, day, channel, since, campus) for r, e in exams]
    floor = _tightest(exams)
    best: list[Placement] | None = None
    for order in itertools.permutations(range(len(exams))):
        if best is not None and _span(best) <= floor:
            break  # back to back already: no order can do better, and earlier orders win ties
        failures = 0
        for tried, first in enumerate(allowed[order[0]]):
            if tried >= FIRST_SLOT_TRIES:
                break
            placed = [first]
            for idx in order[1:]:
                exam = exams[idx][1]
                after = placed[-1].end + timedelta(minutes=exam.preparation_minutes)
                plan = [_planned(x) for x in placed]
                nxt = _next_allowed(cal, allowed[idx], after, plan)
                if nxt is None:
                    break
                placed.append(nxt)
            if len(placed) < len(exams):
                failures += 1
                if failures >= ORDER_GIVE_UP:
                    break  # this order likely breaks a rule whatever the start: try the next order
                continue
            if len(placed) == len(exams):
                # the first exam was checked alone: check it again against the others (order rules)
                rest = [_planned(x) for x in placed[1:]]
                if cal.check(first, plan=rest, first_only=True):
                    continue
                if best is None or _key(placed) < _key(best):
                    best = placed
                    if _span(best) <= floor:
                        break
    return sorted(best, key=lambda p: p.start) if best else None


def arrange(
    cal: Calendar,
    exams: Exams,
    channel: str,
    *,
    not_before: datetime,
    days: int,
    campus: str | None = None,
    fallback: bool = True,
) -> Plan | None:
    """The best plan for these exams of one patient within `days` days of the calendar, or None."""
    if not exams:
        return None
    if len(exams) > MAX_EXAMS:
        raise ValueError(f"at most {MAX_EXAMS} exams are arranged together")
    if len(exams) == 1:
        request, exam = exams[0]
        p = cal.earliest(request, exam, channel, not_before=not_before, days=days, campus=campus)
        return Plan([p], True) if p else None
    start_day = cal.local_day(max(not_before, cal.now))
    for offset in range(days):
        day = start_day + timedelta(days=offset)
        best = arrange_day(cal, exams, channel, day, not_before=not_before, campus=campus)
        if best is not None:
            return Plan(best, True)
    return one_after_another(cal, exams, channel, not_before=not_before, days=days, campus=campus) if fallback else None


def one_after_another(
    cal: Calendar, exams: Exams, channel: str, *, not_before: datetime, days: int, campus: str | None
) -> Plan | None:
    """Each exam at its earliest allowed slot after the previous one (days apart when rules say so)."""
    placed: list[Placement] = []
    after = not_before
    for request, exam in exams:
        p = cal.earliest(
            request, exam, channel, not_before=after, days=days, campus=campus, plan=[_planned(x) for x in placed]
        )
        if p is None:
            return None
        placed.append(p)
        after = p.end
    return Plan(placed, False)
