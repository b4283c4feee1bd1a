"""What other services tell us: the studies films are matched to, and what re-decides films.

A film printed with a Study Instance UID the platform did not know yet waits in review; when the
order for that UID arrives, the film is decided again on all its evidence (method 1, late).
A cancelled order takes its films back to review; a patient corrected or merged gets their films'
DICOM rewritten with the identity they now have (film_decisions.apply).
"""

from __future__ import annotations

import json

import asyncpg
from imaging_common.events import CloudEvent, Handlers, versions
from imaging_common.events.types import (
    ExamCompleted,
    ExamStarted,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    PatientMerged,
    PatientUpdated,
)

from print_scp.adapters import film_decisions
from print_scp.domain import films_store
from print_scp.domain.matching import MatchDecision, Reading, decide


def _readings(detail: dict) -> list[Reading]:
    """What the film's text named when it was decided, for deciding again with a newly known study."""
    out = []
    for r in detail.get("readings", []):
        out.append(Reading(r["source"], unknown_patient_ids=list(r.get("unknown_patient_ids", [])),
                           unknown_accessions=list(r.get("unknown_accessions", []))))
    return out


async def _rematch_waiting(conn: asyncpg.Connection, study_uid: str) -> None:
    """Films that waited for this UID's order: decided again with the UIDs now known and the text read
    then (identifiers that named studies then are looked up anew by their values)."""
    rows = await conn.fetch(
        """SELECT id, sent_study_uids, match_detail FROM films WHERE match_status = 'review'
           AND $1 = ANY(sent_study_uids) AND spool_key IS NULL FOR UPDATE""", study_uid)
    for row in rows:
        uids = list(row["sent_study_uids"])
        detail = film_decisions.evidence(row)
        if detail.get("reason") not in ("study-uid-unknown", "study-uid-partly-unknown"):
            continue  # a conflict or a cancelled order stays for a person to decide
        readings = await _known_readings(conn, detail)
        decision = decide(uids, await films_store.studies_by_uid(conn, uids), readings,
                          cancelled_uids=await films_store.cancelled_uids(conn, uids))
        if decision.status == "matched":
            decision.detail["late"] = True
            await film_decisions.apply(conn, str(row["id"]), decision)


async def _known_readings(conn: asyncpg.Connection, detail: dict) -> list[Reading]:
    readings = _readings(detail)
    for stored, reading in zip(detail.get("readings", []), readings, strict=True):
        for acc in stored.get("accessions", []):
            rec = await films_store.study_by_accession(conn, acc)
            if rec is not None:
                reading.accessions.append(films_store.known_study(rec))
        for pid in stored.get("patient_ids", []):
            for rec in await conn.fetch("SELECT * FROM studies WHERE patient_id = $1", pid):
                reading.patient_ids.append(films_store.known_study(rec))
    return readings


async def _reidentify_matched(conn: asyncpg.Connection, study_uids: list[str]) -> None:
    """Matched films of studies whose patient identity changed (corrected, merged): DICOM rewritten,
    decision kept."""
    rows = await conn.fetch("SELECT id, study_instance_uid, match_method, match_confidence, match_detail, matched_by "
                            "FROM films WHERE match_status = 'matched' AND dicom_key IS NOT NULL "
                            "AND study_instance_uid = ANY($1::text[]) FOR UPDATE", study_uids)
    for row in rows:
        rec = await conn.fetchrow("SELECT * FROM studies WHERE study_instance_uid = $1", row["study_instance_uid"])
        detail = film_decisions.evidence(row) | {"identity_updated": True}
        decision = MatchDecision("matched", row["match_method"], films_store.known_study(rec),
                                 row["match_confidence"] or 1.0, detail)
        await film_decisions.apply(conn, str(row["id"]), decision, matched_by=row["matched_by"])


async def on_order_created(conn: asyncpg.Connection, data: OrderCreated, event: CloudEvent) -> None:
    """order.created, and order.changed (the whole order again, perhaps first): the study is recorded;
    if the order now names another patient (a merge, an unmerge) its matched films are re-identified."""
    before = await conn.fetchval("SELECT patient FROM studies WHERE study_instance_uid = $1", data.study_instance_uid)
    await films_store.upsert_study(
        conn, study_uid=data.study_instance_uid, accession=data.accession_number,
        patient=data.patient.model_dump(mode="json"), order_id=data.order_id,
        modality=data.items[0].modality if data.items else None,
        exam_name=", ".join(i.name for i in data.items) or None, ordered_at=data.ordered_at,
        current=await versions.patient_is_current(conn, data.patient))
    if before is not None:
        after = await conn.fetchval("SELECT patient FROM studies WHERE study_instance_uid = $1",
                                    data.study_instance_uid)
        old, new = films_store.as_dict(before), films_store.as_dict(after)
        if any(old.get(k) != new.get(k) for k in IDENTITY_FIELDS):
            await _reidentify_matched(conn, [data.study_instance_uid])
    await _rematch_waiting(conn, data.study_instance_uid)


async def on_exam_started(conn: asyncpg.Connection, data: ExamStarted, event: CloudEvent) -> None:
    await films_store.upsert_study(
        conn, study_uid=data.study_instance_uid, accession=data.accession_number,
        patient=data.patient.model_dump(mode="json"), modality=data.modality, status="started",
        started_at=data.started_at, current=await versions.patient_is_current(conn, data.patient))
    await _rematch_waiting(conn, data.study_instance_uid)


async def on_exam_completed(conn: asyncpg.Connection, data: ExamCompleted, event: CloudEvent) -> None:
    await films_store.upsert_study(
        conn, study_uid=data.study_instance_uid, accession=data.accession_number,
        patient=data.patient.model_dump(mode="json"), order_id=data.order_id, modality=data.modality,
        exam_name=data.exam_name, status=data.status, started_at=data.started_at, completed_at=data.completed_at,
        current=await versions.patient_is_current(conn, data.patient))
    await _rematch_waiting(conn, data.study_instance_uid)


async def on_order_cancelled(conn: asyncpg.Connection, data: OrderCancelled, event: CloudEvent) -> None:
    """A cancelled order keeps no film: its films go back to review (and out of the archive queue)."""
    await conn.execute("UPDATE studies SET status = 'cancelled', updated_at = now() WHERE accession_number = $1",
                       data.accession_number)
    rows = await conn.fetch("SELECT id, match_detail FROM films WHERE accession_number = $1 "
                            "AND match_status = 'matched' FOR UPDATE", data.accession_number)
    for row in rows:
        detail = film_decisions.evidence(row) | {
            "reason": "order-cancelled", "explanation": f"order {data.accession_number} was cancelled"
            + (f": {data.reason}" if data.reason else ""), "previous_accession_number": data.accession_number}
        await film_decisions.apply(conn, str(row["id"]), MatchDecision("review", "study-uid", None, 0.0, detail))


async def on_patient_updated(conn: asyncpg.Connection, data: PatientUpdated, event: CloudEvent) -> None:
    """Names and IDs change (corrections): studies and already matched films follow, DICOM included."""
    changed = await _set_patient(conn, [data.patient.empi_id], data.patient.model_dump(mode="json"))
    await _reidentify_matched(conn, changed)


async def on_patient_merged(conn: asyncpg.Connection, data: PatientMerged, event: CloudEvent) -> None:
    """Studies and films of merged records now belong to the surviving patient."""
    changed = await _set_patient(conn, [*data.merged_empi_ids, data.surviving.empi_id],
                                 data.surviving.model_dump(mode="json"))
    await _reidentify_matched(conn, changed)


async def _set_patient(conn: asyncpg.Connection, empi_ids: list[str], patient: dict) -> list[str]:
    """The studies of these EMPI ids now have this patient (a patient event: the newest snapshot, the
    consumer saw to that), merged into what each knew (a partial payload blanks nothing). Returns the
    studies whose film identity changed (a new phone is not one)."""
    changed = []
    for rec in await conn.fetch("SELECT study_instance_uid, patient FROM studies WHERE empi_id = ANY($1::text[]) "
                                "FOR UPDATE", empi_ids):
        known = films_store.as_dict(rec["patient"])
        merged = versions.merge_patient(known, patient, current=True)
        await conn.execute("UPDATE studies SET empi_id = $2, patient_id = $3, patient_name = $4, patient = $5::jsonb, "
                           "updated_at = now() WHERE study_instance_uid = $1", rec["study_instance_uid"],
                           merged["empi_id"], merged["patient_id"], merged["name"],
                           json.dumps(merged, ensure_ascii=False))
        if any(known.get(k) != merged.get(k) for k in IDENTITY_FIELDS):
            changed.append(rec["study_instance_uid"])
    return changed


# What a film's DICOM says of its patient (film_output.identity_of): a change of any re-identifies it.
IDENTITY_FIELDS = ("empi_id", "patient_id", "name", "name_latin", "birth_date", "sex")


HANDLERS: Handlers = {
    OrderCreated: on_order_created,
    OrderChanged: on_order_created,  # the whole order again
    OrderCancelled: on_order_cancelled,
    ExamStarted: on_exam_started,
    ExamCompleted: on_exam_completed,
    PatientUpdated: on_patient_updated,
    PatientMerged: on_patient_merged,
}
