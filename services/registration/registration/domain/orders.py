"""Exam orders as electronic application forms (smart-imaging standard 5.1.1), emitting order.created.

An order names a registered patient (EMPI), the ordering doctor and department, the visit, the
history and clinical diagnosis, the exam items and purpose, and the special conditions shown apart
everywhere (6.1.7: critical, multi-drug-resistant organism, infectious disease). Accession number
and Study Instance UID are assigned here so worklist, print and reporting agree on them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from imaging_common import audit
from imaging_common.empi import store
from imaging_common.events import publish
from imaging_common.events.types import ExamItem, OrderCancelled, OrderChanged, OrderCreated, SpecialConditions
from imaging_common.events.versions import next_version

from registration.domain import his_status
from registration.domain.patients import SOURCE, Actor, patient_ref, summary

# What a change (ORC-1 XO, the desk) may alter; the patient, accession and Study UID never change.
CHANGEABLE = ("items", "priority", "requested_at", "patient_class", "visit_number", "ward", "bed", "ordering_doctor",
              "ordering_doctor_id", "ordering_department", "clinical_diagnosis", "history", "purpose", "special")
_FORM_FIELDS = ("visit_number", "ward", "bed", "ordering_doctor", "ordering_doctor_id", "ordering_department",
                "clinical_diagnosis", "history", "purpose")


class OrderClosed(ValueError):
    """The order was cancelled: it can no longer change."""


class DuplicateOrder(ValueError):
    """The HIS sent an order number it sent before; the first one stands."""

    def __init__(self, order_id: str):
        super().__init__(f"order already received as {order_id}")
        self.order_id = order_id


def new_study_uid() -> str:
    """A UUID-derived UID (PS3.5 B.2: root 2.25): unique without a registered root."""
    return f"2.25.{uuid.uuid4().int}"


async def create_order(
    conn: asyncpg.Connection, *, empi_id: str, items: list[ExamItem], actor: Actor, accession_prefix: str = "A",
    source: str = "desk", placer_order_number: str | None = None, patient_class: str = "outpatient",
    special: SpecialConditions | None = None, priority: str = "routine", requested_at: datetime | None = None,
    **form: Any,
) -> dict[str, Any]:
    if not items:
        raise ValueError("an order has at least one exam item")
    async with conn.transaction():
        person = await store.get_person(conn, empi_id, follow_merged=True)
        if placer_order_number:
            existing = await conn.fetchval(
                "SELECT order_id FROM exam_order WHERE source = $1 AND placer_order_number = $2", source,
                placer_order_number)
            if existing:
                raise DuplicateOrder(str(existing))
        seq = await conn.fetchval("SELECT nextval('accession_seq')")
        now = datetime.now(UTC)
        accession = f"{accession_prefix}{now:%y%m%d}{seq:07d}"[:16]
        order_id = str(uuid.uuid4())
        special = special or SpecialConditions()
        fields = {k: form.get(k) for k in _FORM_FIELDS}
        study_uid = new_study_uid()
        await conn.execute(
            """INSERT INTO exam_order (order_id, accession_number, requested_procedure_id, study_instance_uid, empi_id,
                   source, placer_order_number, patient_class, visit_number, ward, bed, ordering_doctor,
                   ordering_doctor_id, ordering_department, clinical_diagnosis, history, purpose, items, special,
                   priority, created_by, ordered_at, requested_at)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18::jsonb,$19::jsonb,$20,$21,$22,
                       $23)""",
            order_id, accession, accession, study_uid, person.empi_id, source, placer_order_number, patient_class,
            *fields.values(), json.dumps([i.model_dump() for i in items], ensure_ascii=False),
            special.model_dump_json(), priority, actor.name, now, requested_at)
        await publish(conn, await order_snapshot(conn, order_id, OrderCreated), source=SOURCE, subject=accession)
        await audit.record(conn, actor=actor.name, action="create", entity="order", entity_id=order_id,
                           patient_id=person.empi_id, source_ip=actor.source_ip,
                           detail={"accession_number": accession, "source": source})
        return await load_order(conn, order_id)


async def order_id_of(conn: asyncpg.Connection, key: str) -> str | None:
    """The order id of an order id or accession number; None when there is no such order."""
    try:
        uuid.UUID(key)
        found = await conn.fetchval("SELECT order_id FROM exam_order WHERE order_id = $1::uuid", key)
    except ValueError:
        found = await conn.fetchval("SELECT order_id FROM exam_order WHERE accession_number = $1", key)
    return None if found is None else str(found)


async def cancel_order(conn: asyncpg.Connection, *, order_id: str, reason: str, actor: Actor,
                       by_his: bool = False, render: his_status.Render | None = None) -> tuple[dict[str, Any], bool]:
    """Cancel an order (the desk, or the HIS's ORC-1 CA/DC: `by_his`) and announce order.cancelled: the
    worklist step, the appointment, the queue entry and the films of that order follow; a HIS order the
    desk cancelled is reported to the HIS (ORC-1 OC, his_status) in the message `render` makes. Returns
    the order and whether this call cancelled it (False: it already was; nothing is announced twice)."""
    if not by_his and render is None:
        raise TypeError("a cancel at the desk needs the HIS status message's render (adapters/hl7_status)")
    async with conn.transaction():
        row = await conn.fetchrow("SELECT order_id, accession_number, status, empi_id FROM exam_order "
                                  "WHERE order_id = $1::uuid FOR UPDATE", order_id)
        if row is None:
            raise store.EmpiError(f"no order {order_id}")
        if row["status"] == "cancelled":
            return await load_order(conn, order_id), False
        await conn.execute("UPDATE exam_order SET status = 'cancelled', updated_at = now() WHERE order_id = $1::uuid",
                           order_id)
        order = await order_snapshot(conn, order_id)  # who and what it was about, at the order's next version
        await publish(conn, OrderCancelled(order_id=order_id, accession_number=row["accession_number"], reason=reason,
                                           version=order.version, patient=order.patient, items=order.items),
                      source=SOURCE, subject=row["accession_number"])
        if render is not None and not by_his:
            await his_status.cancelled_at_desk(conn, order_id, reason, render)
        await audit.record(conn, actor=actor.name, action="update", entity="order", entity_id=order_id,
                           patient_id=row["empi_id"], source_ip=actor.source_ip,
                           detail={"accession_number": row["accession_number"], "cancelled": True, "reason": reason})
        return await load_order(conn, order_id), True


async def change_order(conn: asyncpg.Connection, *, order_id: str, changes: dict[str, Any], reason: str | None,
                       actor: Actor) -> tuple[dict[str, Any], list[str]]:
    """Change what an order asks for (ORC-1 XO, or the desk) and announce the whole order as order.changed:
    the worklist step, the appointment, the queue entry and the report follow. Returns the order and the
    names of the fields that really changed (none: nothing is announced)."""
    unknown = sorted(set(changes) - set(CHANGEABLE))
    if unknown:
        raise ValueError(f"these fields of an order cannot be changed: {', '.join(unknown)}")
    if "items" in changes and not changes["items"]:
        raise ValueError("an order has at least one exam item")
    async with conn.transaction():
        row = await conn.fetchrow("SELECT * FROM exam_order WHERE order_id = $1::uuid FOR UPDATE", order_id)
        if row is None:
            raise store.EmpiError(f"no order {order_id}")
        if row["status"] == "cancelled":
            raise OrderClosed(f"order {row['accession_number']} was cancelled; it cannot change")
        current = _stored(dict(row))
        wanted = {k: _stored_value(k, v) for k, v in changes.items()}
        changed = [k for k in CHANGEABLE if k in wanted and wanted[k] != current[k]]
        if not changed:
            return await load_order(conn, order_id), []
        sets = ", ".join(f"{k} = ${n}{'::jsonb' if k in ('items', 'special') else ''}"
                         for n, k in enumerate(changed, start=2))
        values = [json.dumps(wanted[k], ensure_ascii=False) if k in ("items", "special") else wanted[k]
                  for k in changed]
        await conn.execute(f"UPDATE exam_order SET {sets}, updated_at = now() WHERE order_id = $1::uuid",
                           order_id, *values)
        await publish(conn, await order_snapshot(conn, order_id, OrderChanged, changed=changed, reason=reason),
                      source=SOURCE, subject=row["accession_number"])
        await audit.record(conn, actor=actor.name, action="update", entity="order", entity_id=order_id,
                           patient_id=row["empi_id"], source_ip=actor.source_ip,
                           detail={"accession_number": row["accession_number"], "changed": changed, "reason": reason,
                                   "before": {k: current[k] for k in changed}})
        return await load_order(conn, order_id), changed


def _stored_value(name: str, value: Any) -> Any:
    """A change as the row stores it: items and special as plain JSON, the rest as given."""
    if name == "items":
        return [ExamItem.model_validate(i).model_dump() for i in value]
    if name == "special":
        return SpecialConditions.model_validate(value).model_dump()
    if name in ("priority", "patient_class"):
        return value
    return value or None  # "" clears a field


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in CHANGEABLE}
    for key in ("items", "special"):
        if isinstance(out[key], str):
            out[key] = json.loads(out[key])
    out["items"] = [ExamItem.model_validate(i).model_dump() for i in out["items"]]
    out["special"] = SpecialConditions.model_validate(out["special"] or {}).model_dump()
    return out


async def order_snapshot(conn: asyncpg.Connection, order_id: str, kind: type[OrderCreated] = OrderChanged,
                         **extra: Any) -> OrderCreated:
    """The whole order as an event, with its next version and its patient as registration knows them now
    (a merged patient's orders name the survivor)."""
    row = await conn.fetchrow("SELECT * FROM exam_order WHERE order_id = $1::uuid", order_id)
    if row is None:
        raise store.EmpiError(f"no order {order_id}")
    stored = _stored(dict(row))
    person = await store.get_person(conn, row["empi_id"], follow_merged=True)
    return kind(
        order_id=str(row["order_id"]), accession_number=row["accession_number"],
        requested_procedure_id=row["requested_procedure_id"], study_instance_uid=row["study_instance_uid"],
        patient=patient_ref(person), ordered_at=row["ordered_at"],
        version=await next_version(conn, f"order:{row['order_id']}"), **stored, **extra,
    )


async def announce_orders_of(conn: asyncpg.Connection, empi_ids: list[str], *, reason: str) -> int:
    """order.changed for every open order of these patients, naming whom registration now says they belong
    to: after a merge the survivor, after an unmerge the restored patient again."""
    rows = await conn.fetch("SELECT order_id, accession_number FROM exam_order WHERE empi_id = ANY($1::text[]) "
                            "AND status <> 'cancelled' ORDER BY ordered_at", empi_ids)
    for row in rows:
        await publish(conn, await order_snapshot(conn, str(row["order_id"]), OrderChanged, changed=["patient"],
                                                 reason=reason), source=SOURCE, subject=row["accession_number"])
    return len(rows)


async def load_order(conn: asyncpg.Connection, order_id: str) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM exam_order WHERE order_id = $1", order_id)
    if row is None:
        raise store.EmpiError(f"no order {order_id}")
    out = dict(row)
    out["order_id"] = str(out["order_id"])
    for key in ("items", "special"):
        if isinstance(out[key], str):
            out[key] = json.loads(out[key])
    person = await store.get_person(conn, row["empi_id"], follow_merged=True)
    out["patient"] = summary(person)
    return out


async def get_order(conn: asyncpg.Connection, key: str, *, actor: Actor) -> dict[str, Any]:
    """By order id or accession number; the read is audited."""
    order_id = await order_id_of(conn, key)
    if order_id is None:
        raise store.EmpiError(f"no order {key}")
    order = await load_order(conn, str(order_id))
    await audit.record_read(conn, actor=actor.name, entity="order", entity_id=order["order_id"],
                            patient_id=order["empi_id"], source_ip=actor.source_ip)
    return order


async def list_orders(
    conn: asyncpg.Connection, *, empi_id: str | None, actor: Actor, limit: int = 50
) -> list[dict[str, Any]]:
    if empi_id:
        person = await store.get_person(conn, empi_id, follow_merged=True)
        # A merged person's orders belong to the survivor: include every EMPI id folded into it.
        ids = [r["empi_id"] for r in await conn.fetch(
            "SELECT empi_id FROM empi_person WHERE empi_id = $1 OR merged_into = $1", person.empi_id)]
        rows = await conn.fetch("SELECT order_id FROM exam_order WHERE empi_id = ANY($1::text[]) "
                                "ORDER BY ordered_at DESC LIMIT $2", ids, limit)
    else:
        rows = await conn.fetch("SELECT order_id FROM exam_order ORDER BY ordered_at DESC LIMIT $1", limit)
    out = [await load_order(conn, str(r["order_id"])) for r in rows]
    await audit.record_read(conn, actor=actor.name, entity="order", patient_id=empi_id,
                            source_ip=actor.source_ip, detail={"count": len(out)})
    return out


async def order_ids_of_patient(conn: asyncpg.Connection, empi_id: str, limit: int = 100) -> list[str]:
    """The patient's orders, newest first."""
    rows = await conn.fetch("SELECT order_id FROM exam_order WHERE empi_id = $1 ORDER BY ordered_at DESC "
                            "LIMIT $2", empi_id, limit)
    return [str(r["order_id"]) for r in rows]
