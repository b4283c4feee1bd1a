"""Steps from events: orders, appointments (booked, rescheduled, cancelled), arrival, patient updates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentInfo,
    AppointmentRescheduled,
    ExamItem,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    PatientArrived,
    PatientMerged,
    PatientRef,
    PatientUpdated,
)
from worklist.domain import steps
from worklist.domain.query import StepQuery, find_steps

from .conftest import TZ, World


def patient(w: World, name: str = "张三", latin: str | None = "ZHANG^SAN") -> PatientRef:
    return PatientRef(empi_id=w.id("E"), patient_id=w.id("P"), name=name, name_latin=latin, sex="M")


def order(w: World, *codes: str) -> OrderCreated:
    return OrderCreated(
        order_id=w.id("O"), accession_number=w.id("A"), requested_procedure_id=w.id("R"),
        study_instance_uid=f"1.2.826.0.1.{int(w.tag, 16)}", patient=patient(w), ordering_doctor="LI^SI=李^四",
        ordering_department="呼吸科", clinical_diagnosis="咳嗽待查", ward="5病区", bed="12",
        items=[ExamItem(code=c, name=f"{c} 检查", modality="CT") for c in codes or ("CT-CHEST",)],
        special={"critical": True}, priority="urgent", ordered_at=datetime(2030, 3, 1, 1, 0, tzinfo=UTC),
    )


def appointment(w: World, start: datetime, code: str = "CT-CHEST", room: str = "R1") -> AppointmentInfo:
    return AppointmentInfo(
        appointment_id=w.id("AP"), order_id=w.id("O"), accession_number=w.id("A"), patient=patient(w),
        exam_code=code, exam_name="胸部CT平扫", modality="CT", room_id=w.id(room), room_name=f"CT室{room}",
        station_ae_title=w.station, start=start, end=start + timedelta(minutes=15),
    )


async def active(w: World) -> list:
    return await find_steps(w.conn, StepQuery(accession_number=w.id("A")))


async def test_order_creates_one_step_per_item_on_the_order_day(world: World) -> None:
    ids = await steps.apply_order_created(world.conn, order(world, "CT-CHEST", "CT-HEAD"), TZ)
    assert len(ids) == 2
    rows = await active(world)
    assert {r["protocol_code"] for r in rows} == {"CT-CHEST", "CT-HEAD"}
    row = rows[0]
    assert row["patient_name"] == "ZHANG^SAN=张三"
    assert row["pn_alpha"] == "ZHANG^SAN" and row["pn_ideo"] == "张三"
    assert row["start_at"] == datetime(2030, 3, 1, 9, 0)  # 01:00 UTC is 09:00 in Shanghai
    assert row["priority"] == "urgent" and "危重" in row["medical_alerts"]
    assert row["current_location"] == "5病区 12" and row["referring_physician"] == "LI^SI=李^四"
    assert row["sps_id"].startswith("S") and len(row["sps_id"]) <= 16


async def test_appointment_sets_time_room_and_station_and_keeps_order_data(world: World) -> None:
    await steps.apply_order_created(world.conn, order(world), TZ)
    start = datetime(2030, 3, 2, 2, 30, tzinfo=UTC)
    await steps.apply_appointment(world.conn, AppointmentBooked(appointment=appointment(world, start)), TZ)
    [row] = await active(world)
    assert row["start_at"] == datetime(2030, 3, 2, 10, 30)
    assert row["station_ae_title"] == world.station and row["location"] == "CT室R1"
    assert row["requested_procedure_id"] == world.id("R")  # from the order, not lost
    assert row["appointment_id"] == world.id("AP")


async def test_appointment_before_order_then_order_fills_in(world: World) -> None:
    start = datetime(2030, 3, 2, 2, 30, tzinfo=UTC)
    await steps.apply_appointment(world.conn, AppointmentBooked(appointment=appointment(world, start)), TZ)
    [row] = await active(world)
    assert row["source"] == "appointment" and row["study_instance_uid"].startswith("2.25.")
    await steps.apply_order_created(world.conn, order(world), TZ)
    [row] = await active(world)
    assert row["start_at"] == datetime(2030, 3, 2, 10, 30)  # the appointment's time stays
    assert row["study_instance_uid"] == f"1.2.826.0.1.{int(world.tag, 16)}"


async def test_reschedule_moves_and_cancel_removes_at_once(world: World) -> None:
    await steps.apply_order_created(world.conn, order(world), TZ)
    first = datetime(2030, 3, 2, 2, 30, tzinfo=UTC)
    await steps.apply_appointment(world.conn, AppointmentBooked(appointment=appointment(world, first)), TZ)
    later = datetime(2030, 3, 5, 6, 0, tzinfo=UTC)
    await steps.apply_appointment(world.conn, AppointmentRescheduled(
        appointment=appointment(world, later, room="R2"), previous_start=first, previous_room_id=world.id("R1")), TZ)
    [row] = await active(world)
    assert row["start_at"] == datetime(2030, 3, 5, 14, 0) and row["room_id"] == world.id("R2")
    changed = await steps.apply_appointment_cancelled(world.conn, AppointmentCancelled(
        appointment_id=world.id("AP"), order_id=world.id("O"), accession_number=world.id("A"), reason="patient"))
    assert changed == 1
    assert await active(world) == []
    # booking again brings it back
    await steps.apply_appointment(world.conn, AppointmentBooked(appointment=appointment(world, later)), TZ)
    assert len(await active(world)) == 1


async def test_order_cancelled_and_arrival_and_patient_update(world: World) -> None:
    await steps.apply_order_created(world.conn, order(world), TZ)
    await steps.apply_patient_arrived(world.conn, PatientArrived(
        order_id=world.id("O"), accession_number=world.id("A"), patient=patient(world), queue_id="q",
        queue_number="CT001", arrived_at=datetime.now(UTC)))
    [row] = await active(world)
    assert row["arrived_at"] is not None
    await steps.apply_patient_updated(world.conn, PatientUpdated(patient=patient(world, "张叁", "ZHANG^SAN")))
    [row] = await active(world)
    assert row["patient_name"] == "ZHANG^SAN=张叁" and row["pn_ideo"] == "张叁"
    cancelled = OrderCancelled(order_id=world.id("O"), accession_number=world.id("A"))
    await steps.apply_order_cancelled(world.conn, cancelled)
    assert await active(world) == []


async def test_import_is_an_upsert_and_replaces_data(world: World) -> None:
    await world.step(1)
    await world.step(1, patient_name="LI^SI=李^四")
    rows = await find_steps(world.conn, StepQuery(station_ae_title=world.station))
    assert len(rows) == 1 and rows[0]["patient_name"] == "LI^SI=李^四"


async def test_a_cancelled_order_stays_off_the_worklist_whatever_arrives_after_or_before(world: World) -> None:
    """Delivery order is not guaranteed: the cancel may come first, and a late booking never revives it."""
    cancelled = OrderCancelled(order_id=world.id("O"), accession_number=world.id("A"), reason="重复开单")
    assert await steps.apply_order_cancelled(world.conn, cancelled) == 0  # nothing to cancel yet: a tombstone
    start = datetime(2030, 3, 2, 2, 30, tzinfo=UTC)
    await steps.apply_order_created(world.conn, order(world), TZ)
    await steps.apply_appointment(world.conn, AppointmentBooked(appointment=appointment(world, start)), TZ)
    await steps.apply_appointment(world.conn, AppointmentRescheduled(
        appointment=appointment(world, start, room="R2"), previous_start=start, previous_room_id=world.id("R1")), TZ)
    assert await active(world) == []
    status = await world.conn.fetchval("SELECT status FROM scheduled_procedure_steps WHERE accession_number = $1",
                                       world.id("A"))
    assert status == "cancelled"  # kept, with its data, off the worklist
    await world.step(1, accession_number=world.id("A"), protocol_code="CT-CHEST")  # an import cannot revive it
    assert await active(world) == []


async def test_merged_patients_steps_answer_with_the_survivor_and_keep_what_the_merge_did_not_say(world: World) -> None:
    await steps.apply_order_created(world.conn, order(world), TZ)
    await world.conn.execute("UPDATE scheduled_procedure_steps SET birth_date = '1970-05-06' "
                             "WHERE accession_number = $1", world.id("A"))
    survivor = PatientRef(empi_id=world.id("E2"), patient_id=world.id("P2"), name="张三", name_latin="ZHANG^SAN")
    changed = await steps.apply_patient_merged(world.conn, PatientMerged(
        surviving=survivor, merged_empi_ids=[world.id("E")], merged_patient_ids=[world.id("P")]))
    assert changed == 1
    [row] = await active(world)
    assert (row["empi_id"], row["patient_id"]) == (world.id("E2"), world.id("P2"))
    assert str(row["birth_date"]) == "1970-05-06" and row["sex"] == "M"  # the merge payload had neither
    assert await find_steps(world.conn, StepQuery(patient_id=world.id("P"))) == []
    assert len(await find_steps(world.conn, StepQuery(patient_id=world.id("P2")))) == 1


def changed(w: World, *codes: str, version: int, **fields: object) -> OrderChanged:
    """The whole order again, as registration announces a change (ORC-1 XO, the desk)."""
    return OrderChanged(**(order(w, *codes).model_dump() | {"version": version, "changed": ["items"], **fields}))


async def test_an_order_change_alone_makes_the_steps_and_a_dropped_item_leaves_the_worklist(world: World) -> None:
    # order.changed may be the first this service hears of the order (order.created late or stale).
    await steps.apply_order_created(world.conn, changed(world, "CT-CHEST", "CT-HEAD", version=2), TZ)
    assert {r["protocol_code"] for r in await active(world)} == {"CT-CHEST", "CT-HEAD"}
    wanted = datetime(2030, 3, 4, 6, 0, tzinfo=UTC)
    await steps.apply_order_created(world.conn, changed(world, "CT-HEAD", version=3, requested_at=wanted,
                                                        priority="stat"), TZ)
    [row] = await active(world)
    assert row["protocol_code"] == "CT-HEAD" and row["priority"] == "stat"
    assert row["start_at"] == datetime(2030, 3, 4, 14, 0)  # no appointment: the order's wanted time
    # Once booked, the appointment's time stands against a later change of the order.
    start = datetime(2030, 3, 5, 2, 0, tzinfo=UTC)
    await steps.apply_appointment(world.conn, AppointmentBooked(appointment=appointment(world, start, "CT-HEAD")), TZ)
    await steps.apply_order_created(world.conn, changed(world, "CT-HEAD", version=4, requested_at=wanted), TZ)
    [row] = await active(world)
    assert row["start_at"] == datetime(2030, 3, 5, 10, 0)


async def test_an_order_snapshot_older_than_the_patient_copy_does_not_rename_them(world: World) -> None:
    newer = patient(world, "张叁", "ZHANG^SAN").model_copy(update={"version": 7, "birth_date": date(1980, 1, 2)})
    await steps.apply_order_created(world.conn, changed(world, version=2, patient=newer), TZ)
    older = patient(world, "张三", "ZHANG^SAN").model_copy(update={"version": 6, "sex": "U"})
    await steps.apply_order_created(world.conn, changed(world, version=3, patient=older, priority="stat"), TZ)
    [row] = await active(world)
    assert row["priority"] == "stat"  # the order's own news applies...
    assert row["patient_name"] == "ZHANG^SAN=张叁" and row["sex"] == "M"  # ...its old patient snapshot does not
    assert row["birth_date"] == date(1980, 1, 2)
    partial = newer.model_copy(update={"version": 8, "birth_date": None, "sex": "U"})
    await steps.apply_patient_updated(world.conn, PatientUpdated(patient=partial))
    [row] = await active(world)
    assert row["birth_date"] == date(1980, 1, 2) and row["sex"] == "M"  # a partial payload blanks nothing


async def test_a_cancel_during_the_exam_is_reported_on_the_step_not_erased(world: World) -> None:
    [step_id] = await steps.apply_order_created(world.conn, order(world), TZ)
    await world.conn.execute("UPDATE scheduled_procedure_steps SET status = 'in_progress', mpps_uid = '1.2.3' "
                             "WHERE id = $1", step_id)  # what an MPPS N-CREATE IN PROGRESS does
    await steps.apply_order_cancelled(world.conn, OrderCancelled(order_id=world.id("O"),
                                                                 accession_number=world.id("A")))
    row = await world.conn.fetchrow("SELECT status, order_cancelled_at FROM scheduled_procedure_steps "
                                    "WHERE id = $1", step_id)
    assert row["status"] == "in_progress" and row["order_cancelled_at"] is not None
