"""Appointments read back as data: one query joining the request, exam type and room."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
from imaging_common.events.types import AppointmentInfo, PatientRef, SpecialConditions
from imaging_common.sql import Where

SELECT = """
SELECT a.id::text AS id, a.order_id, a.exam_code, a.accession_number, a.empi_id, a.room_id, a.technologist_id,
       lower(a.during) AS start, upper(a.during) AS "end", a.status, a.channel, a.hold_expires_at, a.reason,
       a.booked_by, a.reminded_at, a.created_at, a.updated_at,
       q.exam_name, q.modality, q.patient, q.patient_class, q.ward, q.special, q.priority,
       q.requested_procedure_id, q.study_instance_uid,
       e.duration_minutes, e.preparation_minutes, e.preparation, e.fasting, e.contrast,
       r.name AS room_name, r.campus, r.building, r.floor, r.location, r.route, r.station_ae_title
  FROM appointment a
  JOIN exam_request q USING (order_id, exam_code)
  JOIN exam_type e ON e.code = a.exam_code
  JOIN room r ON r.id = a.room_id
"""


def _obj(v: Any) -> dict[str, Any]:
    return dict(json.loads(v)) if isinstance(v, str) else dict(v or {})


def as_dict(r: asyncpg.Record) -> dict[str, Any]:
    d = dict(r)
    d["patient"], d["special"] = _obj(d["patient"]), _obj(d["special"])
    return d


async def get(conn: asyncpg.Connection, appointment_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
    try:
        row = await conn.fetchrow(
            SELECT + " WHERE a.id = $1::uuid" + (" FOR UPDATE OF a" if for_update else ""), appointment_id
        )
    except asyncpg.DataError:  # not a UUID: no such appointment
        return None
    return as_dict(row) if row else None


async def list_for(
    conn: asyncpg.Connection,
    *,
    empi_id: str | None = None,
    order_id: str | None = None,
    room_id: str | None = None,
    status: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    where = Where()
    where.given("a.empi_id = {}", empi_id)
    where.given("a.order_id = {}", order_id)
    where.given("a.room_id = {}", room_id)
    where.given("a.status = {}", status)
    where.given("upper(a.during) > {}", start)
    where.given("lower(a.during) < {}", end)
    sql = SELECT + f" WHERE {where} ORDER BY lower(a.during) LIMIT {where.arg(limit)}"
    return [as_dict(r) for r in await conn.fetch(sql, *where.args)]


def info(a: dict[str, Any], version: int | None = None) -> AppointmentInfo:
    """The appointment as the event contract describes it (worklist, queue-calling read this).

    `version`: the appointment's version as published (booking.next_version), for events that change it."""
    return AppointmentInfo(
        appointment_id=a["id"],
        order_id=a["order_id"],
        accession_number=a["accession_number"],
        patient=PatientRef.model_validate(a["patient"]),
        exam_code=a["exam_code"],
        exam_name=a["exam_name"],
        modality=a["modality"],
        room_id=a["room_id"],
        room_name=a["room_name"],
        station_ae_title=a["station_ae_title"],
        campus=a["campus"],
        start=a["start"],
        end=a["end"],
        special=SpecialConditions.model_validate(a["special"]),
        priority=a["priority"],
        version=version,
        booked_at=a.get("created_at"),
    )


async def history(conn: asyncpg.Connection, appointment_id: str) -> list[asyncpg.Record]:
    """Every transition of an appointment, oldest first."""
    return await conn.fetch(
        "SELECT at, event, from_status, to_status, actor, detail FROM appointment_history "
        "WHERE appointment_id::text = $1 ORDER BY id",
        appointment_id,
    )


async def requests(conn: asyncpg.Connection, *, empi_id: str | None, order_id: str | None, status: str | None,
                   limit: int) -> list[asyncpg.Record]:
    """Exams waiting to be scheduled (or scheduled), each with its live appointment if it has one."""
    return await conn.fetch(
        """SELECT q.*, a.id::text AS appointment_id, a.status AS appointment_status, lower(a.during) AS start
             FROM exam_request q LEFT JOIN appointment a ON a.order_id = q.order_id AND a.exam_code = q.exam_code
                  AND a.status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')
            WHERE ($1::text IS NULL OR q.empi_id = $1) AND ($2::text IS NULL OR q.order_id = $2)
              AND ($3::text IS NULL OR q.status = $3)
            ORDER BY q.created_at DESC LIMIT $4""",
        empi_id,
        order_id,
        status,
        limit,
    )
