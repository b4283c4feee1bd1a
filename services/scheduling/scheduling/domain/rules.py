"""Booking rules configured as data (smart-imaging standard 5.3.4, 6.1.6, 6.1.7).

An admin stores rules as rows: a `type` this module knows, `params` validated by that type's model,
and a `name` and `reason` shown to whoever is refused. `evaluate()` checks one placement against
every enabled rule; booking refuses on any violation, and the auto-arranger skips placements that
have one. Each rule type is one small class with a docstring saying what it enforces.

Common parameter of every type: `channels` (list of booking channels the rule applies to; absent =
all channels).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scheduling.domain.model import CHANNELS, ExamType, Placement, PlannedExam, Ward


class Selector(BaseModel):
    """Which exams a rule is about; every given field must match (none given = every exam)."""

    model_config = ConfigDict(extra="forbid")
    codes: list[str] | None = None  # exam codes, e.g. ["RF-BARIUM-MEAL"]
    modality: str | None = None  # e.g. "CT"
    contrast: Literal["none", "iodinated", "gadolinium", "barium", "other"] | None = None
    body_part: str | None = None  # e.g. "ABDOMEN"
    fasting: bool | None = None

    def matches(self, exam: ExamType) -> bool:
        return (
            (self.codes is None or exam.code in self.codes)
            and (self.modality is None or exam.modality == self.modality)
            and (self.contrast is None or exam.contrast == self.contrast)
            and (self.body_part is None or (exam.body_part or "").upper() == self.body_part.upper())
            and (self.fasting is None or exam.fasting == self.fasting)
        )


class RuleParams(BaseModel):
    """Parameters every rule type has."""

    model_config = ConfigDict(extra="forbid")
    channels: list[str] | None = None


@dataclass(frozen=True)
class Violation:
    rule: str  # the rule's name, as the admin called it
    type: str
    reason: str  # the admin's text, shown to the booker

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "type": self.type, "reason": self.reason}


@dataclass
class RuleContext:
    """Everything a rule may look at besides the placement itself."""

    now: datetime
    tz: ZoneInfo
    patient_exams: Sequence[PlannedExam] = ()  # the patient's other live exams (stored and planned)
    session_start: datetime | None = None  # the room session that holds the slot
    session_end: datetime | None = None
    session_bookings: Sequence[tuple[datetime, datetime, bool]] = ()  # (start, end, mdr) in that session
    room_day_count: int = 0  # live appointments of the room that day (this placement excluded)
    technologist_day_count: int = 0
    ward: Ward | None = None
    no_shows: Sequence[datetime] = ()  # when the patient's no-shows were
    extra: dict[str, Any] = field(default_factory=dict)


class RuleType:
    type: ClassVar[str]
    Params: ClassVar[builtins.type[RuleParams]]
    params: Any  # an instance of the type's own Params

    def __init__(self, name: str, reason: str, params: RuleParams):
        self.name, self.reason, self.params = name, reason, params

    def applies(self, p: Placement) -> bool:
        return self.params.channels is None or p.channel in self.params.channels

    def allows(self, p: Placement, ctx: RuleContext) -> bool:
        raise NotImplementedError


# ---- the rule types ---------------------------------------------------------------------------


class BookingWindow(RuleType):
    """How far ahead a slot may be booked and the cut-off before its start (5.3.4 (1))."""

    type = "booking_window"

    class Params(RuleParams):
        max_days_ahead: int | None = Field(None, ge=0)  # e.g. 30: no slot after today + 30 days
        min_minutes_before: int = Field(0, ge=0)  # e.g. 60: no booking within the hour before start
        exempt_critical: bool = True  # critical/stat patients ignore the window

    def allows(self, p: Placement, ctx: RuleContext) -> bool:
        if self.params.exempt_critical and p.request.critical:
            return True
        if p.start < ctx.now + timedelta(minutes=self.params.min_minutes_before):
            return False
        if self.params.max_days_ahead is not None:
            last_day = ctx.now.astimezone(ctx.tz).date() + timedelta(days=self.params.max_days_ahead)
            if p.start.astimezone(ctx.tz).date() > last_day:
                return False
        return True


class Sequence_(RuleType):
    """On one day, exams matching `then` may not come before exams matching `first` (6.1.7 (1)),
    e.g. no barium study before an abdominal CT."""

    type = "sequence"

    class Params(RuleParams):
        first: Selector
        then: Selector

    def allows(self, p: Placement, ctx: RuleContext) -> bool:
        day = p.start.astimezone(ctx.tz).date()
        for other in ctx.patient_exams:
            if other.start.astimezone(ctx.tz).date() != day:
                continue
            if self.params.then.matches(p.exam) and self.params.first.matches(other.exam) and p.start < other.end:
                return False
            if self.params.first.matches(p.exam) and self.params.then.matches(other.exam) and other.start < p.end:
                return False
        return True


class MinimumGap(RuleType):
    """At least `min_hours` between an exam matching `a` and one matching `b` of the same patient,
    e.g. two iodinated-contrast exams (6.1.7 (1))."""

    type = "min_gap"

    class Params(RuleParams):
        a: Selector
        b: Selector | None = None  # absent: same as a
        min_hours: float = Field(gt=0)

    def allows(self, p: Placement, ctx: RuleContext) -> bool:
        a, b = self.params.a, self.params.b or self.params.a
        gap = timedelta(hours=self.params.min_hours)
        for other in ctx.patient_exams:
            if (a.matches(p.exam) and b.matches(other.exam)) or (b.matches(p.exam) and a.matches(other.exam)):
                apart = max(other.start - p.end, p.start - other.end)
                if apart < gap:
                    return False
        return True


class LatestStart(RuleType):
    """Exams matching `selector` start no later than a local time, e.g. fasting exams first in the morning."""

    type = "latest_start"

    class Params(RuleParams):
        selector: Selector
        latest: time  # e.g. "10:00"

    def allows(self, p: Placement, ctx: RuleContext) -> bool:
        if not self.params.selector.matches(p.exam):
            return True
        return p.start.astimezone(ctx.tz).time() <= self.params.latest


class InpatientProximity(RuleType):
    """Inpatients go to rooms near their ward: same building or same campus (6.1.6 (1))."""

    type = "inpatient_proximity"

    class Params(RuleParams):
        within: Literal["campus", "building"] = "campus"

    def allows(self, p: Placement, ctx: RuleContext) -> bool:
        if p.request.patient_class != "inpatient" or ctx.ward is None:
            return True
        if ctx.ward.campus != p.room.campus:
            return False
        return self.params.within == "campus" or ctx.ward.building == p.room.building


class CriticalReserve(RuleType):
    """Slots starting within the next `reserved_minutes` are kept for critical and stat patients
    (critical patients first, 6.1.6 (2))."""

    type = "critical_reserve"

    class Params(RuleParams):
        reserved_minutes: int = Field(gt=0)
        modality: str | None = None

    def allows(self, p: Placement, ctx: RuleContext) -> bool:
        if p.request.critical or (self.params.modality and p.room.modality != self.params.modality):
            return True
        return p.start >= ctx.now + timedelta(minutes=self.params.reserved_minutes)


class MdrSeparation(RuleType):
    """Multi-drug-resistant patients apart from others (6.1.6 (2), 6.1.7 (4)): only in the set rooms,
    or only in the last `tail_minutes` of a session; nobody else after them in that session."""

    type = "mdr_separation"

    class Params(RuleParams):
        room_ids: list[str] | None = None  # MDR patients only here
        tail_minutes: int | None = Field(60, ge=0)  # MDR patients only this close to the session's end

    def allows(self, p: Placement, ctx: RuleContext) -> bool:
        if p.request.mdr:
            if self.params.room_ids is not None and p.room.id in self.params.room_ids:
                return True
            if self.params.room_ids is not None and self.params.tail_minutes is None:
                return False
            if self.params.tail_minutes is not None and ctx.session_end is not None:
                return p.start >= ctx.session_end - timedelta(minutes=self.params.tail_minutes)
            return False
        if self.params.room_ids is not None and p.room.id in self.params.room_ids:
            return True  # a set MDR room is disinfected between patients
        # After an MDR patient the room waits for terminal disinfection: nobody later in the session.
        return not any(mdr and start <= p.start for start, _end, mdr in ctx.session_bookings)


class Capacity(RuleType):
    """At most `max_per_day` exams a day per room or per technologist (5.3.4 (4))."""

    type = "capacity"

    class Params(RuleParams):
        per: Literal["room", "technologist"] = "room"
        max_per_day: int = Field(ge=0)
        modality: str | None = None

    def allows(self, p: Placement, ctx: RuleContext) -> bool:
        if self.params.modality and p.room.modality != self.params.modality:
            return True
        if self.params.per == "room":
            return ctx.room_day_count < self.params.max_per_day
        if p.technologist_id is None:
            return True
        return ctx.technologist_day_count < self.params.max_per_day


class NoShowLimit(RuleType):
    """A patient with `max_no_shows` or more no-shows in `window_days` may not book through the
    listed channels, e.g. online (5.3.4 (5))."""

    type = "no_show_limit"

    class Params(RuleParams):
        max_no_shows: int = Field(ge=1)
        window_days: int = Field(180, ge=1)

    def allows(self, p: Placement, ctx: RuleContext) -> bool:
        since = ctx.now - timedelta(days=self.params.window_days)
        return sum(1 for t in ctx.no_shows if t >= since) < self.params.max_no_shows


RULE_TYPES: dict[str, type[RuleType]] = {
    cls.type: cls
    for cls in (
        BookingWindow,
        Sequence_,
        MinimumGap,
        LatestStart,
        InpatientProximity,
        CriticalReserve,
        MdrSeparation,
        Capacity,
        NoShowLimit,
    )
}


class InvalidRule(ValueError):
    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.errors = errors or []


def build_rule(name: str, type_: str, params: dict[str, Any], reason: str) -> RuleType:
    """A rule object from its stored row; InvalidRule when the type or parameters are wrong."""
    cls = RULE_TYPES.get(type_)
    if cls is None:
        raise InvalidRule(f"unknown rule type {type_!r}; known: {', '.join(sorted(RULE_TYPES))}")
    try:
        parsed = cls.Params.model_validate(params)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise InvalidRule(f"parameters of {type_} rule are invalid", errors) from exc
    unknown = set(parsed.channels or ()) - set(CHANNELS)
    if unknown:
        raise InvalidRule(f"unknown channel(s) {sorted(unknown)}; known: {', '.join(CHANNELS)}")
    return cls(name, reason, parsed)


def evaluate(rules: Sequence[RuleType], p: Placement, ctx: RuleContext, *, first_only: bool = False) -> list[Violation]:
    """The rules this placement breaks (all of them, or only the first when searching)."""
    broken: list[Violation] = []
    for rule in rules:
        if rule.applies(p) and not rule.allows(p, ctx):
            broken.append(Violation(rule.name, rule.type, rule.reason))
            if first_only:
                break
    return broken


def rule_type_docs() -> list[dict[str, Any]]:
    """Each rule type with its description and parameter schema, for the admin's form."""
    return [
        {"type": t, "description": (cls.__doc__ or "").strip(), "params_schema": cls.Params.model_json_schema()}
        for t, cls in sorted(RULE_TYPES.items())
    ]
