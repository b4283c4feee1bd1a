"""Critical values follow their order and their patient (issue 17).

Orders (order.created, order.changed: the whole order, upserted; a change may come alone, and the
consumer has already dropped any snapshot older than one applied):

- the order's routing (ordering doctor, department, ward) is who an open value goes to. When it
  changes, every value of that order that is still open and not yet acknowledged is re-routed: its
  recipient, department and ward become the order's, the timeline says from whom to whom and why,
  messages not yet sent to the former recipient are withdrawn and the new one is notified at the
  value's current escalation step (a value still awaiting confirmation is simply notified to the new
  recipient once confirmed). Acknowledged and closed values are the record of who was told: never
  re-routed.
- the order's patient is whose values they are: every value of the order (open or closed) shows
  that patient. An unmerge comes as order.changed naming the restored patient (and patient.updated):
  the values of those orders go back with them.

Patients: patient.updated refreshes every copy of the person; patient.merged makes every value and
order of the merged records show the survivor (noted on each value's timeline). Copies go through
`imaging_common.events.versions`: an older or unversioned snapshot only fills what is unknown, and
an empty value never blanks a known one.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import asyncpg
from imaging_common.events import versions
from imaging_common.events.types import OrderCreated, PatientRef

from critical_values.domain import lifecycle, recipients, states
from critical_values.domain.recipients import Person

SYSTEM = "system"


def _json(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return dict(json.loads(value) if isinstance(value, str) else value)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


async def known_copy(conn: asyncpg.Connection, empi_id: str | None) -> dict[str, Any] | None:
    """The freshest copy of the person this service holds (from an order, else from a value)."""
    if not empi_id:
        return None
    value = await conn.fetchval(
        "SELECT patient FROM order_info WHERE patient ->> 'empi_id' = $1 ORDER BY received_at DESC LIMIT 1", empi_id)
    if value is None:
        value = await conn.fetchval("SELECT patient FROM critical_value WHERE patient ->> 'empi_id' = $1 "
                                    "ORDER BY created_at DESC LIMIT 1", empi_id)
    return _json(value) or None


# ---- orders --------------------------------------------------------------------------------------


def _routing(doctor_id: str | None, doctor: str | None, department: str | None, ward: str | None) -> tuple:
    return (doctor_id or None, doctor or None, department or None, ward or None)


async def apply_order(conn: asyncpg.Connection, order: OrderCreated, *, at: datetime | None = None) -> None:
    """order.created / order.changed: remember the order, then values follow its patient and routing."""
    at = at or lifecycle.now_utc()
    before = await conn.fetchrow("SELECT * FROM order_info WHERE accession_number = $1 FOR UPDATE",
                                 order.accession_number)
    current = await versions.patient_is_current(conn, order.patient)
    held = _json(before["patient"]) if before else {}
    known = held if held.get("empi_id") == order.patient.empi_id else await known_copy(conn, order.patient.empi_id)
    patient = versions.merge_patient(known, order.patient.model_dump(mode="json"), current=current)
    await recipients.remember_order(
        conn, accession_number=order.accession_number, order_id=order.order_id, patient=patient,
        patient_class=order.patient_class, ordering_doctor_id=order.ordering_doctor_id,
        ordering_doctor=order.ordering_doctor, ordering_department=order.ordering_department, ward=order.ward,
        modality=order.items[0].modality if order.items else None)
    reason = getattr(order, "reason", None)
    await _values_follow_patient(conn, order.accession_number, patient, current=current, reason=reason)
    routing = _routing(order.ordering_doctor_id, order.ordering_doctor, order.ordering_department, order.ward)
    if before is not None and routing == _routing(before["ordering_doctor_id"], before["ordering_doctor"],
                                                  before["ordering_department"], before["ward"]):
        return
    for row in await conn.fetch("SELECT critical_id FROM critical_value WHERE accession_number = $1 "
                                "AND closed_at IS NULL AND acknowledged_at IS NULL ORDER BY raised_at",
                                order.accession_number):
        await reroute(conn, row["critical_id"], order, at=at, known_before=before is not None, reason=reason)


async def _values_follow_patient(conn: asyncpg.Connection, accession_number: str, patient: dict[str, Any], *,
                                 current: bool, reason: str | None) -> None:
    rows = await conn.fetch("SELECT critical_id, patient FROM critical_value WHERE accession_number = $1 "
                            "ORDER BY raised_at FOR UPDATE", accession_number)
    for row in rows:
        held = _json(row["patient"])
        if held.get("empi_id") == patient.get("empi_id"):
            copy = versions.merge_patient(held, patient, current=current)
            if copy == held:
                continue
        else:  # the order now belongs to someone else (an unmerge): so does its value
            copy = patient
            await lifecycle.log_action(conn, row["critical_id"], actor=SYSTEM, action="patient-changed", detail={
                "from": {k: held.get(k) for k in ("empi_id", "patient_id", "name")},
                "to": {k: patient.get(k) for k in ("empi_id", "patient_id", "name")}, "reason": reason})
        await _store_patient(conn, row["critical_id"], copy)


async def _store_patient(conn: asyncpg.Connection, critical_id: str, copy: dict[str, Any]) -> None:
    await conn.execute("UPDATE critical_value SET patient = $2::jsonb, patient_id = $3 WHERE critical_id = $1",
                       critical_id, _dumps(copy), str(copy.get("patient_id") or copy.get("empi_id") or ""))


def _notification_id(critical_id: str, step: int, receiver_id: str, channel: str, person: Person,
                     department: str | None) -> str:
    """A re-routed message is a new message (another recipient): its own stable identifier."""
    key = f"{critical_id}|{step}|{receiver_id}|{channel}|to:{person.person_id}|{person.name}|{department}"
    return "CV" + hashlib.sha256(key.encode()).hexdigest()[:18].upper()


async def _order_recipient(conn: asyncpg.Connection, order: OrderCreated, at: datetime) -> Person:
    """Who the order says answers for its values: the ordering doctor, else the department's (or
    ward's) on-call clinician, else the department itself (a phone task will find someone)."""
    if order.ordering_doctor_id or order.ordering_doctor:
        return Person(order.ordering_doctor_id, order.ordering_doctor or order.ordering_doctor_id)
    on_call = (await recipients.on_duty(conn, department=order.ordering_department, duty="on-call", at=at)
               or await recipients.on_duty(conn, department=order.ward, duty="on-call", at=at))
    return on_call or Person(None, order.ordering_department or order.ward)


async def reroute(conn: asyncpg.Connection, critical_id: str, order: OrderCreated, *, at: datetime,
                  known_before: bool = True, reason: str | None = None) -> bool:
    """Send an open, unacknowledged value to whom the order now names; False when nothing changed."""
    cv = await lifecycle.get(conn, critical_id, lock=True)
    if cv["closed_at"] is not None or cv["acknowledged_at"] is not None or cv["state"] not in states.OPEN_STATES:
        return False
    department, ward = order.ordering_department, order.ward
    if not known_before and not (order.ordering_doctor_id or order.ordering_doctor) \
            and (department or None, ward or None) == (cv["department"], cv["ward"]):
        return False  # first sight of the order, no doctor named, same place: the on-call choice stands
    person = await _order_recipient(conn, order, at)
    if (person.person_id, person.name, department, ward) == (cv["recipient_id"], cv["recipient_name"],
                                                            cv["department"], cv["ward"]):
        return False
    previous = {k: cv[k] for k in ("recipient_id", "recipient_name", "department", "ward")}
    cv = await conn.fetchrow(
        "UPDATE critical_value SET recipient_id = $2, recipient_name = $3, department = $4, ward = $5 "
        "WHERE critical_id = $1 RETURNING *", critical_id, person.person_id, person.name, department, ward)
    await lifecycle.log_action(conn, critical_id, actor=SYSTEM, action="re-routed", recipient=person.name, detail={
        "from": previous,
        "to": {"recipient_id": person.person_id, "recipient_name": person.name, "department": department,
               "ward": ward},
        "order_version": order.version, "reason": reason}, at=at)
    if cv["state"] == states.AWAITING_CONFIRMATION:
        return True  # notified once confirmed, to the recipient it now has
    # Messages not yet sent to whoever it was for are withdrawn (one being sent right now finishes).
    await conn.execute(
        """UPDATE notification SET status = 'cancelled', last_error = 're-routed: the order changed'
           WHERE notification_id IN (SELECT notification_id FROM notification WHERE critical_id = $1
               AND status = 'pending' AND (sending_until IS NULL OR sending_until < now())
               AND recipient_id IS NOT DISTINCT FROM $2
               AND recipient_name IS NOT DISTINCT FROM $3 FOR UPDATE SKIP LOCKED)""",
        critical_id, previous["recipient_id"], previous["recipient_name"])
    step = int(cv["escalation_level"] or 0)
    queued: list[str] = []
    for rcv in await recipients.receivers_for(conn, department):
        for channel, on in (("hl7", rcv["hl7_host"]), ("fhir", rcv["fhir_base_url"])):
            if not on:
                continue
            nid = _notification_id(critical_id, step, rcv["receiver_id"], channel, person, department)
            if await conn.fetchval(
                    """INSERT INTO notification (notification_id, critical_id, step, channel, receiver_id,
                           recipient_id, recipient_name, next_attempt_at, created_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
                       ON CONFLICT (notification_id) DO NOTHING RETURNING true""",
                    nid, critical_id, step, channel, rcv["receiver_id"], person.person_id, person.name, at):
                queued.append(nid)
    if not queued and not await conn.fetchval(
            "SELECT 1 FROM notification WHERE critical_id = $1 AND status = 'pending' AND recipient_id "
            "IS NOT DISTINCT FROM $2 AND recipient_name IS NOT DISTINCT FROM $3", critical_id, person.person_id,
            person.name):
        await lifecycle.create_phone_task(conn, cv, reason="re-routed: no clinician system serves the department",
                                          whom=person, at=at)
    return True


# ---- patients ------------------------------------------------------------------------------------


async def apply_patient_updated(conn: asyncpg.Connection, patient: PatientRef) -> None:
    """Every order and value of the person takes the new copy (a stale or partial one fills blanks)."""
    current = await versions.patient_is_current(conn, patient)
    incoming = patient.model_dump(mode="json")
    for row in await conn.fetch("SELECT accession_number, patient FROM order_info WHERE patient ->> 'empi_id' = $1 "
                                "ORDER BY accession_number FOR UPDATE", patient.empi_id):
        copy = versions.merge_patient(_json(row["patient"]), incoming, current=current)
        await conn.execute("UPDATE order_info SET patient = $2::jsonb WHERE accession_number = $1",
                           row["accession_number"], _dumps(copy))
    for row in await conn.fetch("SELECT critical_id, patient FROM critical_value WHERE patient ->> 'empi_id' = $1 "
                                "ORDER BY critical_id FOR UPDATE", patient.empi_id):
        await _store_patient(conn, row["critical_id"],
                             versions.merge_patient(_json(row["patient"]), incoming, current=current))


async def apply_patient_merged(conn: asyncpg.Connection, survivor: PatientRef, merged_empi_ids: list[str]) -> None:
    """Orders and values (open and closed) of the merged records show the survivor; the survivor's own
    take its golden record, which a merge recomputes."""
    await apply_patient_updated(conn, survivor)
    current = await versions.patient_is_current(conn, survivor)
    incoming = survivor.model_dump(mode="json")
    base = await known_copy(conn, survivor.empi_id)

    def copy_of(held: dict[str, Any]) -> dict[str, Any]:
        known = base if base is not None else {k: v for k, v in held.items()
                                               if k not in ("empi_id", "patient_id", "version")}
        copy = versions.merge_patient(known, incoming, current=current)
        copy.update(empi_id=survivor.empi_id, patient_id=survivor.patient_id)
        return copy

    for row in await conn.fetch("SELECT accession_number, patient FROM order_info WHERE patient ->> 'empi_id' = "
                                "ANY($1::text[]) ORDER BY accession_number FOR UPDATE", merged_empi_ids):
        await conn.execute("UPDATE order_info SET patient = $2::jsonb WHERE accession_number = $1",
                           row["accession_number"], _dumps(copy_of(_json(row["patient"]))))
    for row in await conn.fetch("SELECT critical_id, patient FROM critical_value WHERE patient ->> 'empi_id' = "
                                "ANY($1::text[]) ORDER BY critical_id FOR UPDATE", merged_empi_ids):
        held = _json(row["patient"])
        await _store_patient(conn, row["critical_id"], copy_of(held))
        await lifecycle.log_action(conn, row["critical_id"], actor=SYSTEM, action="patient-merged", detail={
            "from": {k: held.get(k) for k in ("empi_id", "patient_id", "name")},
            "to": {"empi_id": survivor.empi_id, "patient_id": survivor.patient_id, "name": survivor.name}})


async def patient_for_value(conn: asyncpg.Connection, accession_number: str, patient: PatientRef) -> dict[str, Any]:
    """The copy a new value (critical.raised) keeps: its order's patient when the order is known (values
    follow their order's patient, a raise from a report written before a merge included), merged with
    what the event says when it is the same person."""
    current = await versions.patient_is_current(conn, patient)
    incoming = patient.model_dump(mode="json")
    order = _json(await conn.fetchval("SELECT patient FROM order_info WHERE accession_number = $1",
                                      accession_number))
    if order and order.get("empi_id") != patient.empi_id:
        return order
    return versions.merge_patient(order or await known_copy(conn, patient.empi_id), incoming, current=current)
