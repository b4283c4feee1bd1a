"""Exams to report, learnt from `order.created` / `order.changed` (who, what, why) and `exam.completed`
(done on the modality): the radiologists' worklist, their priors, and what QC compares a report with.
Whose exam it is, and how that follows merges and changed orders: domain/patients.py."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from imaging_common.events import versions
from imaging_common.events.types import ExamCompleted, OrderCancelled, OrderCreated, PatientMerged, PatientUpdated

from reporting.domain import patients


async def _ensure(conn: asyncpg.Connection, accession_number: str) -> asyncpg.Record:
    """The exam row, created empty if it is new, locked with its report's state (see patients.locked_exam)."""
    await conn.execute("INSERT INTO exam (accession_number) VALUES ($1) ON CONFLICT DO NOTHING", accession_number)
    row = await patients.locked_exam(conn, accession_number)
    assert row is not None
    return row


async def apply_order_created(conn: asyncpg.Connection, order: OrderCreated) -> None:
    """order.created and order.changed: the whole order, upserted (a change may come first, alone).

    The consumer has already checked the order's version, so this snapshot is the newest: every order
    field is overwritten (items, priority, department, doctor, clinical information). The patient
    follows patients.follow_order. A cancelled exam stays cancelled; once the modality has performed the
    exam, the modality it was performed on stays.
    """
    exam = await _ensure(conn, order.accession_number)
    current = await versions.patient_is_current(conn, order.patient)
    identity = await patients.follow_order(
        conn, exam, order.patient, current=current, order_version=order.version,
        reason=(getattr(order, "reason", None) or ", ".join(getattr(order, "changed", []) or [])) or None)
    item = order.items[0] if order.items else None
    fields: dict[str, Any] = {
        "order_id": order.order_id, "study_instance_uid": order.study_instance_uid,
        "body_part": item.body_part if item else None, "laterality": item.laterality if item else None,
        "exam_code": item.code if item else None, "exam_name": item.name if item else None,
        "items": json.dumps([i.model_dump(mode="json") for i in order.items], ensure_ascii=False),
        "ordering_doctor": order.ordering_doctor, "ordering_doctor_id": order.ordering_doctor_id,
        "ordering_department": order.ordering_department, "ward": order.ward,
        "clinical_diagnosis": order.clinical_diagnosis, "history": order.history, "purpose": order.purpose,
        "priority": order.priority, "ordered_at": order.ordered_at, **(identity or {}),
    }
    if item and item.modality and exam["completed_at"] is None:
        fields["modality"] = item.modality
    sets = ", ".join(f"{name} = ${i}{'::jsonb' if name in ('items', 'patient') else ''}"
                     for i, name in enumerate(fields, start=2))
    await conn.execute(f"UPDATE exam SET {sets}, updated_at = now() WHERE accession_number = $1",
                       order.accession_number, *fields.values())


async def apply_exam_completed(conn: asyncpg.Connection, done: ExamCompleted) -> None:
    """The exam is ready to report (or discontinued); an order we never saw is created from it.

    The patient the modality names is copied only onto an exam of that same person (or one that knows
    nobody yet): the order decides whose exam it is, not the modality."""
    exam = await _ensure(conn, done.accession_number)
    fields: dict[str, Any] = {}
    if exam["empi_id"] is None or exam["empi_id"] == done.patient.empi_id:
        current = await versions.patient_is_current(conn, done.patient)
        known = patients.as_dict(exam["patient"]) if exam["empi_id"] else await patients.known_copy(
            conn, done.patient.empi_id)
        copy = versions.merge_patient(known, patients.incoming(done.patient), current=current)
        fields.update(patients.columns(copy, signed_patient_id=exam["patient_id"]
                                       if exam["signed_version"] is not None else None))
    fields.update(
        study_instance_uid=done.study_instance_uid, modality=done.modality,
        order_id=exam["order_id"] or done.order_id, body_part=exam["body_part"] or done.body_part,
        exam_code=exam["exam_code"] or done.exam_code, exam_name=exam["exam_name"] or done.exam_name,
        completed_at=done.completed_at, status="cancelled" if exam["status"] == "cancelled" else done.status)
    await patients.update_columns(conn, done.accession_number, fields)


async def apply_order_cancelled(conn: asyncpg.Connection, cancel: OrderCancelled) -> None:
    """A cancelled order leaves the radiologists' worklist, and stays off it whatever arrives later (its
    order.created or exam.completed may come after the cancel); an exam already being reported is left
    to its radiologist."""
    await conn.execute(
        """INSERT INTO exam (accession_number, order_id, status) VALUES ($1, $2, 'cancelled')
           ON CONFLICT (accession_number) DO UPDATE SET status = 'cancelled', updated_at = now()
           WHERE NOT EXISTS (SELECT 1 FROM report r WHERE r.accession_number = exam.accession_number)""",
        cancel.accession_number, cancel.order_id)


async def apply_patient_updated(conn: asyncpg.Connection, update: PatientUpdated) -> None:
    await patients.apply_updated(conn, update.patient)


async def apply_patient_merged(conn: asyncpg.Connection, merged: PatientMerged) -> None:
    """The survivor's own exams take its golden record (a merge recomputes it), then the merged ones join."""
    await patients.apply_updated(conn, merged.surviving)
    await patients.apply_merged(conn, merged.surviving, merged.merged_empi_ids, merged.merged_patient_ids)


async def worklist(conn: asyncpg.Connection, *, states: list[str] | None, modality: str | None, limit: int,
                   include_reported: bool = False) -> list[dict[str, Any]]:
    """Completed exams with their report state: unreported first, urgent before routine, oldest first.

    Each row says whose exam it is now (the patient copy's PatientID), every item of the order, how many
    films were matched to it, and `patient_change` when its order went to another patient after the
    report was signed (domain/patients.py): that report needs an amendment."""
    rows = await conn.fetch(
        """SELECT e.accession_number, COALESCE(e.patient ->> 'patient_id', e.patient_id) AS patient_id, e.empi_id,
                  e.patient_name, e.sex, e.modality, e.body_part, e.laterality, e.exam_name, e.items, e.priority,
                  e.completed_at, e.ordering_department, e.ordering_doctor, e.ward, e.clinical_diagnosis, e.history,
                  r.id AS report_id, COALESCE(r.state, 'none') AS report_state, r.version, r.critical,
                  r.updated_at AS report_updated_at,
                  (SELECT count(*) FROM exam_film f WHERE f.accession_number = e.accession_number
                     AND f.state = 'matched') AS films,
                  (SELECT jsonb_build_object('id', c.id, 'status', c.status, 'to_patient', c.to_patient,
                                             'reason', c.reason, 'recorded_at', c.recorded_at)
                     FROM exam_patient_change c WHERE c.accession_number = e.accession_number
                      AND c.status = 'needs-amendment' ORDER BY c.id DESC LIMIT 1) AS patient_change
           FROM exam e LEFT JOIN report r USING (accession_number)
           WHERE e.status = 'completed' AND ($1::text IS NULL OR e.modality = $1)
             AND ($2::text[] IS NULL OR COALESCE(r.state, 'none') = ANY($2::text[]))
             AND ($3 OR COALESCE(r.state, 'none') NOT IN ('final', 'withdrawn', 'cancelled'))
           ORDER BY (CASE e.priority WHEN 'stat' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END), e.completed_at
           LIMIT $4""", modality, states, include_reported, limit)
    out = []
    for r in rows:
        row = dict(r)
        row["items"] = json.loads(row["items"]) if isinstance(row["items"], str) else row["items"]
        row["patient_change"] = patients.as_dict(row["patient_change"]) or None
        out.append(row)
    return out


async def priors(conn: asyncpg.Connection, accession_number: str, limit: int = 20) -> list[dict[str, Any]]:
    """The patient's other exams and their latest report text (same EMPI id), newest first."""
    rows = await conn.fetch(
        """SELECT e.accession_number, e.modality, e.exam_name, e.completed_at, r.id AS report_id, r.state,
                  v.content ->> 'impression' AS impression, v.content ->> 'findings' AS findings
           FROM exam cur JOIN exam e ON e.empi_id = cur.empi_id AND e.accession_number <> cur.accession_number
           LEFT JOIN report r ON r.accession_number = e.accession_number
           LEFT JOIN report_version v ON v.report_id = r.id AND v.version = r.version
           WHERE cur.accession_number = $1
           ORDER BY e.completed_at DESC NULLS LAST LIMIT $2""", accession_number, limit)
    return [dict(r) for r in rows]


async def exam_by_accession(conn: asyncpg.Connection, accession_number: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM exam WHERE accession_number = $1", accession_number)


async def qc_facts(conn: asyncpg.Connection, accession_number: str) -> asyncpg.Record | None:
    """What QC compares a report with: the patient's sex and the ordered laterality."""
    return await conn.fetchrow("SELECT sex, laterality FROM exam WHERE accession_number = $1", accession_number)


async def patient_of(conn: asyncpg.Connection, accession_number: str) -> str | None:
    return await conn.fetchval("SELECT patient_id FROM exam WHERE accession_number = $1", accession_number)
