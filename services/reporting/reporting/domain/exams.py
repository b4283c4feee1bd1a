"""Exams to report, learnt from `order.created` (who, what, why) and `exam.completed` (done on
the modality): the radiologists' worklist, their priors, and what QC compares a report with."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from imaging_common.events.types import ExamCompleted, OrderCancelled, OrderCreated, PatientMerged, PatientUpdated


def _patient_json(patient: Any) -> str:
    return json.dumps(patient.model_dump(mode="json"), ensure_ascii=False)


async def apply_order_created(conn: asyncpg.Connection, order: OrderCreated) -> None:
    item = order.items[0] if order.items else None
    await conn.execute(
        """INSERT INTO exam (accession_number, order_id, study_instance_uid, empi_id, patient_id, patient, patient_name,
                             sex, modality, body_part, laterality, exam_code, exam_name, ordering_doctor,
                             ordering_doctor_id, ordering_department, ward, clinical_diagnosis, history, priority,
                             ordered_at)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
                   $20, $21)
           ON CONFLICT (accession_number) DO UPDATE SET
               order_id = EXCLUDED.order_id, study_instance_uid = EXCLUDED.study_instance_uid,
               empi_id = EXCLUDED.empi_id, patient_id = EXCLUDED.patient_id, patient = EXCLUDED.patient,
               patient_name = EXCLUDED.patient_name, sex = EXCLUDED.sex,
               modality = COALESCE(EXCLUDED.modality, exam.modality), body_part = EXCLUDED.body_part,
               laterality = EXCLUDED.laterality, exam_code = EXCLUDED.exam_code, exam_name = EXCLUDED.exam_name,
               ordering_doctor = EXCLUDED.ordering_doctor, ordering_doctor_id = EXCLUDED.ordering_doctor_id,
               ordering_department = EXCLUDED.ordering_department, ward = EXCLUDED.ward,
               clinical_diagnosis = EXCLUDED.clinical_diagnosis, history = EXCLUDED.history,
               priority = EXCLUDED.priority, ordered_at = EXCLUDED.ordered_at, updated_at = now()""",
        order.accession_number, order.order_id, order.study_instance_uid, order.patient.empi_id,
        order.patient.patient_id, _patient_json(order.patient), order.patient.name, order.patient.sex,
        item.modality if item else None, item.body_part if item else None, item.laterality if item else None,
        item.code if item else None, item.name if item else None, order.ordering_doctor, order.ordering_doctor_id,
        order.ordering_department, order.ward, order.clinical_diagnosis, order.history, order.priority,
        order.ordered_at)


async def apply_exam_completed(conn: asyncpg.Connection, done: ExamCompleted) -> None:
    """The exam is ready to report (or discontinued); an order we never saw is created from it."""
    await conn.execute(
        """INSERT INTO exam (accession_number, order_id, study_instance_uid, empi_id, patient_id, patient, patient_name,
                             sex, modality, body_part, exam_code, exam_name, completed_at, status)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14)
           ON CONFLICT (accession_number) DO UPDATE SET
               study_instance_uid = EXCLUDED.study_instance_uid, modality = EXCLUDED.modality,
               body_part = COALESCE(exam.body_part, EXCLUDED.body_part),
               exam_code = COALESCE(exam.exam_code, EXCLUDED.exam_code),
               exam_name = COALESCE(exam.exam_name, EXCLUDED.exam_name),
               completed_at = EXCLUDED.completed_at, updated_at = now(),
               status = CASE WHEN exam.status = 'cancelled' THEN 'cancelled' ELSE EXCLUDED.status END""",
        done.accession_number, done.order_id, done.study_instance_uid, done.patient.empi_id, done.patient.patient_id,
        _patient_json(done.patient), done.patient.name, done.patient.sex, done.modality, done.body_part,
        done.exam_code, done.exam_name, done.completed_at, done.status)


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
    p = update.patient
    await conn.execute(
        "UPDATE exam SET patient = $2::jsonb, patient_name = $3, sex = $4, patient_id = $5, updated_at = now() "
        "WHERE empi_id = $1", p.empi_id, _patient_json(p), p.name, p.sex, p.patient_id)


async def apply_patient_merged(conn: asyncpg.Connection, merged: PatientMerged) -> None:
    p = merged.surviving
    await conn.execute(
        "UPDATE exam SET empi_id = $2, patient = $3::jsonb, patient_name = $4, sex = $5, patient_id = $6, "
        "updated_at = now() WHERE empi_id = ANY($1::text[])",
        merged.merged_empi_ids, p.empi_id, _patient_json(p), p.name, p.sex, p.patient_id)


async def worklist(conn: asyncpg.Connection, *, states: list[str] | None, modality: str | None, limit: int,
                   include_reported: bool = False) -> list[dict[str, Any]]:
    """Completed exams with their report state: unreported first, urgent before routine, oldest first."""
    rows = await conn.fetch(
        """SELECT e.accession_number, e.patient_id, e.empi_id, e.patient_name, e.sex, e.modality, e.body_part,
                  e.laterality, e.exam_name, e.priority, e.completed_at, e.ordering_department, e.clinical_diagnosis,
                  r.id AS report_id, COALESCE(r.state, 'none') AS report_state, r.version, r.critical,
                  r.updated_at AS report_updated_at
           FROM exam e LEFT JOIN report r USING (accession_number)
           WHERE e.status = 'completed' AND ($1::text IS NULL OR e.modality = $1)
             AND ($2::text[] IS NULL OR COALESCE(r.state, 'none') = ANY($2::text[]))
             AND ($3 OR COALESCE(r.state, 'none') NOT IN ('final', 'withdrawn', 'cancelled'))
           ORDER BY (CASE e.priority WHEN 'stat' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END), e.completed_at
           LIMIT $4""", modality, states, include_reported, limit)
    return [dict(r) for r in rows]


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
