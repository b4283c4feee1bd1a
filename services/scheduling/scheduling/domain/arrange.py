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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduling.domain.calendar import Calendar
from scheduling.domain.model import ExamRequest, ExamType, Placement, PlannedExam

MAX_EXAMS = 5  # 5! orders; more exams are split by the desk into visits
FIRST_SLOT_TRIES = 40  # starts of the first exam tried per order and day


@dataclass(frozen=True)
class Plan:
    placements: list[Placement]
    same_day: bool

    @property
    def span(self) -> timedelta:
        return max(p.end for p in self.placements) - min(p.start for p in self.placements)


def _planned(p: Placement) -> PlannedExam:
    return PlannedExam(p.exam, p.start, p.end, p.room.id)


def _follow(cal: Calendar, order: Sequence[tuple[ExamRequest, ExamType]], first: Placement, channel: str,
            campus: str | None) -> list[Placement] | None:
    """Place the rest of `order` after `first`, each at its earliest allowed slot the same day."""
    placed = [first]
    for request, exam in order[1:]:
        after = placed[-1].end + timedelta(minutes=exam.preparation_minutes)
        p = cal.earliest(request, exam, channel, not_before=after, days=1, campus=campus,
                         plan=[_planned(x) for x in placed], same_day_only=True)
        if p is None or cal.local_day(p.start) != cal.local_day(first.start):
            return None
        placed.append(p)
    return placed


def arrange(cal: Calendar, exams: Sequence[tuple[ExamRequest, ExamType]], channel: str, *, not_before: datetime,
            days: int, campus: str | None = None) -> Plan | None:
    """The best plan for these exams of one patient, or None when nothing fits in `days` days."""
    if not exams:
        return None
    if len(exams) > MAX_EXAMS:
        raise ValueError(f"at most {MAX_EXAMS} exams are arranged together")
    if len(exams) == 1:
        request, exam = exams[0]
        p = cal.earliest(request, exam, channel, not_before=not_before, days=days, campus=campus)
        return Plan([p], True) if p else None
    start_day = cal.local_day(max(not_before, cal.now))
    floor = _tightest(exams)
    for offset in range(days):
        day = start_day + timedelta(days=offset)
        best: list[Placement] | None = None
        for order in itertools.permutations(exams):
            if best is not None and _span(best) <= floor:
                break  # back to back already: no order can do better, and earlier orders win ties
            request, exam = order[0]
            tried = 0
            for first in cal.candidates_on(day, request, exam, channel, not_before=max(not_before, cal.now),
                                           campus=campus):
                if cal.check(first, first_only=True):
                    continue
                tried += 1
                if tried > FIRST_SLOT_TRIES:
                    break
                plan = _follow(cal, order, first, channel, campus)
                if plan is not None and (best is None or _key(plan) < _key(best)):
                    best = plan
                    if _span(best) <= floor:
                        break
        if best is not None:
            return Plan(sorted(best, key=lambda p: p.start), True)
    return _one_after_another(cal, exams, channel, not_before=not_before, days=days, campus=campus)


def _tightest(exams: Sequence[tuple[ExamRequest, ExamType]]) -> timedelta:
    """The shortest span any plan can have: back to back, each after its preparation but the first."""
    preps = [e.preparation_minutes for _, e in exams]
    minutes = sum(e.duration_minutes for _, e in exams) + sum(preps) - max(preps)
    return timedelta(minutes=minutes)


def _span(plan: Sequence[Placement]) -> timedelta:
    return max(p.end for p in plan) - min(p.start for p in plan)


def _key(plan: Sequence[Placement]) -> tuple[timedelta, datetime]:
    return (_span(plan), min(p.start for p in plan))


def _one_after_another(cal: Calendar, exams: Sequence[tuple[ExamRequest, ExamType]], channel: str, *,
                       not_before: datetime, days: int, campus: str | None) -> Plan | None:
    placed: list[Placement] = []
    after = not_before
    for request, exam in exams:
        p = cal.earliest(request, exam, channel, not_before=after, days=days, campus=campus,
                         plan=[_planned(x) for x in placed])
        if p is None:
            return None
        placed.append(p)
        after = p.end
    return Plan(placed, False)
