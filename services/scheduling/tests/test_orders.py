"""What the event handlers apply (domain/orders.py, given the data as it travels): an arrival marks
the booked appointment arrived; a merge moves appointments and no-shows to the surviving record; a
redelivered order changes nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime

from imaging_common.events import CloudEvent, parse_as
from imaging_common.events.types import (
    ExamCompleted,
    ExamItem,
    ExamStarted,
    OrderCreated,
    PatientArrived,
    PatientMerged,
    PatientRef,
)
from scheduling.domain import booking, orders

from .conftest import at, book, day_after, put_appointment


def event(model):  # type: ignore[no-untyped-def]
    """The model as a handler gets it: through its CloudEvent, parsed and checked by the library."""
    return parse_as(CloudEvent.from_data(model, source="/imaging/test"), type(model))


async def test_order_created_is_idempotent_and_makes_unknown_exam_types(conn, scheduler, world) -> None:
    code = world.id("DX-HAND")
    order = OrderCreated(
        order_id=world.id("O"),
        accession_number=world.id("ACC"),
        requested_procedure_id="RP1",
        study_instance_uid="1.2.3",
        ordered_at=datetime.now(UTC),
        patient=PatientRef(empi_id=world.id("E"), patient_id="P1", name="王五"),
        items=[ExamItem(code=code, name="手部DR", modality="DX")],
        patient_class="inpatient",
        ward="W3",
    )
    for _ in range(2):
        async with conn.transaction():
            await orders.apply_order(conn, scheduler, event(order))
    rows = await conn.fetch("SELECT * FROM exam_request WHERE order_id = $1", order.order_id)
    assert len(rows) == 1 and rows[0]["patient_class"] == "inpatient" and rows[0]["ward"] == "W3"
    exam = await conn.fetchrow("SELECT * FROM exam_type WHERE code = $1", code)
    assert exam["auto_created"] and exam["duration_minutes"] == orders.DEFAULT_MINUTES["DX"]


async def test_patient_arrived_marks_the_appointment(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    order = await world.order(exam)
    a = await book(conn, scheduler, order, exam, room, at(day_after(1), 9))
    arrived = PatientArrived(
        order_id=order,
        accession_number=a["accession_number"],
        patient=PatientRef(**a["patient"]),
        appointment_id=a["id"],
        queue_id="q1",
        queue_number="CT001",
        arrived_at=datetime.now(UTC),
    )
    async with conn.transaction():
        await orders.apply_patient_arrived(conn, scheduler, event(arrived))
    assert await conn.fetchval("SELECT status FROM appointment WHERE id = $1::uuid", a["id"]) == "arrived"


async def test_merge_moves_no_shows_to_the_survivor(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    old, survivor = world.id("E-old"), world.id("E-gold")
    order = await world.order(exam, patient=old)
    await put_appointment(world, order, exam, room, at(day_after(-3), 9), status="noshow")
    merged = PatientMerged(surviving=PatientRef(empi_id=survivor, patient_id="PG", name="赵六"), merged_empi_ids=[old])
    async with conn.transaction():
        await orders.apply_patient_merged(conn, event(merged))
    assert await booking.no_show_count(conn, survivor) == 1
    assert await booking.no_show_count(conn, old) == 0


async def test_mpps_moves_the_appointment_to_checked_in_then_fulfilled(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-CHEST")
    order = await world.order(exam)
    a = await book(conn, scheduler, order, exam, room, at(day_after(1), 10))
    common = dict(accession_number=a["accession_number"], study_instance_uid="1.2.3",
                  patient=PatientRef(**a["patient"]), mpps_uid="1.2.3.4", station_ae_title="CT1", modality="CT")
    async with conn.transaction():  # the patient skipped the desk: booked -> checked-in
        await orders.apply_exam_progress(conn, scheduler, event(ExamStarted(**common, started_at=datetime.now(UTC))))
    assert await conn.fetchval("SELECT status FROM appointment WHERE id = $1::uuid", a["id"]) == "checked-in"
    done = ExamCompleted(**common, completed_at=datetime.now(UTC), exam_code=exam)
    for _ in range(2):  # a second delivery finds nothing left to move
        async with conn.transaction():
            await orders.apply_exam_progress(conn, scheduler, event(done))
    assert await conn.fetchval("SELECT status FROM appointment WHERE id = $1::uuid", a["id"]) == "fulfilled"
    history = await conn.fetch("SELECT * FROM appointment_history WHERE appointment_id = $1::uuid ORDER BY id", a["id"])
    assert [h["to_status"] for h in history][-2:] == ["checked-in", "fulfilled"]
