"""Whose exam it is: the patient copy each exam keeps, and how it follows the patient.

Copies. Every event that carries a patient (order.created/changed, exam.completed, patient.updated,
patient.merged) goes through `imaging_common.events.versions`: a snapshot at least as new as any this
service applied for that person overwrites the copy; an older or unversioned one only fills fields the
copy does not know; an empty value never blanks a known one.

The identity the signatures cover. A report's signature binds `exam.patient_id` (the PatientID in the
signed content hash, domain/content.py). Once a report has a signature, `exam.patient_id` is left as it
was signed, so verifying an old signature never turns "tampered" because of a merge; what the exam
*shows* (EMPI id, the `patient` copy with its PatientID, name, sex) still follows the person, and the
worklist, the exam view, ORU/FHIR and events read that copy.

Merges (patient.merged): the merged record and the survivor are one person, so every exam of a merged
EMPI id shows the survivor at once, signed or not. Nothing clinical changes; the report text stays.

The order moved to another patient (order.changed naming another EMPI id than the exam shows: an
unmerge that gives the order back to the restored patient, or a re-assignment in registration):

- no report yet, or a report never signed (draft, cancelled): the exam and its draft follow the order
  at once (recorded as an 'applied' change when there is a report);
- a signed report (preliminary, consultation, final, amended...): it is never silently rewritten. The
  report and the exam's identity stay as signed and as delivered to clinicians, and the change is
  recorded 'needs-amendment' (from whom, to whom, the order's version and reason). The worklist and the
  exam view show it (`patient_change`), so a radiologist corrects the report deliberately (amend, or
  withdraw and report again). Why not re-point it quietly: the clinicians received it under the old
  patient, and a report that changes patient under its own signature is worse than one flagged wrong.
- the flag resolves itself when it is no longer true: the order comes back to the patient the report
  was signed for (the unmerge undone), or a merge makes both patients one person.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from imaging_common.events import versions
from imaging_common.events.types import PatientRef

NEEDS_AMENDMENT = "needs-amendment"


def as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return dict(json.loads(value) if isinstance(value, str) else value)


def incoming(patient: PatientRef) -> dict[str, Any]:
    return patient.model_dump(mode="json")


async def known_copy(conn: asyncpg.Connection, empi_id: str | None) -> dict[str, Any] | None:
    """This service's freshest copy of the person, from any of their exams."""
    if not empi_id:
        return None
    value = await conn.fetchval(
        "SELECT patient FROM exam WHERE empi_id = $1 AND patient <> '{}'::jsonb ORDER BY updated_at DESC LIMIT 1",
        empi_id)
    return as_dict(value) or None


def columns(copy: dict[str, Any], *, signed_patient_id: str | None = None) -> dict[str, Any]:
    """The exam's patient columns from a copy; a signed exam keeps the PatientID it was signed under."""
    sex = copy.get("sex") if copy.get("sex") in ("M", "F", "O", "U") else "U"
    return {"empi_id": copy.get("empi_id"), "patient_id": signed_patient_id or copy.get("patient_id"),
            "patient": json.dumps(copy, ensure_ascii=False, default=str), "patient_name": copy.get("name") or "",
            "sex": sex}


async def update_columns(conn: asyncpg.Connection, accession_number: str, cols: dict[str, Any]) -> None:
    sets = ", ".join(f"{name} = ${i}{'::jsonb' if name == 'patient' else ''}"
                     for i, name in enumerate(cols, start=2))
    await conn.execute(f"UPDATE exam SET {sets}, updated_at = now() WHERE accession_number = $1",
                       accession_number, *cols.values())


async def locked_exam(conn: asyncpg.Connection, accession_number: str) -> asyncpg.Record | None:
    """The exam with its report's id, state and signed version, locked (exam before report, as `act`)."""
    return await conn.fetchrow(
        """SELECT e.*, r.id AS report_id, r.state AS report_state, r.signed_version
           FROM exam e LEFT JOIN report r USING (accession_number)
           WHERE e.accession_number = $1 FOR UPDATE OF e""", accession_number)


def _signed(exam: asyncpg.Record) -> bool:
    return exam["signed_version"] is not None


async def follow_order(conn: asyncpg.Connection, exam: asyncpg.Record, patient: PatientRef, *, current: bool,
                       order_version: int | None, reason: str | None) -> dict[str, Any] | None:
    """The exam's patient columns after an order snapshot naming `patient`; None = leave them.

    Same person as the exam shows: the copy is merged. Another person: see the module docstring.
    """
    held = exam["empi_id"]
    new = incoming(patient)
    signed_pid = exam["patient_id"] if _signed(exam) else None
    if held is None or held == patient.empi_id:
        known = as_dict(exam["patient"]) if held else await known_copy(conn, patient.empi_id)
        await _resolve(conn, exam["accession_number"], "the order names the patient the exam shows")
        return columns(versions.merge_patient(known, new, current=current), signed_patient_id=signed_pid)
    copy = versions.merge_patient(await known_copy(conn, patient.empi_id), new, current=current)
    before = as_dict(exam["patient"]) or {"empi_id": held, "patient_id": exam["patient_id"],
                                          "name": exam["patient_name"], "sex": exam["sex"]}
    if not _signed(exam) or exam["patient_id"] == patient.patient_id:
        # Unsigned: it follows. Signed, but the order is back with the patient it was signed for: likewise.
        await _resolve(conn, exam["accession_number"], "the order is back with the patient the report was signed for"
                       if _signed(exam) else "superseded by a later change of the order")
        if exam["report_id"] is not None:
            await _record(conn, exam, before, copy, "applied", order_version, reason)
        return columns(copy, signed_patient_id=signed_pid)
    # Signed for someone else: stays as signed, flagged for an amendment (one open flag per target).
    await conn.execute(
        """UPDATE exam_patient_change SET status = 'resolved', resolution = 'superseded by a later change of the order',
               resolved_at = now()
           WHERE accession_number = $1 AND status = 'needs-amendment' AND to_patient ->> 'empi_id' <> $2""",
        exam["accession_number"], patient.empi_id)
    pending = await conn.fetchval(
        "SELECT id FROM exam_patient_change WHERE accession_number = $1 AND status = 'needs-amendment'",
        exam["accession_number"])
    if pending is None:
        await _record(conn, exam, before, copy, NEEDS_AMENDMENT, order_version, reason)
    else:
        await conn.execute("UPDATE exam_patient_change SET to_patient = $2::jsonb, order_version = $3, reason = $4 "
                           "WHERE id = $1", pending, json.dumps(copy, ensure_ascii=False, default=str),
                           order_version, reason)
    return None


async def _record(conn: asyncpg.Connection, exam: asyncpg.Record, before: dict[str, Any], after: dict[str, Any],
                  status: str, order_version: int | None, reason: str | None) -> None:
    await conn.execute(
        """INSERT INTO exam_patient_change (accession_number, report_id, report_state, signed_version, from_patient,
               to_patient, order_version, reason, status)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9)""",
        exam["accession_number"], exam["report_id"], exam["report_state"], exam["signed_version"],
        json.dumps(before, ensure_ascii=False, default=str), json.dumps(after, ensure_ascii=False, default=str),
        order_version, reason, status)


async def _resolve(conn: asyncpg.Connection, accession_number: str, resolution: str) -> None:
    await conn.execute(
        "UPDATE exam_patient_change SET status = 'resolved', resolution = $2, resolved_at = now() "
        "WHERE accession_number = $1 AND status = 'needs-amendment'", accession_number, resolution)


async def apply_updated(conn: asyncpg.Connection, patient: PatientRef) -> int:
    """patient.updated: every exam of the person takes the new copy (a stale or partial one fills blanks)."""
    current = await versions.patient_is_current(conn, patient)
    rows = await conn.fetch(
        """SELECT e.accession_number, e.patient, e.patient_id, r.signed_version
           FROM exam e LEFT JOIN report r USING (accession_number) WHERE e.empi_id = $1
           ORDER BY e.accession_number FOR UPDATE OF e""", patient.empi_id)
    for row in rows:
        copy = versions.merge_patient(as_dict(row["patient"]), incoming(patient), current=current)
        await update_columns(conn, row["accession_number"], columns(
            copy, signed_patient_id=row["patient_id"] if row["signed_version"] is not None else None))
    return len(rows)


async def apply_merged(conn: asyncpg.Connection, survivor: PatientRef, merged_empi_ids: list[str],
                       merged_patient_ids: list[str]) -> int:
    """patient.merged: exams of the merged records show the survivor, signed ones too (one person)."""
    current = await versions.patient_is_current(conn, survivor)
    base = await known_copy(conn, survivor.empi_id)
    rows = await conn.fetch(
        """SELECT e.accession_number, e.patient, e.patient_id, r.signed_version
           FROM exam e LEFT JOIN report r USING (accession_number)
           WHERE e.empi_id = ANY($1::text[]) OR (e.empi_id IS NULL AND e.patient_id = ANY($2::text[]))
           ORDER BY e.accession_number FOR UPDATE OF e""", merged_empi_ids, merged_patient_ids)
    for row in rows:
        known = base if base is not None else {k: v for k, v in as_dict(row["patient"]).items()
                                               if k not in ("empi_id", "patient_id", "version")}
        copy = versions.merge_patient(known, incoming(survivor), current=current)
        copy.update(empi_id=survivor.empi_id, patient_id=survivor.patient_id)  # the identity is the survivor's
        await update_columns(conn, row["accession_number"], columns(
            copy, signed_patient_id=row["patient_id"] if row["signed_version"] is not None else None))
    # A report flagged because its order went to the survivor (order.changed came first): one person now.
    await conn.execute(
        """UPDATE exam_patient_change c SET status = 'resolved', resolved_at = now(),
               resolution = 'the patients were merged: one person'
           FROM exam e WHERE e.accession_number = c.accession_number AND c.status = 'needs-amendment'
             AND e.empi_id = $1 AND c.to_patient ->> 'empi_id' = ANY($2::text[])""",
        survivor.empi_id, [survivor.empi_id, *merged_empi_ids])
    return len(rows)


async def pending_change(conn: asyncpg.Connection, accession_number: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT id, report_id, report_state, from_patient, to_patient, order_version, reason, recorded_at "
        "FROM exam_patient_change WHERE accession_number = $1 AND status = 'needs-amendment' "
        "ORDER BY id DESC LIMIT 1", accession_number)
    if row is None:
        return None
    out = dict(row)
    out["from_patient"], out["to_patient"] = as_dict(row["from_patient"]), as_dict(row["to_patient"])
    return out


async def changes(conn: asyncpg.Connection, accession_number: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, report_id, report_state, signed_version, from_patient, to_patient, order_version, reason, status, "
        "resolution, recorded_at, resolved_at FROM exam_patient_change WHERE accession_number = $1 ORDER BY id",
        accession_number)
    out = []
    for row in rows:
        item = dict(row)
        item["from_patient"], item["to_patient"] = as_dict(row["from_patient"]), as_dict(row["to_patient"])
        out.append(item)
    return out
