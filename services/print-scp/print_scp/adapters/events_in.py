"""What other services tell us: the studies films are matched to (and late matches they allow).

A film printed with a Study Instance UID the platform did not know yet waits in review; when the
order for that UID arrives, the film is matched then (method 1, late).
"""

from __future__ import annotations

import json

import asyncpg
from imaging_common.events import parse_data
from imaging_common.events.types import ExamCompleted, ExamStarted, OrderCreated, PatientMerged, PatientUpdated

from print_scp.adapters import films_db
from print_scp.adapters.film_pipeline import publish_match
from print_scp.domain.matching import match_by_study_uid


async def _rematch_waiting(conn: asyncpg.Connection, study_uid: str) -> None:
    rows = await conn.fetch(
        """SELECT id, sent_study_uids FROM films WHERE match_status = 'review' AND $1 = ANY(sent_study_uids)
           AND spool_key IS NULL FOR UPDATE""", study_uid)
    for row in rows:
        uids = list(row["sent_study_uids"])
        decision = match_by_study_uid(uids, await films_db.studies_by_uid(conn, uids))
        if decision is not None and decision.status == "matched":
            decision.detail["late"] = True
            await publish_match(conn, str(row["id"]), decision)


async def on_order_created(conn: asyncpg.Connection, event: object) -> None:
    data = parse_data(event)  # type: ignore[arg-type]
    assert isinstance(data, OrderCreated)
    await films_db.upsert_study(
        conn, study_uid=data.study_instance_uid, accession=data.accession_number,
        patient=data.patient.model_dump(mode="json"), order_id=data.order_id,
        modality=data.items[0].modality if data.items else None,
        exam_name=", ".join(i.name for i in data.items) or None, ordered_at=data.ordered_at)
    await _rematch_waiting(conn, data.study_instance_uid)


async def on_exam_started(conn: asyncpg.Connection, event: object) -> None:
    data = parse_data(event)  # type: ignore[arg-type]
    assert isinstance(data, ExamStarted)
    await films_db.upsert_study(
        conn, study_uid=data.study_instance_uid, accession=data.accession_number,
        patient=data.patient.model_dump(mode="json"), modality=data.modality, status="started",
        started_at=data.started_at)
    await _rematch_waiting(conn, data.study_instance_uid)


async def on_exam_completed(conn: asyncpg.Connection, event: object) -> None:
    data = parse_data(event)  # type: ignore[arg-type]
    assert isinstance(data, ExamCompleted)
    await films_db.upsert_study(
        conn, study_uid=data.study_instance_uid, accession=data.accession_number,
        patient=data.patient.model_dump(mode="json"), order_id=data.order_id, modality=data.modality,
        exam_name=data.exam_name, status=data.status, started_at=data.started_at, completed_at=data.completed_at)
    await _rematch_waiting(conn, data.study_instance_uid)


async def on_patient_updated(conn: asyncpg.Connection, event: object) -> None:
    """Names and IDs change (corrections): studies and already matched films follow."""
    data = parse_data(event)  # type: ignore[arg-type]
    assert isinstance(data, PatientUpdated)
    p = data.patient
    await conn.execute(
        "UPDATE studies SET patient_id = $2, patient_name = $3, patient = $4::jsonb, updated_at = now() "
        "WHERE empi_id = $1", p.empi_id, p.patient_id, p.name, json.dumps(p.model_dump(mode="json")))
    await conn.execute("UPDATE films SET patient_id = $2, patient_name = $3 WHERE empi_id = $1",
                       p.empi_id, p.patient_id, p.name)


async def on_patient_merged(conn: asyncpg.Connection, event: object) -> None:
    """Studies and films of merged records now belong to the surviving patient."""
    data = parse_data(event)  # type: ignore[arg-type]
    assert isinstance(data, PatientMerged)
    p = data.surviving
    await conn.execute(
        "UPDATE studies SET empi_id = $2, patient_id = $3, patient_name = $4, patient = $5::jsonb, "
        "updated_at = now() WHERE empi_id = ANY($1::text[]) OR empi_id = $2",
        data.merged_empi_ids, p.empi_id, p.patient_id, p.name, json.dumps(p.model_dump(mode="json")))
    await conn.execute(
        "UPDATE films SET empi_id = $2, patient_id = $3, patient_name = $4 WHERE empi_id = ANY($1::text[])",
        data.merged_empi_ids, p.empi_id, p.patient_id, p.name)


EVENT_HANDLERS = {
    "order.created": on_order_created,
    "exam.started": on_exam_started,
    "exam.completed": on_exam_completed,
    "patient.updated": on_patient_updated,
    "patient.merged": on_patient_merged,
}
