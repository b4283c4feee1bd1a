"""What scheduling learns from other services' events: orders to schedule, their changes and
cancellations, arrivals and patient record changes. Each handler runs in the transaction that records
the event in the inbox, so a redelivered event changes nothing twice; the consumer has already
dropped an order or patient snapshot older than one applied (imaging_common.events.versions).

Orders. `order.created` and `order.changed` are both the whole order as it now is, applied the same way
(an `order.changed` may come without any `order.created` before it): one exam request per item, with
the order's priority, ward, patient class, special conditions and patient. A versioned snapshot is
authoritative: items it no longer lists are cancelled ("removed from the order"). A snapshot without a
version (an older producer) only adds the requests it does not know. `order.cancelled` cancels the
requests and their live appointments (freeing the slots) and leaves a tombstone (`cancelled_order`),
so no later snapshot reopens them.

A booked slot that no longer fits the changed order is freed, not kept with a flag: the appointment
of an item the order no longer asks for, or of an item whose modality changed away from its room's,
is cancelled with a reason saying so ("order changed: ..."), which publishes `appointment.cancelled`
to the worklist and the queue; the request of the new item is open to be booked again. A stale slot
that stayed booked would keep the room, put the wrong procedure on the modality's worklist and let
the patient be checked in for it. An appointment already checked in (the modality has started) is
the modality's to finish and is left as it is. A change of priority, ward or patient keeps the
booking: the appointment follows its request.

Patients. The copy of a patient kept on each request is merged, never overwritten blindly: a snapshot
at least as new as any applied (patient_is_current) wins where it has a value, an older or unversioned
one only fills what the copy lacks, and an empty value never blanks a known one (merge_patient). Every
request of that patient gets the newer copy. `patient.merged` moves the merged records' requests,
appointments and no-shows to the survivor, with the survivor's identity.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from imaging_common.events import versions
from imaging_common.events.types import (
    ExamCompleted,
    ExamItem,
    ExamStarted,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    PatientArrived,
    PatientMerged,
    PatientRef,
    PatientUpdated,
)

from scheduling.domain import booking
from scheduling.domain.states import TRANSITIONS, Action, State

# An exam code not configured yet gets a row with these minutes, marked auto_created for the admin.
DEFAULT_MINUTES = {"CT": 15, "MR": 30, "DX": 10, "CR": 10, "US": 20, "RF": 30, "MG": 15, "NM": 45, "PT": 60, "XA": 60}

SYSTEM = booking.SYSTEM

# Appointments still waiting for the exam: cancelled with their order; freed when the order's change
# no longer fits them. CHECKED_IN (the modality started) is cancelled only with the order itself.
NOT_STARTED = [
    State.PROPOSED.value,
    State.WAITLIST.value,
    State.PENDING.value,
    State.BOOKED.value,
    State.ARRIVED.value,
]
LIVE = [*NOT_STARTED, State.CHECKED_IN.value]


def _contrast(item: ExamItem) -> str:
    if not item.contrast:
        return "none"
    return {"CT": "iodinated", "MR": "gadolinium"}.get(item.modality, "other")


async def _ensure_exam_type(conn: asyncpg.Connection, item: ExamItem) -> None:
    await conn.execute(
        """INSERT INTO exam_type (code, name, modality, body_part, duration_minutes, contrast, auto_created)
           VALUES ($1, $2, $3, $4, $5, $6, true) ON CONFLICT (code) DO NOTHING""",
        item.code,
        item.name,
        item.modality,
        item.body_part,
        DEFAULT_MINUTES.get(item.modality, 20),
        _contrast(item),
    )


async def patient_copy(conn: asyncpg.Connection, patient: PatientRef, *, current: bool) -> dict[str, Any]:
    """Merge a snapshot of a patient into every request's copy of them; the copy for new requests.

    `current`: the snapshot is at least as new as every one applied (versions.patient_is_current).
    """
    incoming = patient.model_dump(mode="json")
    rows = await conn.fetch(
        "SELECT order_id, exam_code, patient FROM exam_request WHERE empi_id = $1 ORDER BY created_at, exam_code",
        patient.empi_id,
    )
    copy: dict[str, Any] | None = None
    for r in rows:
        known = _obj(r["patient"])
        merged = versions.merge_patient(known, incoming, current=current)
        if merged != known:
            await conn.execute(
                "UPDATE exam_request SET patient = $3::jsonb WHERE order_id = $1 AND exam_code = $2",
                r["order_id"],
                r["exam_code"],
                _json(merged),
            )
        copy = merged if copy is None else versions.merge_patient(copy, merged, current=False)
    return copy if copy is not None else versions.merge_patient(None, incoming, current=current)


async def apply_order(conn: asyncpg.Connection, scheduler: booking.Scheduler, order: OrderCreated) -> None:
    """order.created / order.changed: the order as it now is (see the module docstring)."""
    authoritative = order.version is not None
    tombstone = await conn.fetchval("SELECT reason FROM cancelled_order WHERE order_id = $1", order.order_id)
    status, cancel_reason = ("cancelled", tombstone) if tombstone is not None else ("open", None)
    current = await versions.patient_is_current(conn, order.patient)
    patient = await patient_copy(conn, order.patient, current=current)
    before = {
        r["exam_code"]: r
        for r in await conn.fetch(
            "SELECT exam_code, modality, status FROM exam_request WHERE order_id = $1 FOR UPDATE", order.order_id
        )
    }
    conflict = (
        """DO UPDATE SET accession_number = EXCLUDED.accession_number,
               requested_procedure_id = EXCLUDED.requested_procedure_id,
               study_instance_uid = EXCLUDED.study_instance_uid, exam_name = EXCLUDED.exam_name,
               modality = EXCLUDED.modality, empi_id = EXCLUDED.empi_id, patient = EXCLUDED.patient,
               patient_class = EXCLUDED.patient_class, ward = EXCLUDED.ward, special = EXCLUDED.special,
               priority = EXCLUDED.priority, status = EXCLUDED.status, cancel_reason = EXCLUDED.cancel_reason"""
        if authoritative
        else "DO NOTHING"
    )
    for item in order.items:
        await _ensure_exam_type(conn, item)
        await conn.execute(
            f"""INSERT INTO exam_request (order_id, exam_code, accession_number, requested_procedure_id,
                   study_instance_uid, exam_name, modality, empi_id, patient, patient_class, ward, special, priority,
                   status, cancel_reason)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12::jsonb, $13, $14, $15)
               ON CONFLICT (order_id, exam_code) {conflict}""",
            order.order_id,
            item.code,
            order.accession_number,
            order.requested_procedure_id,
            order.study_instance_uid,
            item.name,
            item.modality,
            order.patient.empi_id,
            _json(patient),
            order.patient_class,
            order.ward,
            order.special.model_dump_json(),
            order.priority,
            status,
            cancel_reason,
        )
    if not authoritative or tombstone is not None:
        return
    wanted = {item.code: item for item in order.items}
    why = f" ({order.reason})" if isinstance(order, OrderChanged) and order.reason else ""
    removed = [code for code, r in before.items() if code not in wanted and r["status"] == "open"]
    if removed:
        await conn.execute(
            "UPDATE exam_request SET status = 'cancelled', cancel_reason = $3 "
            "WHERE order_id = $1 AND exam_code = ANY($2)",
            order.order_id,
            removed,
            f"removed from the order{why}",
        )
    # The appointments follow their order: its patient (after a merge or an unmerge, with the no-shows),
    # and for live ones the MDR flag (the calendar keeps MDR patients apart).
    await conn.execute(
        "UPDATE appointment SET empi_id = $2, updated_at = now() WHERE order_id = $1 AND empi_id <> $2",
        order.order_id,
        order.patient.empi_id,
    )
    await conn.execute(
        "UPDATE appointment SET mdr = $2, updated_at = now() WHERE order_id = $1 AND status = ANY($3) AND mdr <> $2",
        order.order_id,
        order.special.mdr,
        LIVE,
    )
    live = await conn.fetch(
        "SELECT a.id::text AS id, a.exam_code, a.room_id, r.modality AS room_modality FROM appointment a "
        "JOIN room r ON r.id = a.room_id WHERE a.order_id = $1 AND a.status = ANY($2) ORDER BY a.exam_code",
        order.order_id,
        NOT_STARTED,
    )
    for a in live:
        code = a["exam_code"]
        if code not in wanted:
            now_asks = ", ".join(sorted(wanted)) or "nothing"
            reason = f"order changed: exam {code} is no longer requested (now {now_asks}){why}; book again"
        elif (
            code in before
            and wanted[code].modality != before[code]["modality"]
            and wanted[code].modality != a["room_modality"]
        ):
            reason = (
                f"order changed: exam {code} is now {wanted[code].modality}, room {a['room_id']} is "
                f"{a['room_modality']}{why}; book again"
            )
        else:
            continue
        await booking.transition(conn, scheduler, a["id"], Action.CANCEL, actor=SYSTEM, reason=reason)


async def cancel_order(
    conn: asyncpg.Connection, scheduler: booking.Scheduler, order_id: str, reason: str, actor: booking.Actor = SYSTEM
) -> int:
    """Cancel an order's requests and its live appointments (with the order's reason), freeing their
    slots; the tombstone keeps a later snapshot of the order from reopening them."""
    await conn.execute(
        "INSERT INTO cancelled_order (order_id, reason) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING",
        order_id,
        reason,
    )
    await conn.execute(
        "UPDATE exam_request SET status = 'cancelled', cancel_reason = $2 WHERE order_id = $1", order_id, reason
    )
    rows = await conn.fetch(
        "SELECT id::text AS id FROM appointment WHERE order_id = $1 AND status = ANY($2)", order_id, LIVE
    )
    for r in rows:
        await booking.transition(conn, scheduler, r["id"], Action.CANCEL, actor=actor, reason=reason)
    return len(rows)


async def apply_order_cancelled(conn: asyncpg.Connection, scheduler: booking.Scheduler, data: OrderCancelled) -> None:
    await cancel_order(conn, scheduler, data.order_id, f"order cancelled: {data.reason or 'no reason given'}")


async def apply_patient_arrived(conn: asyncpg.Connection, scheduler: booking.Scheduler, data: PatientArrived) -> None:
    row = await conn.fetchrow(
        "SELECT id::text AS id FROM appointment WHERE status = 'booked' AND "
        "(id::text = $1 OR ($1 IS NULL AND accession_number = $2)) ORDER BY lower(during) LIMIT 1",
        data.appointment_id,
        data.accession_number,
    )
    if row is not None:  # walk-ins without an appointment are queue-calling's business
        await booking.transition(conn, scheduler, row["id"], Action.ARRIVE, actor=SYSTEM)


async def apply_exam_progress(
    conn: asyncpg.Connection, scheduler: booking.Scheduler, data: ExamStarted | ExamCompleted
) -> None:
    """The modality's MPPS, relayed by the worklist: started -> checked-in, completed -> fulfilled.

    A patient who skipped the check-in desk is checked in on the way, so the appointment still
    walks its table forward; a discontinued exam leaves the appointment for staff to decide.
    """
    if isinstance(data, ExamStarted):
        steps: tuple[Action, ...] = (Action.CHECK_IN,)
    elif data.status == "completed":
        steps = (Action.CHECK_IN, Action.FULFIL)
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
        if (status, step) in TRANSITIONS:
            await booking.transition(conn, scheduler, row["id"], step, actor=SYSTEM)


async def apply_patient_updated(conn: asyncpg.Connection, data: PatientUpdated) -> None:
    await patient_copy(conn, data.patient, current=await versions.patient_is_current(conn, data.patient))


async def apply_patient_merged(conn: asyncpg.Connection, data: PatientMerged) -> None:
    """Merged records become the survivor's: their requests show the survivor, and their appointments
    and no-shows count for the survivor."""
    survivor = data.surviving
    ids = [e for e in data.merged_empi_ids if e != survivor.empi_id]
    copy = await patient_copy(conn, survivor, current=await versions.patient_is_current(conn, survivor))
    for r in await conn.fetch(
        "SELECT order_id, exam_code, patient FROM exam_request WHERE empi_id = ANY($1) FOR UPDATE", ids
    ):
        # The survivor's identity; what its copy does not know (a phone, an ID) is kept from the merged record.
        own = {k: v for k, v in _obj(r["patient"]).items() if k not in ("empi_id", "patient_id", "version")}
        await conn.execute(
            "UPDATE exam_request SET empi_id = $3, patient = $4::jsonb WHERE order_id = $1 AND exam_code = $2",
            r["order_id"],
            r["exam_code"],
            survivor.empi_id,
            _json(versions.merge_patient(copy, own, current=False)),
        )
    await conn.execute(
        "UPDATE appointment SET empi_id = $1, updated_at = now() WHERE empi_id = ANY($2)", survivor.empi_id, ids
    )


def _obj(v: Any) -> dict[str, Any]:
    return dict(json.loads(v)) if isinstance(v, str) else dict(v or {})


def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=str)
