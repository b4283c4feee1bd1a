"""Scheduled procedure steps: what a modality will find on its worklist, and where they come from.

Sources (smart-imaging standard 4.2.2: the modality takes the patient list from the server):
- `order.created` (registration): one step per exam item, on the order's day until booked;
- `appointment.booked` / `.rescheduled` (scheduling): the step gets its time, room and station;
- `appointment.cancelled`, `order.cancelled`: the step leaves the worklist at once;
- `patient.arrived` (queue-calling, standard 6.3 (2)): the step shows as ARRIVED;
- `POST /api/worklist/items`: bulk import from an external RIS/HIS.
Events may arrive in any order (an appointment before its order): every writer upserts on
(accession number, exam code) and only fills what it knows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from imaging_common.dicom import person_name, split_person_name
from imaging_common.events import versions
from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentInfo,
    AppointmentRescheduled,
    OrderCancelled,
    OrderCreated,
    PatientArrived,
    PatientMerged,
    PatientRef,
    PatientUpdated,
)

log = logging.getLogger(__name__)

ACTIVE = ("scheduled", "in_progress")  # states a modality still sees on its worklist
PRIORITIES = {"routine": "ROUTINE", "urgent": "HIGH", "stat": "STAT"}


def new_uid() -> str:
    """A DICOM UID under the UUID root 2.25 (PS3.5 B.2), for steps imported without one."""
    return f"2.25.{uuid.uuid4().int}"


def patient_pn(patient: PatientRef) -> str:
    """The PN value for a registered patient: Latin (pinyin) group first when there is one.

    "张三" with name_latin "ZHANG^SAN" -> "ZHANG^SAN=张三"; without it -> "张三" in the first group,
    which is where most Chinese modalities read the name from.
    """
    if patient.name.isascii() or not patient.name_latin:
        return patient.name
    return person_name(patient.name_latin, patient.name)


def patient_of_step(step: Mapping[str, Any]) -> PatientRef:
    """The patient a step holds, as a PatientRef says it (the reverse of patient_pn): "ZHANG^SAN=张三" is
    name "张三", name_latin "ZHANG^SAN". No version: a step's copy only fills what a consumer lacks."""
    groups = split_person_name(step["patient_name"])
    if groups.ideographic:  # Chinese names are registered without the family^given caret
        name, latin = groups.ideographic.replace("^", ""), groups.alphabetic or None
    else:
        name, latin = groups.alphabetic, None
    sex = step["sex"] if step["sex"] in ("M", "F", "O") else "U"
    return PatientRef(empi_id=step["empi_id"] or "", patient_id=step["patient_id"], name=name, name_latin=latin,
                      birth_date=step["birth_date"], sex=sex)


def local_wall_time(at: datetime | None, tz: ZoneInfo) -> datetime | None:
    """An aware instant as the center's naive wall time (naive input is taken as wall time)."""
    if at is None:
        return None
    return at.astimezone(tz).replace(tzinfo=None) if at.tzinfo else at


@dataclass
class StepData:
    """Writable fields of a scheduled procedure step (columns of scheduled_procedure_steps)."""

    accession_number: str
    protocol_code: str = ""
    patient_id: str = ""
    patient_name: str = ""
    source: str = "import"
    sps_id: str | None = None
    requested_procedure_id: str = ""
    study_instance_uid: str = ""
    order_id: str | None = None
    appointment_id: str | None = None
    issuer_of_patient_id: str = ""
    empi_id: str | None = None
    birth_date: date | None = None
    sex: str = ""
    modality: str = ""
    station_ae_title: str = ""
    station_name: str = ""
    location: str = ""
    room_id: str | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    performing_physician: str = ""
    description: str = ""
    requested_procedure_description: str = ""
    priority: str = "routine"
    referring_physician: str = ""
    requesting_service: str = ""
    admission_id: str = ""
    patient_class: str = ""
    current_location: str = ""
    reason: str = ""
    history: str = ""
    medical_alerts: str = ""
    body_part: str = ""
    laterality: str = ""
    contrast: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def columns(self) -> dict[str, object]:
        """Column values, with the person names' match forms derived."""
        values = asdict(self)
        values.pop("extra")
        pn = split_person_name(self.patient_name).match_forms()
        pp = split_person_name(self.performing_physician).match_forms()
        values.update(pn_alpha=pn.alphabetic, pn_ideo=pn.ideographic, pn_phon=pn.phonetic,
                      pp_alpha=pp.alphabetic, pp_ideo=pp.ideographic, pp_phon=pp.phonetic)
        if not values["study_instance_uid"]:
            values["study_instance_uid"] = new_uid()
        if values["sps_id"] is None:
            values.pop("sps_id")  # the column default numbers it
        return values


_DATA_FIELDS = [f.name for f in fields(StepData) if f.name != "extra"]


async def _upsert(conn: asyncpg.Connection, data: StepData, update: Sequence[str],
                  rules: Mapping[str, str] | None = None) -> int:
    """Insert the step or update `update` columns of the existing one (by `rules` where given, else
    never blanking a known birth date or sex); returns its id."""
    values = data.columns()
    names = list(values)
    placeholders = ", ".join(f"${i + 1}" for i in range(len(names)))
    rules = {**_KEEP_KNOWN, **(rules or {})}
    sets = ", ".join(f"{c} = {rules.get(c, f'EXCLUDED.{c}')}" for c in update)
    sql = (
        f"INSERT INTO scheduled_procedure_steps ({', '.join(names)}) VALUES ({placeholders}) "
        f"ON CONFLICT (accession_number, protocol_code) DO UPDATE SET {sets}, updated_at = now() "
        "RETURNING id"
    )
    step_id = int(await conn.fetchval(sql, *values.values()))
    # An order cancelled before this event arrived (delivery order is not guaranteed): the step
    # exists with its data, off the worklist.
    await conn.execute(
        f"UPDATE scheduled_procedure_steps SET status = 'cancelled' WHERE id = $1 AND status = 'scheduled' "
        f"AND {_TOMBSTONED}", step_id)
    return step_id


# Columns an update must not blank: a payload without a birth date or sex keeps the known one.
_KEEP_KNOWN = {
    "birth_date": "coalesce(EXCLUDED.birth_date, scheduled_procedure_steps.birth_date)",
    "sex": "CASE WHEN EXCLUDED.sex = '' THEN scheduled_procedure_steps.sex ELSE EXCLUDED.sex END",
}
# An order's own time moves a step only while no appointment has given it one.
_ORDER_TIME = {"start_at": "CASE WHEN scheduled_procedure_steps.appointment_id IS NULL THEN EXCLUDED.start_at "
                           "ELSE scheduled_procedure_steps.start_at END"}

_TOMBSTONED = ("EXISTS (SELECT 1 FROM cancelled_orders c "
               "WHERE c.accession_number = scheduled_procedure_steps.accession_number)")


_PATIENT_COLUMNS = ("patient_id", "empi_id", "patient_name", "pn_alpha", "pn_ideo", "pn_phon", "birth_date", "sex")


def _patient_fields(patient: PatientRef) -> dict[str, object]:
    return {"patient_id": patient.patient_id, "empi_id": patient.empi_id, "patient_name": patient_pn(patient),
            "birth_date": patient.birth_date, "sex": patient.sex if patient.sex in ("M", "F", "O") else ""}


# ---- from events ---------------------------------------------------------------------------


async def apply_order_created(conn: asyncpg.Connection, order: OrderCreated, tz: ZoneInfo) -> list[int]:
    """One step per exam item; a step an appointment made first keeps its time and station.

    Also order.changed, a whole snapshot that may come first: steps are upserted from it, and a
    scheduled step whose item the order no longer asks for leaves the worklist (one in progress is
    the modality's to finish). The patient columns follow it only if its patient snapshot is the
    newest this service has seen (events.versions)."""
    alerts = []
    if order.special.critical:
        alerts.append("危重")
    if order.special.infectious:
        alerts.append("传染")
    if order.special.mdr:
        alerts.append("多重耐药")
    if order.special.notes:
        alerts.append(order.special.notes)
    current = await versions.patient_is_current(conn, order.patient)
    patient_columns = _PATIENT_COLUMNS if current else ()
    ids = []
    for item in order.items:
        data = StepData(
            accession_number=order.accession_number, protocol_code=item.code, source="order",
            order_id=order.order_id, requested_procedure_id=order.requested_procedure_id,
            study_instance_uid=order.study_instance_uid, **_patient_fields(order.patient),  # type: ignore[arg-type]
            modality=item.modality, description=item.name, requested_procedure_description=item.name,
            start_at=local_wall_time(order.requested_at or order.ordered_at, tz), priority=order.priority,
            referring_physician=order.ordering_doctor or "", requesting_service=order.ordering_department or "",
            admission_id=order.visit_number or "", patient_class=order.patient_class,
            current_location=" ".join(p for p in (order.ward, order.bed) if p),
            reason=order.clinical_diagnosis or order.purpose or "", history=order.history or "",
            medical_alerts="; ".join(alerts), body_part=item.body_part or "", laterality=item.laterality or "",
            contrast=item.contrast,
        )
        update = ["order_id", "requested_procedure_id", "study_instance_uid", *patient_columns, "description",
                  "requested_procedure_description", "priority", "referring_physician", "requesting_service",
                  "admission_id", "patient_class", "current_location", "reason", "history", "medical_alerts",
                  "body_part", "laterality", "contrast", "start_at"]
        if item.modality:
            update.append("modality")
        ids.append(await _upsert(conn, data, update, _ORDER_TIME))
    await conn.execute(  # items the order no longer asks for
        """UPDATE scheduled_procedure_steps SET status = 'cancelled', updated_at = now()
           WHERE accession_number = $1 AND status = 'scheduled' AND NOT (protocol_code = ANY($2::text[]))""",
        order.accession_number, [item.code for item in order.items])
    return ids


def _appointment_step(appt: AppointmentInfo, tz: ZoneInfo) -> StepData:
    return StepData(
        accession_number=appt.accession_number, protocol_code=appt.exam_code, source="appointment",
        order_id=appt.order_id, appointment_id=appt.appointment_id,
        **_patient_fields(appt.patient),  # type: ignore[arg-type]
        modality=appt.modality, station_ae_title=appt.station_ae_title or "", station_name=appt.room_name,
        location=appt.room_name, room_id=appt.room_id, start_at=local_wall_time(appt.start, tz),
        end_at=local_wall_time(appt.end, tz), description=appt.exam_name,
        requested_procedure_description=appt.exam_name, priority=appt.priority,
    )


async def apply_appointment(
    conn: asyncpg.Connection, event: AppointmentBooked | AppointmentRescheduled, tz: ZoneInfo
) -> int:
    """Put the step at the appointment's time, room and station (a re-booking revives a cancelled one)."""
    step_id = await _upsert(conn, _appointment_step(event.appointment, tz), [
        "appointment_id", "modality", "station_ae_title", "station_name", "location", "room_id", "start_at",
        "end_at", "priority",
    ])
    await conn.execute(  # never the step of a cancelled order: its cancel may have come first
        f"UPDATE scheduled_procedure_steps SET status = 'scheduled' WHERE id = $1 AND status = 'cancelled' "
        f"AND NOT {_TOMBSTONED}", step_id
    )
    return step_id


async def apply_appointment_cancelled(conn: asyncpg.Connection, event: AppointmentCancelled) -> int:
    """The appointment's steps leave the worklist (those not yet started)."""
    result = await conn.execute(
        """UPDATE scheduled_procedure_steps SET status = 'cancelled', updated_at = now()
           WHERE status = 'scheduled'
             AND (appointment_id = $1 OR (appointment_id IS NULL AND accession_number = $2))""",
        event.appointment_id, event.accession_number,
    )
    return int(result.split()[-1])


async def apply_order_cancelled(conn: asyncpg.Connection, event: OrderCancelled) -> int:
    """The order's scheduled steps leave the worklist, and its tombstone keeps later (or late) events
    about it from bringing them back. A step already in progress is the modality's to finish."""
    await conn.execute("INSERT INTO cancelled_orders (accession_number, order_id, reason) VALUES ($1, $2, $3) "
                       "ON CONFLICT (accession_number) DO NOTHING", event.accession_number, event.order_id,
                       event.reason)
    result = await conn.execute(
        """UPDATE scheduled_procedure_steps SET status = 'cancelled', updated_at = now()
           WHERE status = 'scheduled' AND accession_number = $1""",
        event.accession_number,
    )
    performing = await conn.fetch(
        """UPDATE scheduled_procedure_steps SET order_cancelled_at = now(), updated_at = now()
           WHERE status = 'in_progress' AND accession_number = $1 AND order_cancelled_at IS NULL
           RETURNING sps_id, mpps_uid""", event.accession_number)
    for step in performing:  # reported, not erased: the MPPS completes or discontinues it
        log.warning("order %s cancelled while step %s is in progress (MPPS %s): left to the modality to finish",
                    event.accession_number, step["sps_id"], step["mpps_uid"])
    return int(result.split()[-1])


async def apply_patient_arrived(conn: asyncpg.Connection, event: PatientArrived) -> int:
    result = await conn.execute(
        """UPDATE scheduled_procedure_steps SET arrived_at = $2, updated_at = now()
           WHERE accession_number = $1 AND status IN ('scheduled', 'in_progress')""",
        event.accession_number, event.arrived_at,
    )
    return int(result.split()[-1])


async def apply_patient_updated(conn: asyncpg.Connection, event: PatientUpdated) -> int:
    """Demographics corrected at registration reach the modality before it starts."""
    return await _set_patient(conn, [event.patient.empi_id], event.patient)


async def apply_patient_merged(conn: asyncpg.Connection, event: PatientMerged) -> int:
    """Steps of the merged records now carry the survivor: the modality's MWL answers with the surviving
    PatientID and name (the PatientID it had printed is an alias now, kept by registration)."""
    return await _set_patient(conn, [*event.merged_empi_ids, event.surviving.empi_id], event.surviving)


async def _set_patient(conn: asyncpg.Connection, empi_ids: list[str], patient: PatientRef) -> int:
    """The patient of steps not yet finished; a partial payload (no birth date, sex U) blanks nothing."""
    values = _patient_fields(patient)
    pn = split_person_name(str(values["patient_name"])).match_forms()
    result = await conn.execute(
        """UPDATE scheduled_procedure_steps SET empi_id = $2, patient_id = $3, patient_name = $4, pn_alpha = $5,
               pn_ideo = $6, pn_phon = $7, birth_date = coalesce($8, birth_date),
               sex = CASE WHEN $9 = '' THEN sex ELSE $9 END, updated_at = now()
           WHERE empi_id = ANY($1::text[]) AND status IN ('scheduled', 'in_progress')""",
        empi_ids, patient.empi_id, values["patient_id"], values["patient_name"], pn.alphabetic, pn.ideographic,
        pn.phonetic, values["birth_date"], values["sex"],
    )
    return int(result.split()[-1])


# ---- bulk import ---------------------------------------------------------------------------


async def import_steps(conn: asyncpg.Connection, steps: Sequence[StepData]) -> list[tuple[int, str, bool]]:
    """Create or replace steps from an external RIS/HIS, all or none; returns (id, sps_id, created).

    A step already started or finished keeps its state; its data is replaced all the same.
    """
    if not steps:
        return []
    out = []
    async with conn.transaction():
        for data in steps:
            values = data.columns()
            names = list(values)
            placeholders = ", ".join(f"${i + 1}" for i in range(len(names)))
            update = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in ("accession_number", "protocol_code"))
            row = await conn.fetchrow(
                f"INSERT INTO scheduled_procedure_steps ({', '.join(names)}) VALUES ({placeholders}) "
                f"ON CONFLICT (accession_number, protocol_code) DO UPDATE SET {update}, updated_at = now(), "
                "status = CASE WHEN scheduled_procedure_steps.status = 'cancelled' "
                f"AND NOT {_TOMBSTONED} THEN 'scheduled' ELSE scheduled_procedure_steps.status END "
                "RETURNING id, sps_id, (xmax = 0) AS created",
                *values.values(),
            )
            out.append((int(row["id"]), str(row["sps_id"]), bool(row["created"])))
    return out


async def cancel_step(conn: asyncpg.Connection, step_id: int) -> bool:
    """Take a step off the worklist by hand (a scheduled one only)."""
    result = await conn.execute(
        "UPDATE scheduled_procedure_steps SET status = 'cancelled', updated_at = now() "
        "WHERE id = $1 AND status = 'scheduled'", step_id,
    )
    return result.endswith(" 1")


def data_field_names() -> list[str]:
    return list(_DATA_FIELDS)


async def step_by_id(conn: asyncpg.Connection, step_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    lock_clause = " FOR UPDATE" if lock else ""
    return await conn.fetchrow("SELECT * FROM scheduled_procedure_steps WHERE id = $1" + lock_clause, step_id)


async def room_counts(conn: asyncpg.Connection, start: datetime, end: datetime) -> list[asyncpg.Record]:
    """Rooms with steps starting in [start, end), and how many are scheduled, arrived, in progress, done."""
    return await conn.fetch(
        """SELECT room_id, location, station_ae_title,
                  count(*) FILTER (WHERE status = 'scheduled' AND arrived_at IS NULL) AS scheduled,
                  count(*) FILTER (WHERE status = 'scheduled' AND arrived_at IS NOT NULL) AS arrived,
                  count(*) FILTER (WHERE status = 'in_progress') AS in_progress,
                  count(*) FILTER (WHERE status = 'completed') AS completed,
                  count(*) FILTER (WHERE status = 'discontinued') AS discontinued
           FROM scheduled_procedure_steps
           WHERE start_at >= $1 AND start_at < $2 AND status <> 'cancelled'
           GROUP BY room_id, location, station_ae_title ORDER BY location, station_ae_title""",
        start, end)
