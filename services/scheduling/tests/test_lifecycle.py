"""The appointment lifecycle: the FHIR status table, holds that expire, no-shows recorded and
counted, cancellations and reschedules keeping their reasons, events written with the change."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest
from scheduling.domain import booking, housekeeping
from scheduling.domain.booking import BookingRefused, Scheduler, transition
from scheduling.domain.states import FINAL, NEW, TRANSITIONS, Action, InvalidTransition, State, is_forward

from .conftest import ACTOR, TZ, at, book, day_after, put_appointment


def test_every_transition_goes_forward_and_nothing_leaves_a_final_status() -> None:
    for (before, action), after in TRANSITIONS.items():
        assert is_forward(before, after), (before, action, after)
        if before in FINAL:
            assert action is Action.ERROR, (before, action)
    assert {s.value for s in State if s is not NEW} == {
        "proposed",
        "pending",
        "booked",
        "arrived",
        "checked-in",
        "fulfilled",
        "cancelled",
        "noshow",
        "entered-in-error",
        "waitlist",
    }
    with pytest.raises(InvalidTransition):
        booking.next_state(State.BOOKED, Action.HOLD)
    with pytest.raises(InvalidTransition):
        booking.next_state(State.CANCELLED, Action.BOOK)
    assert booking.next_state(NEW, Action.BOOK) is State.BOOKED


async def outbox(conn, appointment_id: str) -> list[dict]:
    rows = await conn.fetch(
        "SELECT type, envelope FROM outbox WHERE envelope->>'subject' = $1 ORDER BY 1", appointment_id
    )
    return [{"type": r["type"], **json.loads(r["envelope"])} for r in rows]


async def test_booking_writes_appointment_booked_with_station_ae_title(conn, scheduler, world) -> None:
    room = await world.room("CT1", ae="CT1_AE")
    exam = await world.exam("CT-HEAD")
    order = await world.order(exam)
    a = await book(conn, scheduler, order, exam, room, at(day_after(2), 9))
    events = await outbox(conn, a["id"])
    assert [e["type"] for e in events] == ["appointment.booked"]
    info = events[0]["data"]["appointment"]
    assert info["station_ae_title"] == "CT1_AE" and info["room_id"] == room and info["exam_code"] == exam
    assert datetime.fromisoformat(info["booked_at"]) == a["created_at"]  # the dashboard's order -> booked step
    audit = await conn.fetchval(
        "SELECT count(*) FROM audit.audit_log WHERE entity = 'appointment' AND entity_id = $1", a["id"]
    )
    assert audit >= 1


async def test_hold_expires_and_gives_the_slot_back(conn, world) -> None:
    s = Scheduler(tz=TZ, hold_minutes=1 / 60)  # a one-second hold
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    first, second = await world.order(exam), await world.order(exam, patient=world.id("P2"))
    start = at(day_after(2), 9)
    held = await book(conn, s, first, exam, room, start, "online", hold=True)
    assert held["status"] == "pending" and held["hold_expires_at"] is not None
    assert await outbox(conn, held["id"]) == []  # a hold is not announced; only a booking is
    with pytest.raises(BookingRefused) as info:
        await book(conn, s, second, exam, room, start)
    assert [v.rule for v in info.value.violations] == ["slot-taken"]
    await asyncio.sleep(1.2)
    # the background task expires it (here one round of it); reads and bookings also expire lazily
    async with conn.transaction():
        assert await booking.expire_holds(conn, s.now()) >= 1
    row = await conn.fetchrow("SELECT status, reason FROM appointment WHERE id = $1::uuid", held["id"])
    assert (row["status"], row["reason"]) == ("cancelled", "hold expired")
    other = await book(conn, s, second, exam, room, start)
    assert other["status"] == "booked"
    with pytest.raises(InvalidTransition):
        await transition(conn, s, held["id"], Action.BOOK, actor=ACTOR)  # too late to confirm


async def test_hold_confirmed_in_time_becomes_booked(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    order = await world.order(exam)
    held = await book(conn, scheduler, order, exam, room, at(day_after(2), 10), "kiosk", hold=True)
    booked = await transition(conn, scheduler, held["id"], Action.BOOK, actor=ACTOR)
    assert booked["status"] == "booked" and booked["hold_expires_at"] is None
    assert [e["type"] for e in await outbox(conn, held["id"])] == ["appointment.booked"]


async def test_no_show_recorded_with_reason_and_counted(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    patient = world.id("P")
    first = await world.order(exam, patient=patient)
    a = await book(conn, scheduler, first, exam, room, at(day_after(1), 9))
    done = await transition(conn, scheduler, a["id"], Action.NO_SHOW, actor=ACTOR, reason="电话未接通，未到检")
    assert (done["status"], done["reason"]) == ("noshow", "电话未接通，未到检")
    assert await booking.no_show_count(conn, patient) == 1
    [event] = [e for e in await outbox(conn, a["id"]) if e["type"] == "appointment.noshow"]
    assert event["data"]["no_show_count"] == 1 and event["data"]["reason"] == "电话未接通，未到检"
    with pytest.raises(InvalidTransition):
        await transition(conn, scheduler, a["id"], Action.ARRIVE, actor=ACTOR)  # no way back from a no-show

    # an appointment long past without an arrival is recorded by the background task, and counted too
    second = await world.order(exam, patient=patient)
    past = await put_appointment(world, second, exam, room, at(day_after(-1), 9))
    hk = housekeeping.Housekeeping(reminder_hours=0, no_show_after_minutes=60)
    await housekeeping.record_no_shows(conn, scheduler, hk)
    assert await conn.fetchval("SELECT status FROM appointment WHERE id = $1::uuid", past) == "noshow"
    assert await booking.no_show_count(conn, patient) == 2


async def test_cancel_keeps_reason_and_frees_the_slot(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    order, other = await world.order(exam), await world.order(exam, patient=world.id("P2"))
    start = at(day_after(2), 9)
    a = await book(conn, scheduler, order, exam, room, start)
    done = await transition(conn, scheduler, a["id"], Action.CANCEL, actor=ACTOR, reason="病人要求改期")
    assert (done["status"], done["reason"]) == ("cancelled", "病人要求改期")
    cancelled = [e for e in await outbox(conn, a["id"]) if e["type"] == "appointment.cancelled"]
    assert cancelled[0]["data"]["reason"] == "病人要求改期"
    b = await book(conn, scheduler, other, exam, room, start)
    assert b["status"] == "booked"
    with pytest.raises(InvalidTransition):
        await transition(conn, scheduler, a["id"], Action.BOOK, actor=ACTOR)


async def test_reschedule_moves_and_announces(conn, scheduler, world) -> None:
    r1, r2 = await world.room("CT1"), await world.room("CT2")
    exam = await world.exam("CT-HEAD")
    order = await world.order(exam)
    a = await book(conn, scheduler, order, exam, r1, at(day_after(2), 9))
    moved = await booking.reschedule(
        conn, scheduler, a["id"], actor=ACTOR, room_id=r2, start=at(day_after(3), 14), reason="病人要求"
    )
    assert moved["room_id"] == r2 and moved["start"] == at(day_after(3), 14) and moved["status"] == "booked"
    [event] = [e for e in await outbox(conn, a["id"]) if e["type"] == "appointment.rescheduled"]
    assert event["data"]["previous_room_id"] == r1
    # the arrival, check-in and fulfilment walk forward
    for ev, status in ((Action.ARRIVE, "arrived"), (Action.CHECK_IN, "checked-in"), (Action.FULFIL, "fulfilled")):
        assert (await transition(conn, scheduler, a["id"], ev, actor=ACTOR))["status"] == status
    history = await conn.fetch(
        "SELECT event FROM appointment_history WHERE appointment_id = $1::uuid ORDER BY id", a["id"]
    )
    assert [h["event"] for h in history] == ["book", "reschedule", "arrive", "check-in", "fulfil"]


async def test_database_refuses_overlap_even_without_the_app_checks(conn, world) -> None:
    import asyncpg

    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    a, b = await world.order(exam), await world.order(exam)
    await put_appointment(world, a, exam, room, at(day_after(2), 9))
    with pytest.raises(asyncpg.ExclusionViolationError):
        await put_appointment(world, b, exam, room, at(day_after(2), 9, 5))


async def test_reminder_sent_once(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD", preparation="检查前去除金属物品")
    order = await world.order(exam)
    a = await book(conn, scheduler, order, exam, room, at(day_after(1), 16))
    hk = housekeeping.Housekeeping(reminder_hours=72, no_show_after_minutes=None)
    await housekeeping.send_reminders(conn, scheduler, hk)
    await housekeeping.send_reminders(conn, scheduler, hk)
    reminders = [e for e in await outbox(conn, a["id"]) if e["type"] == "appointment.reminder"]
    assert len(reminders) == 1 and reminders[0]["data"]["preparation"] == "检查前去除金属物品"
