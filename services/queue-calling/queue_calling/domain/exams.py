"""What the service knows about exams, learned from order.* and appointment.* events.

Check-in looks patients up here (barcode = accession number or order id, ID card, hospital card,
appointment number), so it works without calling registration or scheduling synchronously.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import asyncpg
from imaging_common.events import versions


def id_number_digest(id_number: str) -> str:
    """How an ID-card number is compared: its SHA-256 hex digest (upper-cased, trimmed input)."""
    return hashlib.sha256(id_number.strip().upper().encode()).hexdigest()


# PatientRef field -> exam column: the patient copy kept with each exam.
PATIENT_COLUMNS = {
    "patient_id": "patient_id",
    "name": "patient_name",
    "birth_date": "birth_date",
    "sex": "sex",
    "phone": "phone",
    "id_number_masked": "id_number_masked",
    "id_number_sha256": "id_number_sha256",
    "card_number": "card_number",
}


def _patient_fields(p: Any) -> dict[str, Any]:
    extra = p.model_extra or {}
    return {f: getattr(p, f, None) if getattr(p, f, None) is not None else extra.get(f) for f in PATIENT_COLUMNS}


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    return {column: fields.get(f) for f, column in PATIENT_COLUMNS.items()}


async def apply_patient(conn: asyncpg.Connection, patient: Any, *, current: bool) -> dict[str, Any]:
    """Merge a snapshot of a patient into every exam's copy of them (versions.merge_patient: a current
    snapshot wins where it has a value, an older or unversioned one only fills gaps, and nothing known
    is ever blanked); returns the exam columns of the patient for an exam taking this snapshot."""
    incoming = _patient_fields(patient)
    rows = await conn.fetch(
        f"SELECT accession_number, {', '.join(PATIENT_COLUMNS.values())} FROM exam WHERE empi_id = $1 "
        "ORDER BY updated_at DESC, accession_number FOR UPDATE", patient.empi_id)
    copy: dict[str, Any] | None = None
    for r in rows:
        known = {f: r[column] for f, column in PATIENT_COLUMNS.items()}
        merged = versions.merge_patient(known, incoming, current=current)
        if merged != known:
            cols = _columns(merged)
            await conn.execute(
                f"UPDATE exam SET {', '.join(f'{c} = ${i + 2}' for i, c in enumerate(cols))}, updated_at = now() "
                "WHERE accession_number = $1", r["accession_number"], *cols.values())
        copy = merged if copy is None else versions.merge_patient(copy, merged, current=False)
    if copy is None:
        copy = versions.merge_patient(None, incoming, current=current)
    return {"empi_id": patient.empi_id, **_columns(copy)}


async def _upsert(conn: asyncpg.Connection, accession_number: str, cols: dict[str, Any], *,
                  update: list[str] | None = None, exists: bool = False) -> None:
    """Insert the exam (`cols` then has every required column) or update `update` (default all) of it."""
    names = list(cols)
    update = names if update is None else update
    if exists:  # the row is locked by the caller: only what is given, no insert (a partial row could not be)
        values = [cols[n] for n in update]
        await conn.execute(
            f"UPDATE exam SET {', '.join(f'{n} = ${i + 2}' for i, n in enumerate(update))}, updated_at = now() "
            "WHERE accession_number = $1", accession_number, *values)
    else:
        action = (f"DO UPDATE SET {', '.join(f'{n} = EXCLUDED.{n}' for n in update)}, updated_at = now()"
                  if update else "DO NOTHING")
        await conn.execute(
            f"""INSERT INTO exam (accession_number, {", ".join(names)})
                VALUES ($1, {", ".join(f"${i + 2}" for i in range(len(names)))})
                ON CONFLICT (accession_number) {action}""",
            accession_number, *cols.values(),
        )
    # A cancel may have come first (tombstone): whatever arrives later, the exam stays cancelled.
    await conn.execute(
        "UPDATE exam SET order_status = 'cancelled', updated_at = now() WHERE accession_number = $1 "
        "AND order_status <> 'cancelled' AND EXISTS (SELECT 1 FROM cancelled_order WHERE accession_number = $1)",
        accession_number)


async def record_order(conn: asyncpg.Connection, order: Any) -> None:
    """order.created / order.changed, the whole order as it now is: one exam per accession number
    (several items are shown as one exam). An order without a version (an older producer) does not
    overwrite what an order event already set; its patient only fills gaps."""
    items = order.items
    current = await versions.patient_is_current(conn, order.patient)
    cols = {
        **await apply_patient(conn, order.patient, current=current),
        "order_id": order.order_id,
        "visit_number": order.visit_number,
        "patient_class": order.patient_class,
        "priority": order.priority,
        "special": json.dumps(order.special.model_dump()),
        "exam_code": items[0].code if items else "",
        "exam_name": "、".join(i.name for i in items) or "",
        "modality": items[0].modality if items else "",
        "contrast": any(i.contrast for i in items),
        "order_known": True,
    }
    known = await conn.fetchval("SELECT order_known FROM exam WHERE accession_number = $1 FOR UPDATE",
                                order.accession_number)
    if getattr(order, "version", None) is None and known:
        patient = [c for c in cols if c == "empi_id" or c in PATIENT_COLUMNS.values()]
        await _upsert(conn, order.accession_number, cols, update=patient)
    else:
        await _upsert(conn, order.accession_number, cols)


async def record_appointment(conn: asyncpg.Connection, appt: Any) -> None:
    """appointment.booked / .rescheduled: the exam's slot, room (device) and special conditions.

    An appointment may arrive before its order (events are not ordered across producers): it then
    makes the exam. Once the order is known, the item, priority and special conditions are the
    order's (a change of the order may be newer than scheduling's copy), and so is the patient when
    the appointment names another one."""
    row = await conn.fetchrow("SELECT empi_id, order_known FROM exam WHERE accession_number = $1 FOR UPDATE",
                              appt.accession_number)
    current = await versions.patient_is_current(conn, appt.patient)
    patient = await apply_patient(conn, appt.patient, current=current)
    ordered = row is not None and row["order_known"]
    cols: dict[str, Any] = {
        "order_id": appt.order_id,
        "appointment_id": appt.appointment_id,
        "appointment_status": "booked",
        "room_id": appt.room_id,
        "room_name": appt.room_name,
        "appointment_start": appt.start,
        "appointment_end": appt.end,
    }
    if not ordered:
        cols |= {"exam_code": appt.exam_code, "exam_name": appt.exam_name, "modality": appt.modality,
                 "priority": appt.priority, "special": json.dumps(appt.special.model_dump())}
    if row is None or not ordered or row["empi_id"] == appt.patient.empi_id:
        cols |= patient
    await _upsert(conn, appt.accession_number, cols, exists=row is not None)


async def cancel_appointment(conn: asyncpg.Connection, *, accession_number: str, appointment_id: str) -> None:
    await conn.execute(
        "UPDATE exam SET appointment_status = 'cancelled', updated_at = now() "
        "WHERE accession_number = $1 AND appointment_id = $2",
        accession_number, appointment_id,
    )


async def cancel_order(conn: asyncpg.Connection, *, accession_number: str, order_id: str = "",
                       reason: str | None = None) -> None:
    """order.cancelled: the exam is cancelled, and its tombstone keeps it so whatever comes later."""
    await conn.execute(
        "INSERT INTO cancelled_order (accession_number, order_id, reason) VALUES ($1, $2, $3) "
        "ON CONFLICT (accession_number) DO NOTHING", accession_number, order_id, reason)
    await conn.execute(
        "UPDATE exam SET order_status = 'cancelled', updated_at = now() WHERE accession_number = $1",
        accession_number,
    )


async def mark_performed(conn: asyncpg.Connection, *, accession_number: str) -> None:
    """The modality finished the exam (MPPS COMPLETED/DISCONTINUED): it is no longer checked in or called.
    A cancelled order stays cancelled."""
    await conn.execute(
        "UPDATE exam SET order_status = 'performed', updated_at = now() WHERE accession_number = $1 "
        "AND order_status = 'active'", accession_number,
    )


async def update_patient(conn: asyncpg.Connection, patient: Any) -> None:
    """patient.updated: every exam's copy of the patient (live queue entries follow: adapters.events)."""
    await apply_patient(conn, patient, current=await versions.patient_is_current(conn, patient))


async def merge_patients(conn: asyncpg.Connection, surviving: Any, merged_empi_ids: list[str]) -> None:
    """patient.merged: the merged records' exams become the survivor's, with the survivor's identity;
    what the survivor's copy does not know (a phone, an ID) is kept from the merged record's."""
    copy = await apply_patient(conn, surviving, current=await versions.patient_is_current(conn, surviving))
    survivor = {f: copy[column] for f, column in PATIENT_COLUMNS.items()}
    ids = [e for e in merged_empi_ids if e != surviving.empi_id]
    rows = await conn.fetch(
        f"SELECT accession_number, {', '.join(PATIENT_COLUMNS.values())} FROM exam WHERE empi_id = ANY($1::text[]) "
        "ORDER BY accession_number FOR UPDATE", ids)
    for r in rows:
        own = {f: r[column] for f, column in PATIENT_COLUMNS.items() if f != "patient_id"}
        cols = {"empi_id": surviving.empi_id, **_columns(versions.merge_patient(survivor, own, current=False))}
        await conn.execute(
            f"UPDATE exam SET {', '.join(f'{c} = ${i + 2}' for i, c in enumerate(cols))}, updated_at = now() "
            "WHERE accession_number = $1", r["accession_number"], *cols.values())


IDENTIFIER_KINDS = ("barcode", "id_number", "card", "appointment")


async def find_exams(conn: asyncpg.Connection, *, kind: str, value: str,
                     status: str = "active") -> list[asyncpg.Record]:
    """Exams matching what was scanned, of orders in `status` (active: the ones to check in)."""
    value = value.strip()
    if kind == "barcode":
        where, arg = "(accession_number = $1 OR order_id = $1)", value
    elif kind == "appointment":
        where, arg = "appointment_id = $1", value
    elif kind == "card":
        where, arg = "(card_number = $1 OR patient_id = $1 OR visit_number = $1)", value
    elif kind == "id_number":
        rows = await conn.fetch(
            "SELECT * FROM exam WHERE id_number_sha256 = $1 AND order_status = $2", id_number_digest(value), status
        )
        if rows:
            return list(rows)
        # Registration may send only the masked number: match first 4 and last 4 characters.
        if len(value) < 8:
            return []
        where = "id_number_sha256 IS NULL AND left(id_number_masked, 4) = $1 AND right(id_number_masked, 4) = $2 " \
                "AND length(id_number_masked) = $3"
        rows = await conn.fetch(
            f"SELECT * FROM exam WHERE {where} AND order_status = $4",
            value[:4].upper(), value[-4:].upper(), len(value), status,
        )
        return list(rows)
    else:
        raise ValueError(f"unknown identifier kind {kind!r}; one of {', '.join(IDENTIFIER_KINDS)}")
    return list(await conn.fetch(f"SELECT * FROM exam WHERE {where} AND order_status = $2", arg, status))


def in_slot(start: datetime | None, end: datetime | None, now: datetime, grace_minutes: float) -> bool:
    """Arrived within the appointment's slot (or a little before it): counts as on time."""
    if start is None:
        return False
    from datetime import timedelta

    return start - timedelta(minutes=grace_minutes) <= now <= (end or start) + timedelta(minutes=grace_minutes)
