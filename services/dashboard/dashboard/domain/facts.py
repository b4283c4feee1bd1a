"""The read model's rows, filled from the services' events: one row per exam (`exam_fact`), the critical
values and the report amendments. The consumer applies only events newer than what it applied for their
subject (imaging_common.events.versions); here a field an event does not carry keeps what is known, and
the first time of a step (booked, final, delivered) is kept when it comes again. Who the exam is about comes
from registration's events only (order, patient updated and merged): the name as registered."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
from imaging_common.events.types import (
    AppointmentInfo,
    CriticalRaised,
    ExamCompleted,
    ExamStarted,
    OrderCancelled,
    OrderCreated,
    PatientRef,
    ReportAmended,
    ReportSigned,
)
from imaging_common.events.versions import merge_patient, patient_is_current

# Steps whose first time is the one that counts: a later event repeating them moves nothing.
FIRST_TIMES = frozenset({"booked_at", "final_at", "delivered_at", "no_show_at", "preliminary_at"})


async def merge_exam(conn: asyncpg.Connection, accession_number: str, **fields: Any) -> None:
    """Upsert the exam's row with the fields that are known (None = not said: kept as it is)."""
    known = {name: value for name, value in fields.items() if value is not None}
    names = list(known)
    columns = ", ".join(["accession_number", *names])
    values = ", ".join(f"${i}" for i in range(1, len(names) + 2))
    sets = [f"{n} = least(exam_fact.{n}, EXCLUDED.{n})" if n in FIRST_TIMES else f"{n} = EXCLUDED.{n}"
            for n in names]
    await conn.execute(
        f"INSERT INTO exam_fact ({columns}) VALUES ({values}) ON CONFLICT (accession_number) DO UPDATE SET "
        + ", ".join([*sets, "updated_at = now()"]), accession_number, *known.values())


async def record_patient(conn: asyncpg.Connection, patient: PatientRef) -> None:
    """Keep the person's copy: a current snapshot wins, an older one only fills gaps."""
    current = await patient_is_current(conn, patient)
    known = await conn.fetchval("SELECT patient FROM patient WHERE empi_id = $1 FOR UPDATE", patient.empi_id)
    merged = merge_patient(json.loads(known) if known else None, patient.model_dump(mode="json", exclude_none=True),
                           current=current)
    await conn.execute("INSERT INTO patient (empi_id, patient) VALUES ($1, $2::jsonb) ON CONFLICT (empi_id) "
                       "DO UPDATE SET patient = EXCLUDED.patient, updated_at = now()",
                       patient.empi_id, json.dumps(merged, ensure_ascii=False))


async def order(conn: asyncpg.Connection, data: OrderCreated) -> None:
    item = data.items[0] if data.items else None
    await record_patient(conn, data.patient)
    await merge_exam(conn, data.accession_number, order_id=data.order_id, modality=item and item.modality,
                     exam_code=item and item.code, exam_name=item and item.name,
                     department=data.ordering_department, patient_class=data.patient_class,
                     priority=data.priority, empi_id=data.patient.empi_id, ordered_at=data.ordered_at)


async def cancelled(conn: asyncpg.Connection, data: OrderCancelled, *, at: datetime) -> None:
    """A cancelled order stays as history, with who and what it was about: met before its order.created
    (which is then stale and never applied), the cancellation is all that tells them."""
    item = data.items[0] if data.items else None
    if data.patient is not None:
        await record_patient(conn, data.patient)
    await merge_exam(conn, data.accession_number, order_id=data.order_id, cancelled_at=at,
                     modality=item and item.modality, exam_code=item and item.code, exam_name=item and item.name,
                     empi_id=data.patient and data.patient.empi_id)


async def appointment(conn: asyncpg.Connection, a: AppointmentInfo, *, at: datetime) -> None:
    await merge_exam(conn, a.accession_number, order_id=a.order_id, modality=a.modality, room_id=a.room_id,
                     room_name=a.room_name, campus=a.campus, station_ae_title=a.station_ae_title,
                     appointment_start=a.start, booked_at=a.booked_at or at)


async def exam_started(conn: asyncpg.Connection, data: ExamStarted) -> None:
    await merge_exam(conn, data.accession_number, modality=data.modality, station_ae_title=data.station_ae_title,
                     started_at=data.started_at)


async def exam_completed(conn: asyncpg.Connection, data: ExamCompleted) -> None:
    await merge_exam(conn, data.accession_number, modality=data.modality, station_ae_title=data.station_ae_title,
                     started_at=data.started_at, completed_at=data.completed_at, exam_status=data.status,
                     order_id=data.order_id, exam_code=data.exam_code, exam_name=data.exam_name)


async def report_signed(conn: asyncpg.Connection, data: ReportSigned) -> None:
    await merge_exam(conn, data.accession_number, final_at=data.signed_at, final_by=data.signed_by,
                     positive=data.positive, preliminary_at=data.preliminary_at, preliminary_by=data.preliminary_by,
                     preliminary_kept=data.preliminary_kept)


async def report_amended(conn: asyncpg.Connection, data: ReportAmended) -> None:
    await conn.execute(
        "INSERT INTO amendment_fact (report_id, version, accession_number, kind, signed_at) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        data.report_id, data.version, data.accession_number, data.kind, data.signed_at)


async def critical_raised(conn: asyncpg.Connection, data: CriticalRaised) -> None:
    await merge_exam(conn, data.accession_number, modality=data.modality, department=data.ordering_department)
    await conn.execute(
        "INSERT INTO critical_fact (critical_id, accession_number, modality, department, raised_at) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (critical_id) DO UPDATE SET "
        "raised_at = least(critical_fact.raised_at, EXCLUDED.raised_at)",
        data.critical_id, data.accession_number, data.modality, data.ordering_department, data.raised_at)


async def critical_step(conn: asyncpg.Connection, critical_id: str, accession_number: str, *,
                        acknowledged_at: datetime | None = None, closed_at: datetime | None = None,
                        outcome: str | None = None) -> None:
    """Acknowledged or closed: the first time counts (a value raised elsewhere is learnt on the way)."""
    await conn.execute(
        """INSERT INTO critical_fact (critical_id, accession_number, acknowledged_at, closed_at, outcome)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (critical_id) DO UPDATE SET
             acknowledged_at = least(critical_fact.acknowledged_at, EXCLUDED.acknowledged_at),
             closed_at = least(critical_fact.closed_at, EXCLUDED.closed_at),
             outcome = coalesce(EXCLUDED.outcome, critical_fact.outcome)""",
        critical_id, accession_number, acknowledged_at, closed_at, outcome)


async def patient_merged(conn: asyncpg.Connection, surviving: PatientRef, merged: list[str]) -> None:
    """Exams of merged records belong to the survivor."""
    await record_patient(conn, surviving)
    await conn.execute("UPDATE exam_fact SET empi_id = $1, updated_at = now() WHERE empi_id = ANY($2::text[])",
                       surviving.empi_id, merged)


async def modality_of(conn: asyncpg.Connection, accession_number: str) -> str | None:
    modality: str | None = await conn.fetchval("SELECT modality FROM exam_fact WHERE accession_number = $1",
                                               accession_number)
    return modality
