"""The pool's calendar for a window of days: who is free when, and which placements are allowed.

`load_calendar()` reads rooms, working hours, closures, the roster, quotas, rules and the live
appointments of the window in a handful of queries; everything after that is in memory, so the
earliest-slot search and the auto-arranger cost no round trips per candidate.

Besides the admin's rules (rules.py) a placement must satisfy the built-in constraints below; they
refuse with a `built-in` violation naming the constraint.
"""

from __future__ import annotations

import bisect
import heapq
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from scheduling.domain.model import ExamRequest, ExamType, Placement, PlannedExam, Room, RosterEntry, Session, Ward
from scheduling.domain.rules import RuleContext, RuleType, Violation, build_rule, evaluate
from scheduling.domain.states import LIVE_IN_ROOM

LIVE = [s.value for s in LIVE_IN_ROOM]


def builtin(name: str, reason: str) -> Violation:
    return Violation(name, "built-in", reason)


@dataclass(frozen=True)
class Busy:
    start: datetime
    end: datetime
    appointment_id: str
    mdr: bool
    channel: str
    technologist_id: str | None


@dataclass(frozen=True)
class Quota:
    channel: str
    room_id: str | None
    modality: str | None
    max_per_session: int
    release_minutes_before: int


@dataclass
class Calendar:
    tz: ZoneInfo
    now: datetime
    rooms: dict[str, Room]
    sessions: dict[tuple[str, int], list[Session]]  # (room, weekday) -> sessions
    roster: dict[tuple[str, int], list[RosterEntry]]
    closures: list[tuple[str | None, str | None, datetime, datetime]]  # room, campus, start, end
    busy: dict[str, list[Busy]]  # room -> sorted by start
    tech_busy: dict[str, list[tuple[datetime, datetime]]]
    quotas: list[Quota]
    rules: list[RuleType]
    wards: dict[str, Ward]
    patient_exams: list[PlannedExam] = field(default_factory=list)
    no_shows: list[datetime] = field(default_factory=list)
    _by_day: dict[tuple[str, date], list[Busy]] | None = None
    _sessions_cache: dict[tuple[str, date], list[tuple[datetime, datetime, Session]]] = field(default_factory=dict)
    _roster_cache: dict[tuple[str, date], list[tuple[datetime, datetime, str]]] = field(default_factory=dict)
    _tech_by_day: dict[tuple[str, date], list[tuple[datetime, datetime]]] | None = None

    # ---- time helpers ---------------------------------------------------------------------

    def at(self, day: date, t: time) -> datetime:
        # Kept in UTC like the database's values: aware datetimes with one tzinfo compare without
        # asking the zone for offsets, which the search does millions of times.
        return datetime.combine(day, t, self.tz).astimezone(UTC)

    def local_day(self, t: datetime) -> date:
        return t.astimezone(self.tz).date()

    def sessions_on(self, room_id: str, day: date) -> list[tuple[datetime, datetime, Session]]:
        key = (room_id, day)
        found = self._sessions_cache.get(key)
        if found is None:
            found = [
                (self.at(day, s.starts), self.at(day, s.ends), s)
                for s in self.sessions.get((room_id, day.isoweekday()), ())
            ]
            self._sessions_cache[key] = found
        return found

    def roster_on(self, room_id: str, day: date) -> list[tuple[datetime, datetime, str]]:
        key = (room_id, day)
        found = self._roster_cache.get(key)
        if found is None:
            found = [
                (self.at(day, e.starts), self.at(day, e.ends), e.technologist_id)
                for e in self.roster.get((room_id, day.isoweekday()), ())
            ]
            self._roster_cache[key] = found
        return found

    def session_of(self, room_id: str, start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
        for s0, s1, _ in self.sessions_on(room_id, self.local_day(start)):
            if s0 <= start and end <= s1:
                return s0, s1
        return None

    # ---- occupancy --------------------------------------------------------------------------

    def _closed(self, room: Room, start: datetime, end: datetime) -> bool:
        for room_id, campus, c0, c1 in self.closures:
            if (room_id is None or room_id == room.id) and (campus is None or campus == room.campus):
                if c0 < end and start < c1:
                    return True
        return False

    def _room_overlap(self, room_id: str, start: datetime, end: datetime, ignore: str | None) -> Busy | None:
        # An appointment may start the day before (a night session) and run into this one.
        day = self.local_day(start)
        for d in (day - timedelta(days=1), day):
            for b in self.busy_on(room_id, d):
                if b.start < end and b.end > start and b.appointment_id != ignore:
                    return b
        return None

    def _technologist_for(self, room_id: str, start: datetime, end: datetime) -> tuple[bool, str | None]:
        """(staffed, technologist): a room without a roster needs nobody; with one, a rostered
        technologist free for the whole exam."""
        day = self.local_day(start)
        entries = self.roster_on(room_id, day)
        if not entries:
            return True, None
        for r0, r1, technologist_id in entries:
            if r0 <= start and end <= r1:
                if not any(b0 < end and start < b1 for b0, b1 in self.tech_busy_on(technologist_id, day)):
                    return True, technologist_id
        return False, None

    def tech_busy_on(self, technologist_id: str, day: date) -> list[tuple[datetime, datetime]]:
        if self._tech_by_day is None:
            index: dict[tuple[str, date], list[tuple[datetime, datetime]]] = defaultdict(list)
            for tid, items in self.tech_busy.items():
                for b0, b1 in items:
                    index[(tid, self.local_day(b0))].append((b0, b1))
            self._tech_by_day = dict(index)
        return self._tech_by_day.get((technologist_id, day), [])

    def busy_on(self, room_id: str, day: date) -> list[Busy]:
        """A room's live appointments of one local day (indexed on first use)."""
        if self._by_day is None:
            index: dict[tuple[str, date], list[Busy]] = defaultdict(list)
            for rid, items in self.busy.items():
                for b in items:
                    index[(rid, self.local_day(b.start))].append(b)
            self._by_day = dict(index)
        return self._by_day.get((room_id, day), [])

    def day_count(self, room_id: str, day: date) -> int:
        return len(self.busy_on(room_id, day))

    def technologist_day_count(self, technologist_id: str, day: date) -> int:
        return len(self.tech_busy_on(technologist_id, day))

    # ---- one placement ---------------------------------------------------------------------------

    def context(self, p: Placement, plan: Sequence[PlannedExam] = (), ignore: str | None = None) -> RuleContext:
        day = self.local_day(p.start)
        session = self.session_of(p.room.id, p.start, p.end)
        in_session = []
        if session:
            in_session = [
                (b.start, b.end, b.mdr)
                for b in self.busy_on(p.room.id, day)
                if b.appointment_id != ignore and session[0] <= b.start < session[1]
            ]
            in_session += [
                (x.start, x.end, p.request.mdr)
                for x in plan
                if x.room_id == p.room.id and session[0] <= x.start < session[1]
            ]
        ward = self.wards.get(p.request.ward) if p.request.ward else None
        return RuleContext(
            now=self.now,
            tz=self.tz,
            patient_exams=[x for x in self.patient_exams if x.appointment_id != ignore] + list(plan),
            session_start=session[0] if session else None,
            session_end=session[1] if session else None,
            session_bookings=in_session,
            room_day_count=self.day_count(p.room.id, day)
            - (1 if ignore and self._ignored_same_day(p.room.id, ignore, day) else 0)
            + sum(1 for x in plan if x.room_id == p.room.id and self.local_day(x.start) == day),
            technologist_day_count=self.technologist_day_count(p.technologist_id, day) if p.technologist_id else 0,
            ward=ward,
            no_shows=self.no_shows,
        )

    def _ignored_same_day(self, room_id: str, appointment_id: str, day: date) -> bool:
        return any(b.appointment_id == appointment_id for b in self.busy_on(room_id, day))

    def hard_violations(
        self, p: Placement, ignore: str | None = None, plan: Sequence[PlannedExam] = ()
    ) -> list[Violation]:
        """Built-in constraints: the right room, open, free, staffed, and within the channel's quota."""
        out: list[Violation] = []
        room, exam = p.room, p.exam
        if not room.active:
            out.append(builtin("room-active", f"room {room.id} is not in service"))
        if room.modality != exam.modality:
            out.append(builtin("room-modality", f"room {room.id} is {room.modality}, the exam needs {exam.modality}"))
        missing = exam.required_capabilities - room.capabilities
        if missing:
            out.append(builtin("room-capability", f"room {room.id} lacks {', '.join(sorted(missing))}"))
        session = self.session_of(room.id, p.start, p.end)
        if session is None:
            out.append(
                builtin(
                    "working-hours", f"room {room.id} does not work from {self._fmt(p.start)} to {self._fmt(p.end)}"
                )
            )
        elif (p.start - session[0]) % timedelta(minutes=room.slice_minutes):
            out.append(
                builtin(
                    "time-slice",
                    f"room {room.id} takes patients every {room.slice_minutes} min from {self._fmt(session[0])}",
                )
            )
        if self._closed(room, p.start, p.end):
            out.append(builtin("closure", f"room {room.id} is closed (maintenance or holiday) at that time"))
        if self._room_overlap(room.id, p.start, p.end, ignore) or any(
            x.room_id == room.id and x.start < p.end and p.start < x.end for x in plan
        ):
            out.append(builtin("slot-taken", f"room {room.id} is already booked at {self._fmt(p.start)}"))
        staffed, _ = self._technologist_for(room.id, p.start, p.end)
        if not staffed:
            out.append(builtin("technologist", f"no technologist of room {room.id} is free at {self._fmt(p.start)}"))
        if session is not None:
            v = self._quota_violation(p, session, ignore)
            if v:
                out.append(v)
        for x in self.patient_exams + list(plan):
            if x.appointment_id != ignore and x.start < p.end and p.start < x.end:
                out.append(builtin("patient-busy", f"the patient has another exam at {self._fmt(x.start)}"))
                break
        return out

    def _quota_violation(
        self, p: Placement, session: tuple[datetime, datetime], ignore: str | None
    ) -> Violation | None:
        for q in self.quotas:
            if (
                q.channel != p.channel
                or (q.room_id and q.room_id != p.room.id)
                or (q.modality and q.modality != p.room.modality)
            ):
                continue
            if self.now >= session[0] - timedelta(minutes=q.release_minutes_before):
                continue  # released: unused quota is open to every channel now
            used = sum(
                1
                for b in self.busy_on(p.room.id, self.local_day(session[0]))
                if b.channel == p.channel and b.appointment_id != ignore and session[0] <= b.start < session[1]
            )
            if used >= q.max_per_session:
                return builtin(
                    "channel-quota",
                    f"the {p.channel} quota of this session ({q.max_per_session}) is used "
                    f"up until {self._fmt(session[0] - timedelta(minutes=q.release_minutes_before))}",
                )
        return None

    def check(
        self, p: Placement, *, plan: Sequence[PlannedExam] = (), ignore: str | None = None, first_only: bool = False
    ) -> list[Violation]:
        """Every reason this placement cannot be booked (empty: it can); with first_only, the first
        found, rules first: a search's candidates are free already, and a rule refuses them cheaper."""
        if first_only:
            broken = evaluate(self.rules, p, self.context(p, plan, ignore), first_only=True)
            return broken or self.hard_violations(p, ignore, plan)[:1]
        hard = self.hard_violations(p, ignore, plan)
        return hard + evaluate(self.rules, p, self.context(p, plan, ignore))

    def _fmt(self, t: datetime) -> str:
        return t.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    # ---- search ----------------------------------------------------------------------------------

    def room_rank(self, room: Room, request: ExamRequest, campus: str | None) -> int:
        """Nearer is better: same building as the inpatient's ward, then same campus (6.1.6 (1))."""
        ward = self.wards.get(request.ward) if request.ward else None
        if ward is not None:
            return (
                0
                if (room.campus == ward.campus and room.building == ward.building)
                else 1
                if room.campus == ward.campus
                else 2
            )
        if campus:
            return 0 if room.campus == campus else 1
        return 0

    def candidates_on(
        self,
        day: date,
        request: ExamRequest,
        exam: ExamType,
        channel: str,
        *,
        not_before: datetime,
        campus: str | None = None,
        room_ids: Iterable[str] | None = None,
        ignore: str | None = None,
        plan: Sequence[PlannedExam] = (),
    ) -> Iterator[Placement]:
        """Free, open, staffed placements of one day, earliest (then nearest) first; rules not yet checked.

        Lazy: each room yields its free slices in time order and the rooms are merged, so a search that
        stops at the first allowed placement generates little more than that."""
        duration = timedelta(minutes=exam.duration_minutes)
        wanted = set(room_ids) if room_ids is not None else None
        per_room = []
        for room in self.rooms.values():
            if (
                (wanted is not None and room.id not in wanted)
                or not room.active
                or room.modality != exam.modality
                or not exam.required_capabilities <= room.capabilities
            ):
                continue
            per_room.append(
                self._free_slices(room, day, duration, not_before, self.room_rank(room, request, campus), ignore, plan)
            )
        for t, _rank, _rid, room in heapq.merge(*per_room):
            end = t + duration
            staffed, tech = self._technologist_for(room.id, t, end)
            if staffed:
                yield Placement(request, exam, room, t, end, channel, tech)

    def _free_slices(
        self,
        room: Room,
        day: date,
        duration: timedelta,
        not_before: datetime,
        rank: int,
        ignore: str | None,
        plan: Sequence[PlannedExam],
    ) -> Iterator[tuple[datetime, int, str, Room]]:
        step = timedelta(minutes=room.slice_minutes)
        for s0, s1, _ in self.sessions_on(room.id, day):
            if s1 - duration < not_before:
                continue
            t = s0
            if not_before > s0:
                t = s0 + step * -(-(not_before - s0) // step)  # the first slice at or after not_before
            taken = sorted(
                [
                    (b.start, b.end)
                    for b in self.busy_on(room.id, day)
                    if b.start < s1 and b.end > s0 and b.appointment_id != ignore
                ]
                + [(x.start, x.end) for x in plan if x.room_id == room.id]
            )
            k = 0
            while t + duration <= s1:
                end = t + duration
                while k < len(taken) and taken[k][1] <= t:
                    k += 1
                clash = next(((b0, b1) for b0, b1 in taken[k : k + 8] if b0 < end and t < b1), None)
                if clash is not None:
                    t = s0 + step * -(-(clash[1] - s0) // step)  # the first slice after the clash
                    continue
                if not self._closed(room, t, end):
                    yield (t, rank, room.id, room)
                t += step

    def earliest(
        self,
        request: ExamRequest,
        exam: ExamType,
        channel: str,
        *,
        not_before: datetime,
        days: int,
        campus: str | None = None,
        room_ids: Iterable[str] | None = None,
        ignore: str | None = None,
        plan: Sequence[PlannedExam] = (),
        same_day_only: bool = False,
    ) -> Placement | None:
        """The earliest placement that breaks no constraint and no rule (6.1.5, one exam)."""
        first_day = self.local_day(max(not_before, self.now))
        for offset in range(1 if same_day_only else days):
            day = first_day + timedelta(days=offset)
            for p in self.candidates_on(
                day,
                request,
                exam,
                channel,
                not_before=max(not_before, self.now),
                campus=campus,
                room_ids=room_ids,
                ignore=ignore,
                plan=plan,
            ):
                if not self.check(p, plan=plan, ignore=ignore, first_only=True):
                    return p
        return None

    def add_busy(self, p: Placement, appointment_id: str) -> None:
        """Record a placement as taken (after booking it), keeping the lists sorted."""
        b = Busy(p.start, p.end, appointment_id, p.request.mdr, p.channel, p.technologist_id)
        items = self.busy.setdefault(p.room.id, [])
        bisect.insort(items, b, key=lambda x: x.start)
        if p.technologist_id:
            self.tech_busy.setdefault(p.technologist_id, []).append((p.start, p.end))
        self._by_day = self._tech_by_day = None


async def load_rules(conn: asyncpg.Connection) -> list[RuleType]:
    rows = await conn.fetch("SELECT name, type, params, reason FROM rule WHERE enabled ORDER BY name")
    return [build_rule(r["name"], r["type"], _obj(r["params"]), r["reason"]) for r in rows]


def _obj(v: Any) -> dict[str, Any]:
    return dict(json.loads(v)) if isinstance(v, str) else dict(v or {})


async def load_calendar(
    conn: asyncpg.Connection,
    *,
    tz: ZoneInfo,
    now: datetime,
    start: datetime,
    end: datetime,
    modalities: Iterable[str],
    empi_id: str | None = None,
    base: Calendar | None = None,
    window: bool = True,
) -> Calendar:
    """Everything the search needs for rooms of these modalities between start and end.

    With `base` (a calendar of the same search), the configuration — rooms, hours, roster, quotas,
    rules, wards — is taken from it and only the window's appointments and closures are read."""
    if base is None:
        mods = sorted(set(modalities))
        rooms = {
            r["id"]: Room.from_row(r) for r in await conn.fetch("SELECT * FROM room WHERE modality = ANY($1)", mods)
        }
        ids = list(rooms)
        sessions: dict[tuple[str, int], list[Session]] = defaultdict(list)
        for r in await conn.fetch("SELECT * FROM room_session WHERE room_id = ANY($1) ORDER BY starts", ids):
            sessions[(r["room_id"], r["weekday"])].append(
                Session(r["room_id"], r["weekday"], r["starts"], r["ends"], r["label"])
            )
        roster: dict[tuple[str, int], list[RosterEntry]] = defaultdict(list)
        for r in await conn.fetch("SELECT * FROM roster WHERE room_id = ANY($1) ORDER BY technologist_id", ids):
            roster[(r["room_id"], r["weekday"])].append(
                RosterEntry(r["technologist_id"], r["room_id"], r["weekday"], r["starts"], r["ends"])
            )
        quotas = [
            Quota(r["channel"], r["room_id"], r["modality"], r["max_per_session"], r["release_minutes_before"])
            for r in await conn.fetch("SELECT * FROM channel_quota")
        ]
        wards = {r["code"]: Ward(r["code"], r["campus"], r["building"]) for r in await conn.fetch("SELECT * FROM ward")}
        rules = await load_rules(conn)
        cal = Calendar(tz, now, rooms, dict(sessions), dict(roster), [], {}, {}, quotas, rules, wards)
        if empi_id:
            cal.no_shows = [
                r["t"]
                for r in await conn.fetch(
                    "SELECT lower(during) AS t FROM appointment WHERE empi_id = $1 AND status = 'noshow'", empi_id
                )
            ]
    else:
        cal = Calendar(
            tz,
            now,
            base.rooms,
            base.sessions,
            base.roster,
            [],
            {},
            {},
            base.quotas,
            base.rules,
            base.wards,
            no_shows=base.no_shows,
        )
    if not window:  # the configuration only; the caller loads the window later with this as base
        return cal
    ids = list(cal.rooms)
    cal.closures = [
        (r["room_id"], r["campus"], r["during"].lower, r["during"].upper)
        for r in await conn.fetch(
            "SELECT room_id, campus, during FROM closure WHERE during && tstzrange($1, $2) "
            "AND (room_id IS NULL OR room_id = ANY($3))",
            start,
            end,
            ids,
        )
    ]
    technologists = sorted({e.technologist_id for entries in cal.roster.values() for e in entries})
    # Two gist indexes (those of the exclusion constraints) answer this: the rooms' appointments,
    # and those of their technologists in other rooms.
    rows = await conn.fetch(
        """SELECT a.id::text AS id, a.room_id, a.during, a.channel, a.technologist_id, a.mdr
             FROM appointment a
            WHERE a.status = ANY($1) AND a.during && tstzrange($2, $3)
              AND (a.room_id = ANY($4) OR a.technologist_id = ANY($5))
            ORDER BY lower(a.during)""",
        LIVE,
        start,
        end,
        ids,
        technologists,
    )
    busy: dict[str, list[Busy]] = defaultdict(list)
    tech_busy: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for r in rows:
        during = r["during"]
        b = Busy(during.lower, during.upper, r["id"], r["mdr"], r["channel"], r["technologist_id"])
        if r["room_id"] in cal.rooms:
            busy[r["room_id"]].append(b)
        if b.technologist_id:
            tech_busy[b.technologist_id].append((b.start, b.end))
    cal.busy, cal.tech_busy = dict(busy), dict(tech_busy)
    if empi_id:
        cal.patient_exams = await patient_exams(conn, empi_id, start - timedelta(days=30), end + timedelta(days=30))
    return cal


async def patient_exams(conn: asyncpg.Connection, empi_id: str, start: datetime, end: datetime) -> list[PlannedExam]:
    rows = await conn.fetch(
        """SELECT a.id::text AS id, a.room_id, a.during, e.*
             FROM appointment a JOIN exam_type e ON e.code = a.exam_code
            WHERE a.empi_id = $1 AND a.status = ANY($2) AND a.during && tstzrange($3, $4)""",
        empi_id,
        LIVE,
        start,
        end,
    )
    return [
        PlannedExam(ExamType.from_row(r), r["during"].lower, r["during"].upper, r["room_id"], r["id"]) for r in rows
    ]
