"""Event handlers: what the queue learns from registration, scheduling and the modalities.

The consumer has already dropped an order, appointment or patient snapshot older than one applied
(imaging_common.events.versions); a handler applies what reaches it and keeps the queue's live
entries and the screens in step:
- order.created / order.changed (the whole order): the exam's item, priority and patient; a live
  entry shows the new item and priority (its level is recomputed from the order, keeping what the
  desk declared, so the queue re-orders) and, while it waits, moves to the queue its placement
  rules now pick; screens update;
- order.cancelled: the exam is cancelled (a tombstone keeps it so) and its entry leaves the queue;
- patient.updated / patient.merged: every copy of the patient follows (merged: the survivor's
  identity), never blanking a known name, sex or phone; live entries and screens follow.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
from imaging_common.events import CloudEvent, Handlers
from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    ExamCompleted,
    ExamStarted,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    PatientMerged,
    PatientUpdated,
)

from queue_calling.domain import calling, checkin, entries, exams, notifications, priority, views
from queue_calling.domain.calling import Who
from queue_calling.domain.errors import QueueError
from queue_calling.domain.scope import Change, lock_scope
from queue_calling.domain.states import Action, InvalidTransition, State

log = logging.getLogger(__name__)
SYSTEM = Who("system", "event")

# A handler runs inside the consumer's transaction and has no hold of the screen hub; it tells
# the hubs through PostgreSQL NOTIFY, which is delivered only if (and when) that transaction commits.
ROOMS_CHANGED = "queue_calling_rooms"
LIVE = ("waiting", "called", "skipped", "in_exam")


async def on_order(conn: asyncpg.Connection, order: OrderCreated, event: CloudEvent) -> None:
    """order.created and order.changed: both the whole order as it now is."""
    before = await conn.fetchrow("SELECT * FROM exam WHERE accession_number = $1", order.accession_number)
    await exams.record_order(conn, order)
    await _entry_follows_order(conn, before, order)
    await _entries_follow_patients(conn, [order.patient.empi_id])


async def on_order_cancelled(conn: asyncpg.Connection, data: OrderCancelled, event: CloudEvent) -> None:
    await exams.cancel_order(conn, accession_number=data.accession_number, order_id=data.order_id,
                             reason=data.reason)
    await _entry_action(conn, data.accession_number, "cancel")


async def on_appointment(conn: asyncpg.Connection, data: AppointmentBooked | AppointmentRescheduled,
                         event: CloudEvent) -> None:
    await exams.record_appointment(conn, data.appointment)


async def on_appointment_cancelled(conn: asyncpg.Connection, data: AppointmentCancelled,
                                   event: CloudEvent) -> None:
    await exams.cancel_appointment(conn, accession_number=data.accession_number, appointment_id=data.appointment_id)


async def on_patient_updated(conn: asyncpg.Connection, data: PatientUpdated, event: CloudEvent) -> None:
    patient = data.patient
    await exams.update_patient(conn, patient)
    await _entries_follow_patients(conn, [patient.empi_id])


async def on_patient_merged(conn: asyncpg.Connection, data: PatientMerged, event: CloudEvent) -> None:
    await exams.merge_patients(conn, data.surviving, list(data.merged_empi_ids))
    await _entries_follow_patients(conn, [data.surviving.empi_id, *data.merged_empi_ids])


async def _publish(conn: asyncpg.Connection, change: Change) -> None:
    """Seal the change (room view versions) and tell the screen hubs once the transaction commits."""
    await views.seal(conn, change)
    await notifications.queue_for(conn, change, datetime.now(UTC))
    await conn.execute("SELECT pg_notify($1, $2)", ROOMS_CHANGED, json.dumps(sorted(change.rooms)))


async def _entries_follow_patients(conn: asyncpg.Connection, empi_ids: list[str]) -> None:
    """Live entries of these patients show their exam's current identity (name, sex, ids)."""
    rows = await conn.fetch(
        """SELECT e.entry_id, e.queue_id, e.room_id FROM queue_entry e JOIN exam x USING (accession_number)
            WHERE e.empi_id = ANY($1::text[]) AND e.state = ANY($2::text[])
              AND (e.empi_id, e.patient_id, e.patient_name, e.sex)
                  IS DISTINCT FROM (x.empi_id, x.patient_id, x.patient_name, x.sex)""",
        empi_ids, list(LIVE))
    if not rows:
        return
    change = await lock_scope(conn, queue_ids={r["queue_id"] for r in rows},
                              room_ids={r["room_id"] for r in rows if r["room_id"]})
    updated = await conn.fetch(
        """UPDATE queue_entry e SET empi_id = x.empi_id, patient_id = x.patient_id, patient_name = x.patient_name,
                  sex = x.sex, version = e.version + 1
             FROM exam x WHERE x.accession_number = e.accession_number AND e.entry_id = ANY($1::uuid[])
              AND e.state = ANY($2::text[])
              AND (e.empi_id, e.patient_id, e.patient_name, e.sex)
                  IS DISTINCT FROM (x.empi_id, x.patient_id, x.patient_name, x.sex)
           RETURNING e.entry_id, e.state, e.queue_id, e.room_id, e.empi_id""",
        [r["entry_id"] for r in rows], list(LIVE))
    for r in updated:
        await entries.log(conn, entry_id=r["entry_id"], action="patient_changed", from_state=r["state"],
                          to_state=r["state"], actor=SYSTEM.actor, terminal=SYSTEM.terminal, queue_id=r["queue_id"],
                          room_id=r["room_id"], detail={"empi_id": r["empi_id"]})
    if updated:
        await _publish(conn, change)


def _obj(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def _derived(exam: Any, age: int | None, policy: dict[str, Any]) -> list[str]:
    return priority.categories_of(patient_class=exam["patient_class"], priority=exam["priority"],
                                  special=_obj(exam["special"]), age=age, declared=(), policy=policy)


async def _entry_follows_order(conn: asyncpg.Connection, before: Any, order: Any) -> None:
    """The exam's live entry shows the order as it now is; the queue re-orders and the screens update.

    Its priority level is recomputed when its categories change: those the order implied before
    are replaced by those it implies now, those the desk declared at check-in stay. A waiting (or
    passed) patient whose exam now belongs in another queue is transferred there; one already called
    or in the room stays where they are (staff see the new exam)."""
    entry = await calling.live_entry_by_accession(conn, order.accession_number)
    exam = await conn.fetchrow("SELECT * FROM exam WHERE accession_number = $1", order.accession_number)
    if entry is None or exam is None or exam["order_status"] == "cancelled":
        return
    preparation = entry["preparation"]
    was_contrast = before["contrast"] if before is not None else exam["contrast"]
    if exam["contrast"] != was_contrast and preparation == ("injection" if was_contrast else "none"):
        preparation = "injection" if exam["contrast"] else "none"  # it was the default, not the desk's choice
    target = entry["queue_id"]
    exam_changed = before is None or any(before[k] != exam[k] for k in ("exam_code", "modality", "contrast"))
    if entry["state"] in (State.WAITING, State.SKIPPED) and exam_changed:  # a transfer by staff otherwise stays
        try:
            target = await checkin.place(conn, exam, preparation=preparation, technologist=entry["technologist"])
        except QueueError as exc:
            log.info("exam %s changed; no placement rule for it, stays in %s (%s)", order.accession_number,
                     entry["queue_id"], exc)
    change = await lock_scope(conn, queue_ids={entry["queue_id"], target}, room_ids={entry["room_id"]} - {None})
    fresh = await entries.get_entry(conn, entry["entry_id"], lock=True)
    if fresh["state"] not in LIVE or fresh["queue_id"] not in change.queues:
        return
    queue = change.locked_queues.get(fresh["queue_id"]) or await conn.fetchrow(
        "SELECT * FROM queue WHERE queue_id = $1", fresh["queue_id"])
    policy = priority.effective_policy(_obj(queue["policy"]))
    implied_before = _derived(before, fresh["age"], policy) if before is not None else []
    declared = [c for c in fresh["priority_reasons"] if c not in implied_before]
    categories = priority.categories_of(patient_class=exam["patient_class"], priority=exam["priority"],
                                        special=_obj(exam["special"]), age=fresh["age"], declared=declared,
                                        policy=policy)
    level = fresh["priority_level"]
    if sorted(categories) != sorted(fresh["priority_reasons"]):
        level = priority.level_of(categories, policy)
    new = {"exam_name": exam["exam_name"], "modality": exam["modality"], "special": _obj(exam["special"]),
           "preparation": preparation, "priority_level": level, "priority_reasons": categories,
           "empi_id": exam["empi_id"], "patient_id": exam["patient_id"], "patient_name": exam["patient_name"],
           "sex": exam["sex"]}
    old = {k: (_obj(fresh[k]) if k == "special" else fresh[k]) for k in new}
    old["priority_reasons"] = list(old["priority_reasons"])
    moved = target != fresh["queue_id"] and fresh["state"] in (State.WAITING, State.SKIPPED)
    if new == old and not moved:
        return
    row = fresh
    if new != old:
        row = await conn.fetchrow(
            """UPDATE queue_entry SET exam_name = $2, modality = $3, special = $4::jsonb, preparation = $5,
                      priority_level = $6, priority_reasons = $7, empi_id = $8, patient_id = $9, patient_name = $10,
                      sex = $11, version = version + 1
                WHERE entry_id = $1 RETURNING *""",
            fresh["entry_id"], new["exam_name"], new["modality"], json.dumps(new["special"]), preparation, level,
            categories, new["empi_id"], new["patient_id"], new["patient_name"], new["sex"])
        await entries.log(conn, entry_id=row["entry_id"], action="order_changed", from_state=row["state"],
                          to_state=row["state"], actor=SYSTEM.actor, terminal=SYSTEM.terminal,
                          queue_id=row["queue_id"], room_id=row["room_id"],
                          detail={"changed": list(getattr(order, "changed", []) or []),
                                  "reason": getattr(order, "reason", None),
                                  "before": {k: old[k] for k in new if old[k] != new[k]},
                                  "after": {k: new[k] for k in new if old[k] != new[k]}})
    if moved:
        await entries.transition(
            conn, row, Action.TRANSFER, actor=SYSTEM.actor, terminal=SYSTEM.terminal,
            set_sql="queue_id = $4, room_id = NULL, return_at_seq = NULL, return_at = NULL", args=(target,),
            detail={"from_queue": row["queue_id"], "to_queue": target, "from_room": row["room_id"],
                    "reason": "order changed"})
    await _publish(conn, change)


async def on_exam_started(conn: asyncpg.Connection, data: ExamStarted, event: CloudEvent) -> None:
    await _entry_action(conn, data.accession_number, "start")


async def on_exam_completed(conn: asyncpg.Connection, data: ExamCompleted, event: CloudEvent) -> None:
    accession = data.accession_number
    await _entry_action(conn, accession, "finish")
    await exams.mark_performed(conn, accession_number=accession)  # never checked in or called again


async def _entry_action(conn: asyncpg.Connection, accession_number: str, action: str) -> None:
    """Move the exam's live entry along; an exam never checked in (or already past) is fine."""
    entry = await calling.live_entry_by_accession(conn, accession_number)
    if entry is None:
        return
    now = datetime.now(UTC)
    try:
        if action == "start":
            _, change = await calling.start(conn, entry_id=entry["entry_id"], who=SYSTEM, now=now)
        elif action == "finish":
            if entry["state"] not in ("in_exam", "called"):
                _, change = await calling.start(conn, entry_id=entry["entry_id"], who=SYSTEM, now=now)
            _, change = await calling.finish(conn, entry_id=entry["entry_id"], who=SYSTEM, now=now)
        else:
            _, change = await calling.cancel(conn, entry_id=entry["entry_id"], who=SYSTEM, reason="order cancelled")
    except (InvalidTransition, QueueError) as exc:
        log.info("exam %s: %s ignored (%s)", accession_number, action, exc)
        return
    await _publish(conn, change)


HANDLERS: Handlers = {
    OrderCreated: on_order,
    OrderChanged: on_order,  # the whole order as it now is, like order.created
    OrderCancelled: on_order_cancelled,
    AppointmentBooked: on_appointment,
    AppointmentRescheduled: on_appointment,
    AppointmentCancelled: on_appointment_cancelled,
    PatientUpdated: on_patient_updated,
    PatientMerged: on_patient_merged,
    ExamStarted: on_exam_started,
    ExamCompleted: on_exam_completed,
}
