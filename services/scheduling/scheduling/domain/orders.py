"""What scheduling learns from other services' events: orders to schedule, cancellations,
arrivals and patient record changes. Each handler runs in the transaction that records the
event in the inbox, so a redelivered event changes nothing twice.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from imaging_common.events import parse_data
from imaging_common.events.types import (
    ExamCompleted,
    ExamStarted,
    OrderCancelled,
    OrderCreated,
    PatientArrived,
    PatientMerged,
    PatientUpdated,
)

from scheduling.domain import booking
from scheduling.domain.states import TRANSITIONS, Event, Status

# An exam code not configured yet gets a row with these minutes, marked auto_created for the admin.
DEFAULT_MINUTES = {"CT": 15, "MR": 30, "DX": 10, "CR": 10, "US": 20, "RF": 30, "MG": 15, "NM": 45, "PT": 60, "XA": 60}

SYSTEM = booking.SYSTEM


async def on_order_created(conn: asyncpg.Connection, event: Any) -> None:
    order = parse_data(event)
    assert isinstance(order, OrderCreated)
    for item in order.items:
        await conn.execute(
            """INSERT INTO exam_type (code, name, modality, body_part, duration_minutes, contrast, auto_created)
               VALUES ($1, $2, $3, $4, $5, $6, true) ON CONFLICT (code) DO NOTHING""",
            item.code,
            item.name,
            item.modality,
            item.body_part,
            DEFAULT_MINUTES.get(item.modality, 20),
            "iodinated"
            if item.contrast and item.modality == "CT"
            else "gadolinium"
            if item.contrast and item.modality == "MR"
            else "other"
            if item.contrast
            else "none",
        )
        await conn.execute(
            """INSERT INTO exam_request (order_id, exam_code, accession_number, requested_procedure_id,
                   study_instance_uid, exam_name, modality, empi_id, patient, patient_class, ward, special, priority)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12::jsonb, $13)
               ON CONFLICT (order_id, exam_code) DO NOTHING""",
            order.order_id,
            item.code,
            order.accession_number,
            order.requested_procedure_id,
            order.study_instance_uid,
            item.name,
            item.modality,
            order.patient.empi_id,
            order.patient.model_dump_json(),
            order.patient_class,
            order.ward,
            order.special.model_dump_json(),
            order.priority,
        )


async def cancel_order(
    conn: asyncpg.Connection, scheduler: booking.Scheduler, order_id: str, reason: str, actor: booking.Actor = SYSTEM
) -> int:
    """Cancel an order's requests and its live appointments (with the order's reason)."""
    await conn.execute(
        "UPDATE exam_request SET status = 'cancelled', cancel_reason = $2 WHERE order_id = $1", order_id, reason
    )
    rows = await conn.fetch(
        "SELECT id::text AS id FROM appointment WHERE order_id = $1 AND status = ANY($2)",
        order_id,
        [
            Status.PROPOSED.value,
            Status.WAITLIST.value,
            Status.PENDING.value,
            Status.BOOKED.value,
            Status.ARRIVED.value,
            Status.CHECKED_IN.value,
        ],
    )
    for r in rows:
        await booking.transition(conn, scheduler, r["id"], Event.CANCEL, actor=actor, reason=reason)
    return len(rows)


def order_cancelled_handler(scheduler: booking.Scheduler):  # type: ignore[no-untyped-def]
    async def on_order_cancelled(conn: asyncpg.Connection, event: Any) -> None:
        data = parse_data(event)
        assert isinstance(data, OrderCancelled)
        await cancel_order(conn, scheduler, data.order_id, f"order cancelled: {data.reason or 'no reason given'}")

    return on_order_cancelled


def patient_arrived_handler(scheduler: booking.Scheduler):  # type: ignore[no-untyped-def]
    async def on_patient_arrived(conn: asyncpg.Connection, event: Any) -> None:
        data = parse_data(event)
        assert isinstance(data, PatientArrived)
        row = await conn.fetchrow(
            "SELECT id::text AS id FROM appointment WHERE status = 'booked' AND "
            "(id::text = $1 OR ($1 IS NULL AND accession_number = $2)) ORDER BY lower(during) LIMIT 1",
            data.appointment_id,
            data.accession_number,
        )
        if row is not None:  # walk-ins without an appointment are queue-calling's business
            await booking.transition(conn, scheduler, row["id"], Event.ARRIVE, actor=SYSTEM)

    return on_patient_arrived


def exam_progress_handler(scheduler: booking.Scheduler):  # type: ignore[no-untyped-def]
    """The modality's MPPS, relayed by the worklist: started -> checked-in, completed -> fulfilled.

    A patient who skipped the check-in desk is checked in on the way, so the appointment still
    walks its table forward; a discontinued exam leaves the appointment for staff to decide.
    """

    async def on_exam_progress(conn: asyncpg.Connection, event: Any) -> None:
        data = parse_data(event)
        if isinstance(data, ExamStarted):
            steps: tuple[Event, ...] = (Event.CHECK_IN,)
        elif isinstance(data, ExamCompleted) and data.status == "completed":
            steps = (Event.CHECK_IN, Event.FULFIL)
        else:
            return
        exam_code = getattr(data, "exam_code", None)
        row = await conn.fetchrow(
            "SELECT id::text AS id FROM appointment WHERE accession_number = $1 AND ($2::text IS NULL OR "
            "exam_code = $2) AND status IN ('booked', 'arrived', 'checked-in') ORDER BY lower(during) LIMIT 1",
            data.accession_number,
            exam_code,
        )
        if row is None:  # an exam without an appointment (walk-in, external RIS) is not ours to track
            return
        for step in steps:
            status = await conn.fetchval("SELECT status FROM appointment WHERE id = $1::uuid", row["id"])
            if (step, status) in TRANSITIONS:
                await booking.transition(conn, scheduler, row["id"], step, actor=SYSTEM)

    return on_exam_progress


async def on_patient_updated(conn: asyncpg.Connection, event: Any) -> None:
    data = parse_data(event)
    assert isinstance(data, PatientUpdated)
    await conn.execute(
        "UPDATE exam_request SET patient = $2::jsonb WHERE empi_id = $1",
        data.patient.empi_id,
        data.patient.model_dump_json(),
    )


async def on_patient_merged(conn: asyncpg.Connection, event: Any) -> None:
    """Merged records become the survivor's: their appointments and no-shows count for the survivor."""
    data = parse_data(event)
    assert isinstance(data, PatientMerged)
    survivor = data.surviving
    ids = list(data.merged_empi_ids)
    await conn.execute(
        "UPDATE exam_request SET empi_id = $1, patient = $2::jsonb WHERE empi_id = ANY($3)",
        survivor.empi_id,
        survivor.model_dump_json(),
        ids,
    )
    await conn.execute("UPDATE appointment SET empi_id = $1 WHERE empi_id = ANY($2)", survivor.empi_id, ids)


def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=str)
