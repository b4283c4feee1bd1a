"""The portal's copy of each patient and their exams, kept from the events the other services publish.

Order, appointment and patient events arrive version-checked (imaging_common.events.versions: a stale
one never reaches a handler). Exam progress (arrived, started, completed, reported) carries no
subject version, so an exam's status only moves forward along STATUS_RANK: a late `patient.arrived`
never undoes `report.signed`. A cancelled order is a tombstone: nothing later revives it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
from imaging_common.events.types import AppointmentInfo, OrderCreated, PatientRef
from imaging_common.events.versions import merge_patient, patient_is_current

from patient_portal.domain.phones import normalize

STATUS_RANK = {"ordered": 0, "booked": 1, "checked_in": 2, "in_exam": 3, "completed": 4, "reported": 5}
CANCELLED = "cancelled"


async def record_patient(conn: asyncpg.Connection, patient: PatientRef) -> None:
    """Keep the patient's copy: a current snapshot wins, an older one only fills gaps."""
    current = await patient_is_current(conn, patient)
    known = await conn.fetchval("SELECT patient FROM patient WHERE empi_id = $1 FOR UPDATE", patient.empi_id)
    incoming = patient.model_dump(mode="json", exclude_none=True)
    merged = merge_patient(json.loads(known) if known else None, incoming, current=current)
    await conn.execute(
        """INSERT INTO patient (empi_id, phone, patient) VALUES ($1, $2, $3::jsonb)
           ON CONFLICT (empi_id) DO UPDATE
                 SET phone = EXCLUDED.phone, patient = EXCLUDED.patient, updated_at = now()""",
        patient.empi_id, normalize(merged.get("phone")), json.dumps(merged, ensure_ascii=False))


async def merge_patients(conn: asyncpg.Connection, surviving: PatientRef, merged_empi_ids: list[str]) -> None:
    """The merged patients' exams are the survivor's; their own copies stop signing anyone in."""
    await record_patient(conn, surviving)
    await conn.execute("UPDATE patient SET merged_into = $1, updated_at = now() WHERE empi_id = ANY($2::text[])",
                       surviving.empi_id, merged_empi_ids)
    await conn.execute("UPDATE exam SET empi_id = $1 WHERE empi_id = ANY($2::text[])",
                       surviving.empi_id, merged_empi_ids)


async def record_order(conn: asyncpg.Connection, order: OrderCreated) -> None:
    """order.created / order.changed (the whole order): one exam per accession number."""
    await record_patient(conn, order.patient)
    item = order.items[0]
    names = "、".join(i.name for i in order.items)
    await conn.execute(
        """INSERT INTO exam (accession_number, order_id, empi_id, exam_name, modality, ordered_at, status)
           VALUES ($1, $2, $3, $4, $5, $6, 'ordered')
           ON CONFLICT (accession_number) DO UPDATE SET order_id = EXCLUDED.order_id, empi_id = EXCLUDED.empi_id,
                  exam_name = EXCLUDED.exam_name, modality = EXCLUDED.modality, ordered_at = EXCLUDED.ordered_at""",
        order.accession_number, order.order_id, order.patient.empi_id, names, item.modality, order.ordered_at)


async def cancel_order(conn: asyncpg.Connection, accession_number: str) -> None:
    await conn.execute("UPDATE exam SET status = $2 WHERE accession_number = $1", accession_number, CANCELLED)


async def _advance(conn: asyncpg.Connection, accession_number: str, status: str, **fields: Any) -> bool:
    """Move the exam to `status` and set `fields` with it, unless it is past that stage already (a late
    event changes nothing) or cancelled. Whether it was applied."""
    sets = "".join(f", {name} = ${i + 4}" for i, name in enumerate(fields))
    done = await conn.execute(
        f"""UPDATE exam SET status = $2 {sets}
             WHERE accession_number = $1 AND status <> '{CANCELLED}'
               AND ($3::jsonb ->> status)::int <= ($3::jsonb ->> $2)::int""",
        accession_number, status, json.dumps(STATUS_RANK), *fields.values())
    return done != "UPDATE 0"


async def record_appointment(conn: asyncpg.Connection, appointment: AppointmentInfo) -> None:
    """appointment.booked / rescheduled: the time and the room (a reschedule moves them)."""
    await record_patient(conn, appointment.patient)
    await _advance(conn, appointment.accession_number, "booked", appointment_id=appointment.appointment_id,
                   appointment_start=appointment.start, room_name=appointment.room_name)


async def cancel_appointment(conn: asyncpg.Connection, accession_number: str, appointment_id: str) -> None:
    """The booking is gone; an exam that had got no further than booked is back to ordered."""
    await conn.execute(
        """UPDATE exam SET appointment_id = NULL, appointment_start = NULL, room_name = NULL,
                  status = CASE WHEN status = 'booked' THEN 'ordered' ELSE status END
            WHERE accession_number = $1 AND appointment_id = $2""", accession_number, appointment_id)


async def arrived(conn: asyncpg.Connection, accession_number: str, *, queue_number: str, at: datetime) -> bool:
    return await _advance(conn, accession_number, "checked_in", queue_number=queue_number, arrived_at=at)


async def started(conn: asyncpg.Connection, accession_number: str) -> None:
    await _advance(conn, accession_number, "in_exam")


async def completed(conn: asyncpg.Connection, accession_number: str, *, at: datetime) -> None:
    await _advance(conn, accession_number, "completed", completed_at=at)


async def reported(conn: asyncpg.Connection, accession_number: str, *, report_id: str, version: int,
                   impression: str | None, at: datetime, signed_by: str, content_sha256: str | None) -> bool:
    """report.signed / report.amended: the newest report version wins (a late older one is ignored).
    Whether it was applied (an amendment that arrives late changes nothing and tells no one)."""
    done = await conn.execute(
        """UPDATE exam SET status = 'reported', report_id = $2, report_version = $3,
                  impression = COALESCE($4, impression), reported_at = $5, signed_by = $7, content_sha256 = $8
            WHERE accession_number = $1 AND status <> $6
              AND (report_id IS DISTINCT FROM $2 OR report_version IS NULL OR report_version < $3)""",
        accession_number, report_id, version, impression, at, CANCELLED, signed_by, content_sha256)
    return done != "UPDATE 0"


async def report_version(conn: asyncpg.Connection, report_id: str) -> dict[str, Any] | None:
    """What a verification QR is checked against: the report's newest version known here, no patient data."""
    row = await conn.fetchrow(
        """SELECT report_id, report_version, reported_at, content_sha256 FROM exam WHERE report_id = $1""",
        report_id)
    return dict(row) if row is not None else None


async def patients_with_phone(conn: asyncpg.Connection, phone: str) -> list[str]:
    """EMPI ids of the (unmerged) patients registered with this phone: whom its owner may see."""
    rows = await conn.fetch("SELECT empi_id FROM patient WHERE phone = $1 AND merged_into IS NULL ORDER BY empi_id",
                            phone)
    return [r["empi_id"] for r in rows]


async def exams_of(conn: asyncpg.Connection, empi_ids: list[str]) -> list[dict[str, Any]]:
    """The patients' exams, newest first, with the patient's name."""
    rows = await conn.fetch(
        """SELECT x.accession_number, x.exam_name, x.modality, x.status, x.ordered_at, x.appointment_start,
                  x.room_name, x.queue_number, x.arrived_at, x.completed_at, x.report_version, x.reported_at,
                  x.empi_id, p.patient ->> 'name' AS patient_name
             FROM exam x JOIN patient p USING (empi_id)
            WHERE x.empi_id = ANY($1::text[]) ORDER BY x.ordered_at DESC""", empi_ids)
    return [dict(r) for r in rows]


async def exam_of(conn: asyncpg.Connection, empi_ids: list[str], accession_number: str) -> dict[str, Any] | None:
    """One of the patients' exams with its report impression; None when it is not theirs."""
    row = await conn.fetchrow(
        """SELECT x.*, p.patient ->> 'name' AS patient_name FROM exam x JOIN patient p USING (empi_id)
            WHERE x.accession_number = $1 AND x.empi_id = ANY($2::text[])""", accession_number, empi_ids)
    return dict(row) if row is not None else None
