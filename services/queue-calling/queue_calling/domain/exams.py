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


def id_number_digest(id_number: str) -> str:
    """How an ID-card number is compared: its SHA-256 hex digest (upper-cased, trimmed input)."""
    return hashlib.sha256(id_number.strip().upper().encode()).hexdigest()


def _patient_columns(p: Any) -> dict[str, Any]:
    extra = p.model_extra or {}
    return {
        "empi_id": p.empi_id,
        "patient_id": p.patient_id,
        "patient_name": p.name,
        "birth_date": p.birth_date,
        "sex": p.sex,
        "phone": p.phone,
        "id_number_masked": p.id_number_masked,
        "id_number_sha256": getattr(p, "id_number_sha256", None) or extra.get("id_number_sha256"),
        "card_number": getattr(p, "card_number", None) or extra.get("card_number"),
    }


async def record_order(conn: asyncpg.Connection, order: Any) -> None:
    """order.created: one exam per accession number; several items are shown as one exam."""
    items = order.items
    cols = {
        **_patient_columns(order.patient),
        "order_id": order.order_id,
        "visit_number": order.visit_number,
        "patient_class": order.patient_class,
        "priority": order.priority,
        "special": json.dumps(order.special.model_dump()),
        "exam_code": items[0].code if items else "",
        "exam_name": "、".join(i.name for i in items) or "",
        "modality": items[0].modality if items else "",
        "contrast": any(i.contrast for i in items),
    }
    names = list(cols)
    await conn.execute(
        f"""INSERT INTO exam (accession_number, {", ".join(names)})
            VALUES ($1, {", ".join(f"${i + 2}" for i in range(len(names)))})
            ON CONFLICT (accession_number) DO UPDATE SET
            {", ".join(f"{n} = EXCLUDED.{n}" for n in names)}, updated_at = now()""",
        order.accession_number, *cols.values(),
    )


async def record_appointment(conn: asyncpg.Connection, appt: Any) -> None:
    """appointment.booked / .rescheduled: the exam's slot, room (device) and special conditions."""
    cols = {
        **_patient_columns(appt.patient),
        "order_id": appt.order_id,
        "appointment_id": appt.appointment_id,
        "appointment_status": "booked",
        "room_id": appt.room_id,
        "room_name": appt.room_name,
        "appointment_start": appt.start,
        "appointment_end": appt.end,
        "exam_code": appt.exam_code,
        "exam_name": appt.exam_name,
        "modality": appt.modality,
        "priority": appt.priority,
        "special": json.dumps(appt.special.model_dump()),
    }
    names = list(cols)
    # An appointment may arrive before its order (events are not ordered across producers).
    await conn.execute(
        f"""INSERT INTO exam (accession_number, {", ".join(names)})
            VALUES ($1, {", ".join(f"${i + 2}" for i in range(len(names)))})
            ON CONFLICT (accession_number) DO UPDATE SET
            {", ".join(f"{n} = EXCLUDED.{n}" for n in names)}, updated_at = now()""",
        appt.accession_number, *cols.values(),
    )


async def cancel_appointment(conn: asyncpg.Connection, *, accession_number: str, appointment_id: str) -> None:
    await conn.execute(
        "UPDATE exam SET appointment_status = 'cancelled', updated_at = now() "
        "WHERE accession_number = $1 AND appointment_id = $2",
        accession_number, appointment_id,
    )


async def cancel_order(conn: asyncpg.Connection, *, accession_number: str) -> None:
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
    cols = _patient_columns(patient)
    await conn.execute(
        """UPDATE exam SET patient_name = $2, birth_date = $3, sex = $4, phone = $5, updated_at = now()
           WHERE empi_id = $1""",
        cols["empi_id"], cols["patient_name"], cols["birth_date"], cols["sex"], cols["phone"],
    )
    await conn.execute(
        "UPDATE queue_entry SET patient_name = $2, sex = $3 WHERE empi_id = $1 AND state IN "
        "('waiting', 'called', 'skipped', 'in_exam')",
        cols["empi_id"], cols["patient_name"], cols["sex"],
    )


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
