"""Booking operations, each one transaction: find, hold, book, confirm, reschedule, cancel, arrive,
check in, fulfil, no-show, expire holds. Every change writes its history row, its audit record and
its event (through the outbox) in the same transaction as the change itself.

Concurrency: the exclusion constraints of the `appointment` table are what make a double booking
impossible, across any number of replicas. Advisory locks per patient and per room-day only make
the counting rules (capacity, quotas, spacing) exact under concurrency; a booking that loses the
race on the constraint gets `SlotTaken` and the auto-booking retries on fresh data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
from imaging_common import audit, events
from imaging_common.events import versions
from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentNoShow,
    AppointmentRescheduled,
    PatientRef,
)

from scheduling.domain import appointments
from scheduling.domain.arrange import Plan, arrange, one_after_another
from scheduling.domain.calendar import Calendar, builtin, load_calendar
from scheduling.domain.model import ExamRequest, ExamType, Placement
from scheduling.domain.rules import Violation
from scheduling.domain.states import NEW, Action, InvalidTransition, State, next_state

SOURCE = "scheduling"
T = TypeVar("T")
SEARCH_CHUNKS = (1, 2, 4, 7) + (14,) * 30  # days read per step of the earliest-slot search


class BookingRefused(Exception):
    """The booking breaks rules or constraints; each violation names the rule and its reason."""

    def __init__(self, violations: Sequence[Violation]):
        super().__init__("; ".join(f"{v.rule}: {v.reason}" for v in violations))
        self.violations = list(violations)


class SlotTaken(Exception):
    """Another booking took the slot first (the database's exclusion constraint said so)."""


class NotFound(LookupError):
    pass


@dataclass(frozen=True)
class Scheduler:
    """How this center schedules; from the service settings."""

    tz: ZoneInfo
    hold_minutes: float = 15
    horizon_days: int = 60

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class Actor:
    user_id: str
    username: str = ""
    source_ip: str | None = None


SYSTEM = Actor("system:scheduling", "scheduling")


async def next_version(conn: asyncpg.Connection, appointment_id: str) -> int:
    """The appointment's next version, numbered in the transaction that publishes its event: consumers
    apply appointment.* events of one appointment in this order (imaging_common.events.versions)."""
    return await versions.next_version(conn, f"appointment:{appointment_id}")


def _lock_key(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256(":".join(("scheduling",) + parts).encode()).digest()[:8], "big", signed=True)


async def _lock(conn: asyncpg.Connection, keys: Sequence[tuple[str, ...]]) -> None:
    """Transaction-scoped advisory locks, always taken in one order so two bookings never deadlock."""
    for key in sorted(set(_lock_key(*k) for k in keys)):
        await conn.execute("SELECT pg_advisory_xact_lock($1)", key)


async def expire_holds(conn: asyncpg.Connection, now: datetime) -> int:
    """Holds past their time give the slot back (run lazily before reads and by the background task)."""
    rows = await conn.fetch(
        """UPDATE appointment SET status = 'cancelled', reason = 'hold expired', updated_at = $1
            WHERE status = 'pending' AND hold_expires_at <= $1 RETURNING id, empi_id""",
        now,
    )
    for r in rows:
        await conn.execute(
            "INSERT INTO appointment_history (appointment_id, event, from_status, to_status, actor, detail) "
            "VALUES ($1, $2, 'pending', 'cancelled', $3, '{}')",
            r["id"],
            Action.EXPIRE.value,
            SYSTEM.user_id,
        )
    return len(rows)


async def get_request(conn: asyncpg.Connection, order_id: str, exam_code: str, *, lock: bool = False) -> ExamRequest:
    row = await conn.fetchrow(
        "SELECT * FROM exam_request WHERE order_id = $1 AND exam_code = $2" + (" FOR UPDATE" if lock else ""),
        order_id,
        exam_code,
    )
    if row is None:
        raise NotFound(f"no exam {exam_code!r} requested by order {order_id!r}")
    return ExamRequest.from_row(row)


async def get_exam(conn: asyncpg.Connection, code: str) -> ExamType:
    row = await conn.fetchrow("SELECT * FROM exam_type WHERE code = $1", code)
    if row is None:
        raise NotFound(f"exam type {code!r} is not configured")
    return ExamType.from_row(row)


async def _calendar_for(
    conn: asyncpg.Connection,
    s: Scheduler,
    days: Sequence[date],
    modalities: Sequence[str],
    empi_id: str,
    now: datetime,
    base: Calendar | None = None,
    *,
    window: bool = True,
) -> Calendar:
    first, last = min(days), max(days)
    start = datetime.combine(first, datetime.min.time(), s.tz)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), s.tz)
    return await load_calendar(
        conn, tz=s.tz, now=now, start=start, end=end, modalities=modalities, empi_id=empi_id, base=base, window=window
    )


async def _search_days(
    conn: asyncpg.Connection,
    s: Scheduler,
    *,
    since: datetime,
    horizon: int,
    modalities: Sequence[str],
    empi_id: str,
    now: datetime,
    find: Callable[[Calendar, datetime, int], T | None],
) -> tuple[T | None, Calendar | None]:
    """The one chunked-day search: nearest days first, read in growing chunks (SEARCH_CHUNKS), each
    chunk's calendar on top of the ones before; `find(calendar, not_before, days)` answers per chunk.
    The earliest slot is usually near, and a near day is a small read. Returns the first answer and
    the last calendar read (for a search that goes on over the whole horizon)."""
    first = since.astimezone(s.tz).date()
    base: Calendar | None = None
    offset = 0
    for size in SEARCH_CHUNKS:
        if offset >= horizon:
            break
        chunk = min(size, horizon - offset)
        day0 = first + timedelta(days=offset)
        offset += chunk
        cal = base = await _calendar_for(
            conn, s, [day0, day0 + timedelta(days=chunk - 1)], modalities, empi_id, now, base
        )
        found = find(cal, max(since, datetime.combine(day0, datetime.min.time(), s.tz)), chunk)
        if found is not None:
            return found, base
    return None, base


def _refuse_if_not_open(request: ExamRequest) -> None:
    if request.status != "open":
        raise BookingRefused([builtin("order-cancelled", f"order {request.order_id} was cancelled")])


async def _live_for_request(conn: asyncpg.Connection, request: ExamRequest) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id::text AS id, status FROM appointment WHERE order_id = $1 AND exam_code = $2 "
        "AND status IN ('proposed', 'pending', 'booked', 'arrived', 'checked-in', 'waitlist')",
        request.order_id,
        request.exam_code,
    )


async def _history(
    conn: asyncpg.Connection,
    appointment_id: str,
    event: Action,
    before: str | None,
    after: str,
    actor: Actor,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO appointment_history (appointment_id, event, from_status, to_status, actor, detail) "
        "VALUES ($1::uuid, $2, $3, $4, $5, $6::jsonb)",
        appointment_id,
        event.value,
        before,
        after,
        actor.user_id,
        json.dumps(detail or {}, default=str),
    )


async def _audit(
    conn: asyncpg.Connection, actor: Actor, action: str, a: dict[str, Any], detail: dict[str, Any]
) -> None:
    await audit.record(
        conn,
        actor=actor.user_id,
        action=action,
        entity="appointment",
        entity_id=a["id"],
        patient_id=a["empi_id"],
        source_ip=actor.source_ip,
        outcome="success",
        detail=detail,
    )


async def _insert(
    conn: asyncpg.Connection, p: Placement, status: State, hold_until: datetime | None, actor: Actor
) -> str:
    try:
        async with conn.transaction():  # a savepoint: a lost race leaves the outer transaction usable
            return str(
                await conn.fetchval(
                    """INSERT INTO appointment (order_id, exam_code, accession_number, empi_id, room_id,
                                            technologist_id, during, status, channel, hold_expires_at, booked_by, mdr)
                   VALUES ($1, $2, $3, $4, $5, $6, tstzrange($7, $8), $9, $10, $11, $12, $13) RETURNING id""",
                    p.request.order_id,
                    p.request.exam_code,
                    p.request.accession_number,
                    p.request.empi_id,
                    p.room.id,
                    p.technologist_id,
                    p.start,
                    p.end,
                    status.value,
                    p.channel,
                    hold_until,
                    actor.user_id,
                    p.request.mdr,
                )
            )
    except asyncpg.ExclusionViolationError as exc:
        raise SlotTaken(f"room {p.room.id} or its technologist was just booked at {p.start.isoformat()}") from exc
    except asyncpg.UniqueViolationError as exc:
        raise BookingRefused(
            [
                builtin(
                    "already-booked",
                    f"exam {p.request.exam_code} of order {p.request.order_id} already has an appointment",
                )
            ]
        ) from exc


async def _store(
    conn: asyncpg.Connection, s: Scheduler, p: Placement, *, hold: bool, actor: Actor, now: datetime
) -> dict[str, Any]:
    event = Action.HOLD if hold else Action.BOOK
    status = next_state(NEW, event)
    hold_until = now + timedelta(minutes=s.hold_minutes) if hold else None
    appointment_id = await _insert(conn, p, status, hold_until, actor)
    await _history(
        conn, appointment_id, event, None, status, actor, {"room_id": p.room.id, "start": p.start, "channel": p.channel}
    )
    a = await appointments.get(conn, appointment_id)
    assert a is not None
    if status is State.BOOKED:
        version = await next_version(conn, appointment_id)
        await events.publish(
            conn, AppointmentBooked(appointment=appointments.info(a, version)), source=SOURCE, subject=appointment_id
        )
    await _audit(conn, actor, "create", a, {"status": status.value, "room_id": p.room.id, "start": p.start.isoformat()})
    return a


async def _refuse_if_taken(
    conn: asyncpg.Connection, s: Scheduler, room_id: str, start: datetime, end: datetime, now: datetime
) -> None:
    """One indexed read: is the room already taken then?"""
    if await conn.fetchval(
        "SELECT 1 FROM appointment WHERE room_id = $1 AND during && tstzrange($2, $3) "
        "AND status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled') "
        "AND (hold_expires_at IS NULL OR hold_expires_at > $4) LIMIT 1",
        room_id,
        start,
        end,
        now,
    ):
        raise BookingRefused(
            [builtin("slot-taken", f"room {room_id} is already booked at {start.astimezone(s.tz):%Y-%m-%d %H:%M}")]
        )


async def book_slot(
    conn: asyncpg.Connection,
    s: Scheduler,
    *,
    order_id: str,
    exam_code: str,
    room_id: str,
    start: datetime,
    channel: str,
    actor: Actor,
    hold: bool = False,
) -> dict[str, Any]:
    """Book (or hold) this exam in this room at this time, or refuse with every broken rule."""
    now = s.now()
    exam = await get_exam(conn, exam_code)
    end = start + timedelta(minutes=exam.duration_minutes)
    # A slot already taken is refused before queueing for the room's lock, and again first thing
    # under it: under contention most attempts are late, and they should not hold up the next one.
    await _refuse_if_taken(conn, s, room_id, start, end, now)
    day = start.astimezone(s.tz).date()
    async with conn.transaction():
        await expire_holds(conn, now)
    # The configuration (rooms, hours, rules, quotas) is read before the locks, to keep the locked
    # part short: only what other bookings change is read under them.
    empi_id = (await get_request(conn, order_id, exam_code)).empi_id
    base = await _calendar_for(conn, s, [day], [exam.modality], empi_id, now, window=False)
    async with conn.transaction():
        request = await get_request(conn, order_id, exam_code, lock=True)
        _refuse_if_not_open(request)
        await _lock(conn, [("patient", request.empi_id), ("room", room_id, day.isoformat())])
        await _refuse_if_taken(conn, s, room_id, start, end, now)
        if await _live_for_request(conn, request):
            raise BookingRefused(
                [
                    builtin(
                        "already-booked",
                        f"exam {exam_code} of order {order_id} already has an appointment; reschedule it instead",
                    )
                ]
            )
        cal = await _calendar_for(conn, s, [day], [exam.modality], request.empi_id, now, base)
        room = cal.rooms.get(room_id)
        if room is None:
            raise BookingRefused([builtin("room-modality", f"no {exam.modality} room {room_id!r}")])
        _, tech = cal._technologist_for(room.id, start, end)
        p = Placement(request, exam, room, start, end, channel, tech)
        broken = cal.check(p)
        if broken:
            raise BookingRefused(broken)
        return await _store(conn, s, p, hold=hold, actor=actor, now=now)


async def find_earliest(
    conn: asyncpg.Connection,
    s: Scheduler,
    *,
    order_id: str,
    exam_code: str,
    channel: str,
    not_before: datetime | None = None,
    days: int | None = None,
    campus: str | None = None,
    ignore: str | None = None,
) -> Placement | None:
    """The earliest allowed placement of one requested exam (6.1.5), without booking it."""
    now = s.now()
    request = await get_request(conn, order_id, exam_code)
    _refuse_if_not_open(request)
    exam = await get_exam(conn, exam_code)
    found, _ = await _search_days(
        conn,
        s,
        since=max(not_before or now, now),
        horizon=days or s.horizon_days,
        modalities=[exam.modality],
        empi_id=request.empi_id,
        now=now,
        find=lambda cal, start, chunk: cal.earliest(
            request, exam, channel, not_before=start, days=chunk, campus=campus, ignore=ignore
        ),
    )
    return found


async def book_earliest(
    conn: asyncpg.Connection,
    s: Scheduler,
    *,
    order_id: str,
    exam_code: str,
    channel: str,
    actor: Actor,
    hold: bool = False,
    not_before: datetime | None = None,
    campus: str | None = None,
    attempts: int = 5,
) -> dict[str, Any]:
    """Find the earliest allowed slot and book it; a lost race retries on fresh data.

    Auto-bookings of one modality take turns (an advisory lock held from the search to the commit),
    so they never chase the same slot; a booking of an explicit slot can still win in between,
    which is what the retry is for.
    """
    exam = await get_exam(conn, exam_code)
    for attempt in range(attempts):
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key("auto", exam.modality))
                p = await find_earliest(
                    conn,
                    s,
                    order_id=order_id,
                    exam_code=exam_code,
                    channel=channel,
                    not_before=not_before,
                    campus=campus,
                )
                if p is None:
                    raise BookingRefused(
                        [builtin("no-slot", f"no slot satisfies every rule within {s.horizon_days} days")]
                    )
                return await book_slot(
                    conn,
                    s,
                    order_id=order_id,
                    exam_code=exam_code,
                    room_id=p.room.id,
                    start=p.start,
                    channel=channel,
                    actor=actor,
                    hold=hold,
                )
        except (SlotTaken, BookingRefused) as exc:
            if isinstance(exc, BookingRefused) and not _raced(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _raced(exc: BookingRefused) -> bool:
    """Refusals that mean someone else booked between our search and our booking."""
    return all(
        v.rule in {"slot-taken", "technologist", "channel-quota", "capacity"} or v.type == "capacity"
        for v in exc.violations
    )


async def plan_exams(
    conn: asyncpg.Connection,
    s: Scheduler,
    *,
    requests: Sequence[tuple[str, str]],
    channel: str,
    not_before: datetime | None = None,
    days: int | None = None,
    campus: str | None = None,
) -> Plan | None:
    """An arrangement for several requested exams of one patient (6.1.5), without booking it."""
    now = s.now()
    pairs: list[tuple[ExamRequest, ExamType]] = []
    for order_id, exam_code in requests:
        request = await get_request(conn, order_id, exam_code)
        _refuse_if_not_open(request)
        pairs.append((request, await get_exam(conn, exam_code)))
    patients = {r.empi_id for r, _ in pairs}
    if len(patients) != 1:
        raise BookingRefused([builtin("one-patient", "an arrangement is for the exams of one patient")])
    empi_id = patients.pop()
    modalities = [e.modality for _, e in pairs]
    base: Calendar | None = None
    since = max(not_before or now, now)
    horizon = days or s.horizon_days
    first = since.astimezone(s.tz).date()
    if len(pairs) > 1:  # one day for all, by the same chunked search as one exam's
        plan, base = await _search_days(
            conn,
            s,
            since=since,
            horizon=horizon,
            modalities=modalities,
            empi_id=empi_id,
            now=now,
            find=lambda cal, start, chunk: arrange(
                cal, pairs, channel, not_before=start, days=chunk, campus=campus, fallback=False
            ),
        )
        if plan is not None:
            return plan
    cal = await _calendar_for(conn, s, [first, first + timedelta(days=horizon)], modalities, empi_id, now, base)
    if len(pairs) == 1:
        return arrange(cal, pairs, channel, not_before=since, days=horizon, campus=campus)
    return one_after_another(cal, pairs, channel, not_before=since, days=horizon, campus=campus)


async def book_plan(
    conn: asyncpg.Connection, s: Scheduler, plan: Plan, *, actor: Actor, hold: bool = False
) -> list[dict[str, Any]]:
    """Book every placement of a plan, all or nothing."""
    now = s.now()
    async with conn.transaction():
        first = plan.placements[0]
        keys = [("patient", first.request.empi_id)] + [
            ("room", p.room.id, p.start.astimezone(s.tz).date().isoformat()) for p in plan.placements
        ]
        await _lock(conn, keys)
        await expire_holds(conn, now)
        days = [p.start.astimezone(s.tz).date() for p in plan.placements]
        cal = await _calendar_for(conn, s, days, [p.exam.modality for p in plan.placements], first.request.empi_id, now)
        booked: list[dict[str, Any]] = []
        for p in plan.placements:
            request = await get_request(conn, p.request.order_id, p.request.exam_code, lock=True)
            _refuse_if_not_open(request)
            if await _live_for_request(conn, request):
                raise BookingRefused(
                    [
                        builtin(
                            "already-booked",
                            f"exam {request.exam_code} of order {request.order_id} already has an appointment",
                        )
                    ]
                )
            p = Placement(request, p.exam, cal.rooms[p.room.id], p.start, p.end, p.channel, p.technologist_id)
            broken = cal.check(p)
            if broken:
                raise BookingRefused(broken)
            a = await _store(conn, s, p, hold=hold, actor=actor, now=now)
            cal.add_busy(p, a["id"])
            cal.patient_exams.append(_planned(p, a["id"]))
            booked.append(a)
        return booked


def _planned(p: Placement, appointment_id: str) -> Any:
    from scheduling.domain.model import PlannedExam

    return PlannedExam(p.exam, p.start, p.end, p.room.id, appointment_id)


# ---- changes of an existing appointment -----------------------------------------------------------


async def _load_for_change(
    conn: asyncpg.Connection, s: Scheduler, appointment_id: str, now: datetime
) -> dict[str, Any]:
    a = await appointments.get(conn, appointment_id, for_update=True)
    if a is None:
        raise NotFound(f"no appointment {appointment_id}")
    if a["status"] == State.PENDING and a["hold_expires_at"] is not None and a["hold_expires_at"] <= now:
        await expire_holds(conn, now)
        a = await appointments.get(conn, appointment_id, for_update=True)
        assert a is not None
    return a


async def transition(
    conn: asyncpg.Connection,
    s: Scheduler,
    appointment_id: str,
    event: Action,
    *,
    actor: Actor,
    reason: str | None = None,
) -> dict[str, Any]:
    """Move an appointment along its lifecycle (states.py), publishing what others must know."""
    now = s.now()
    async with conn.transaction():
        a = await _load_for_change(conn, s, appointment_id, now)
        before = a["status"]
        after = next_state(before, event)
        await conn.execute(
            "UPDATE appointment SET status = $2, reason = coalesce($3, reason), hold_expires_at = NULL, "
            "updated_at = $4 WHERE id = $1::uuid",
            appointment_id,
            after.value,
            reason,
            now,
        )
        await _history(conn, appointment_id, event, before, after, actor, {"reason": reason} if reason else {})
        changed = await appointments.get(conn, appointment_id)
        assert changed is not None
        a = changed
        if event is Action.BOOK:
            version = await next_version(conn, appointment_id)
            await events.publish(
                conn,
                AppointmentBooked(appointment=appointments.info(a, version)),
                source=SOURCE,
                subject=appointment_id,
            )
        elif event is Action.CANCEL and before in (State.BOOKED, State.ARRIVED, State.CHECKED_IN):
            await events.publish(
                conn,
                AppointmentCancelled(
                    appointment_id=appointment_id,
                    order_id=a["order_id"],
                    accession_number=a["accession_number"],
                    reason=reason or "cancelled",
                    version=await next_version(conn, appointment_id),
                ),
                source=SOURCE,
                subject=appointment_id,
            )
        elif event is Action.NO_SHOW:
            count = await no_show_count(conn, a["empi_id"])
            await events.publish(
                conn,
                AppointmentNoShow(
                    appointment_id=appointment_id,
                    order_id=a["order_id"],
                    accession_number=a["accession_number"],
                    patient=PatientRef.model_validate(a["patient"]),
                    reason=reason,
                    no_show_count=count,
                    version=await next_version(conn, appointment_id),
                ),
                source=SOURCE,
                subject=appointment_id,
            )
        await _audit(
            conn, actor, "update", a, {"event": event.value, "from": before, "to": after.value, "reason": reason}
        )
        return a


async def no_show_count(conn: asyncpg.Connection, empi_id: str, since: datetime | None = None) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM appointment WHERE empi_id = $1 AND status = 'noshow' "
            "AND ($2::timestamptz IS NULL OR lower(during) >= $2)",
            empi_id,
            since,
        )
    )


async def reschedule(
    conn: asyncpg.Connection,
    s: Scheduler,
    appointment_id: str,
    *,
    actor: Actor,
    room_id: str | None = None,
    start: datetime | None = None,
    reason: str | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    """Move a held or booked appointment to a new time (and room); with no time given, to the earliest."""
    now = s.now()
    if start is None:
        a0 = await appointments.get(conn, appointment_id)
        if a0 is None:
            raise NotFound(f"no appointment {appointment_id}")
        p0 = await find_earliest(
            conn,
            s,
            order_id=a0["order_id"],
            exam_code=a0["exam_code"],
            channel=channel or a0["channel"],
            ignore=appointment_id,
        )
        if p0 is None:
            raise BookingRefused([builtin("no-slot", f"no slot satisfies every rule within {s.horizon_days} days")])
        room_id, start = p0.room.id, p0.start
    async with conn.transaction():
        a = await _load_for_change(conn, s, appointment_id, now)
        before = a["status"]
        after = next_state(before, Action.RESCHEDULE)
        room_id = room_id or a["room_id"]
        request = await get_request(conn, a["order_id"], a["exam_code"], lock=True)
        _refuse_if_not_open(request)
        exam = await get_exam(conn, a["exam_code"])
        day = start.astimezone(s.tz).date()
        await _lock(conn, [("patient", request.empi_id), ("room", room_id, day.isoformat())])
        cal = await _calendar_for(conn, s, [day], [exam.modality], request.empi_id, now)
        room = cal.rooms.get(room_id)
        if room is None:
            raise BookingRefused([builtin("room-modality", f"no {exam.modality} room {room_id!r}")])
        end = start + timedelta(minutes=exam.duration_minutes)
        ch = channel or a["channel"]
        cal.busy = {k: [b for b in v if b.appointment_id != appointment_id] for k, v in cal.busy.items()}
        if a["technologist_id"]:
            cal.tech_busy[a["technologist_id"]] = [
                (b0, b1) for b0, b1 in cal.tech_busy.get(a["technologist_id"], []) if (b0, b1) != (a["start"], a["end"])
            ]
        _, tech = cal._technologist_for(room.id, start, end)
        p = Placement(request, exam, room, start, end, ch, tech)
        broken = cal.check(p, ignore=appointment_id)
        if broken:
            raise BookingRefused(broken)
        try:
            async with conn.transaction():
                await conn.execute(
                    "UPDATE appointment SET room_id = $2, technologist_id = $3, during = tstzrange($4, $5), "
                    "channel = $6, updated_at = $7, reminded_at = NULL WHERE id = $1::uuid",
                    appointment_id,
                    room.id,
                    tech,
                    start,
                    end,
                    ch,
                    now,
                )
        except asyncpg.ExclusionViolationError as exc:
            raise SlotTaken(f"room {room.id} was just booked at {start.isoformat()}") from exc
        await _history(
            conn,
            appointment_id,
            Action.RESCHEDULE,
            before,
            after,
            actor,
            {"from_room": a["room_id"], "from_start": a["start"], "room_id": room.id, "start": start, "reason": reason},
        )
        new = await appointments.get(conn, appointment_id)
        assert new is not None
        if after is State.BOOKED:
            await events.publish(
                conn,
                AppointmentRescheduled(
                    appointment=appointments.info(new, await next_version(conn, appointment_id)),
                    previous_start=a["start"],
                    previous_room_id=a["room_id"],
                ),
                source=SOURCE,
                subject=appointment_id,
            )
        await _audit(
            conn,
            actor,
            "update",
            new,
            {"event": "reschedule", "from_start": a["start"].isoformat(), "start": start.isoformat(), "reason": reason},
        )
        return new


__all__ = [
    "Actor",
    "BookingRefused",
    "InvalidTransition",
    "NotFound",
    "Scheduler",
    "SlotTaken",
    "book_earliest",
    "book_plan",
    "book_slot",
    "expire_holds",
    "find_earliest",
    "no_show_count",
    "plan_exams",
    "reschedule",
    "transition",
]
