"""Modality Performed Procedure Step (PS3.4 Annex F; IHE SWF "MPPS In Progress / Completed").

The modality tells us what it did: N-CREATE with status IN PROGRESS when the exam starts, N-SET
with COMPLETED or DISCONTINUED when it ends. The steps it performed (found through the Scheduled
Step Attributes Sequence) follow: "in progress", then "completed" — the automatic "exam completed"
of smart-imaging standard 6.3 (6) — and `exam.started` / `exam.completed` are published in the
same transaction as the state change (outbox), so no change goes unannounced and none is announced
that did not happen.

The lifecycle is the table of domain/states.py (F.7.2.1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from imaging_common import audit
from imaging_common.events import publish
from imaging_common.events.types import ExamCompleted, ExamStarted

from worklist.domain.states import REQUESTED, Action, InvalidTransition, State, next_state
from worklist.domain.steps import patient_of_step

SOURCE = "/imaging/worklist"

IN_PROGRESS, COMPLETED, DISCONTINUED = State.IN_PROGRESS, State.COMPLETED, State.DISCONTINUED
STATUSES = tuple(s.value for s in State)  # plain text: the 0106 comment names them


class MppsError(Exception):
    """A refused MPPS request; `kind` names the DIMSE status the adapter answers with."""

    kind = "processing-failure"

    def __init__(self, comment: str, *, attributes: Sequence[str] = ()) -> None:
        super().__init__(comment)
        self.comment = comment
        self.attributes = list(attributes)


class DuplicateInstance(MppsError):
    kind = "duplicate-instance"  # 0111


class NoSuchInstance(MppsError):
    kind = "no-such-instance"  # 0112


class InvalidAttributeValue(MppsError):
    kind = "invalid-attribute-value"  # 0106


class MissingAttributeValue(MppsError):
    kind = "missing-attribute-value"  # 0121


class NoLongerUpdatable(MppsError):
    kind = "no-longer-updatable"  # 0110 with Error ID A710


@dataclass(frozen=True)
class ScheduledStepRef:
    """One item of the Scheduled Step Attributes Sequence (0040,0270)."""

    study_instance_uid: str = ""
    accession_number: str = ""
    sps_id: str = ""
    requested_procedure_id: str = ""


@dataclass
class PerformedStep:
    """What N-CREATE or N-SET says, already checked for presence by the adapter."""

    status: str | None = None
    station_ae_title: str | None = None
    modality: str | None = None
    pps_id: str | None = None
    started_at: datetime | None = None  # aware
    ended_at: datetime | None = None  # aware
    scheduled: list[ScheduledStepRef] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)  # DICOM JSON of the request


async def _linked_steps(conn: asyncpg.Connection, refs: Sequence[ScheduledStepRef]) -> list[asyncpg.Record]:
    """The scheduled steps an MPPS performs: by SPS ID, else accession number, else study UID."""
    found: dict[int, asyncpg.Record] = {}
    for ref in refs:
        rows: list[asyncpg.Record] = []
        if ref.sps_id:
            rows = await conn.fetch("SELECT * FROM scheduled_procedure_steps WHERE sps_id = $1 FOR UPDATE", ref.sps_id)
        if not rows and ref.accession_number:
            rows = await conn.fetch(
                "SELECT * FROM scheduled_procedure_steps WHERE accession_number = $1 AND status <> 'cancelled' "
                "FOR UPDATE", ref.accession_number)
        if not rows and ref.study_instance_uid:
            rows = await conn.fetch(
                "SELECT * FROM scheduled_procedure_steps WHERE study_instance_uid = $1 AND status <> 'cancelled' "
                "FOR UPDATE", ref.study_instance_uid)
        for row in rows:
            found[row["id"]] = row
    return list(found.values())


async def create(
    conn: asyncpg.Connection, uid: str, step: PerformedStep, *, calling_ae_title: str = ""
) -> list[int]:
    """N-CREATE: record the MPPS IN PROGRESS, start its steps, publish exam.started; returns step ids."""
    if step.status != IN_PROGRESS:
        raise InvalidAttributeValue(
            f"Performed Procedure Step Status must be IN PROGRESS on N-CREATE, not {step.status!r}",
            attributes=["PerformedProcedureStepStatus"])
    async with conn.transaction():
        exists = await conn.fetchval(
            "SELECT 1 FROM performed_procedure_steps WHERE sop_instance_uid = $1 FOR UPDATE", uid)
        if exists:
            raise DuplicateInstance(f"MPPS {uid} already exists")
        steps = await _linked_steps(conn, step.scheduled)
        await conn.execute(
            """INSERT INTO performed_procedure_steps (sop_instance_uid, status, calling_ae_title, station_ae_title,
                   modality, pps_id, accession_numbers, study_instance_uids, step_ids, attributes, started_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11)""",
            uid, IN_PROGRESS, calling_ae_title, step.station_ae_title or "", step.modality or "", step.pps_id or "",
            sorted({r.accession_number for r in step.scheduled if r.accession_number}),
            sorted({r.study_instance_uid for r in step.scheduled if r.study_instance_uid}),
            [s["id"] for s in steps], json.dumps(step.attributes, ensure_ascii=False), step.started_at,
        )
        for s in steps:
            await conn.execute(
                """UPDATE scheduled_procedure_steps SET status = 'in_progress', mpps_uid = $2, started_at = $3,
                       updated_at = now() WHERE id = $1 AND status IN ('scheduled', 'in_progress')""",
                s["id"], uid, step.started_at)
        await _audit(conn, f"dicom:{calling_ae_title}", uid, steps, IN_PROGRESS)
        for s in _one_per_accession(steps):
            await publish(conn, ExamStarted(
                accession_number=s["accession_number"], study_instance_uid=s["study_instance_uid"],
                patient=patient_of_step(s), mpps_uid=uid, station_ae_title=step.station_ae_title or "",
                modality=step.modality or s["modality"], started_at=step.started_at or datetime.now().astimezone(),
            ), source=SOURCE, subject=s["accession_number"])
    return [s["id"] for s in steps]


def _one_per_accession(steps: Sequence[asyncpg.Record]) -> list[asyncpg.Record]:
    seen: dict[str, asyncpg.Record] = {}
    for s in steps:
        seen.setdefault(s["accession_number"], s)
    return list(seen.values())


async def _audit(conn: asyncpg.Connection, actor: str, uid: str, steps: Sequence[asyncpg.Record], status: str) -> None:
    """The modality changed exams' state: audited in the same transaction as the change."""
    for s in steps:
        await audit.record(conn, actor=actor, action="update", entity="worklist-item", entity_id=str(s["id"]),
                           patient_id=s["patient_id"], detail={"mpps_uid": uid, "mpps_status": status})


async def update(conn: asyncpg.Connection, uid: str, change: PerformedStep, *, actor: str = "dicom") -> str:
    """N-SET: apply the modification per the lifecycle (states.py); returns the status after it.

    A change from a final state is refused with "may no longer be updated" (0110 / A710); an unknown
    requested status is an invalid value (0106)."""
    async with conn.transaction():
        row = await conn.fetchrow("SELECT * FROM performed_procedure_steps WHERE sop_instance_uid = $1 FOR UPDATE", uid)
        if row is None:
            raise NoSuchInstance(f"no MPPS instance {uid}")
        current = row["status"]
        requested = change.status or current
        if requested not in STATUSES:
            raise InvalidAttributeValue(f"Performed Procedure Step Status {requested!r} is not one of {STATUSES}",
                                        attributes=["PerformedProcedureStepStatus"])
        action = REQUESTED[State(requested)]
        try:
            requested = next_state(current, action)
        except InvalidTransition:
            raise NoLongerUpdatable(f"MPPS {uid} is {current} and may no longer be updated") from None
        if action is not Action.UPDATE and change.ended_at is None:
            raise MissingAttributeValue(
                f"{requested} requires Performed Procedure Step End Date and End Time",
                attributes=["PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"])
        attributes = json.loads(row["attributes"]) if isinstance(row["attributes"], str) else dict(row["attributes"])
        attributes.update(change.attributes)
        await conn.execute(
            """UPDATE performed_procedure_steps SET status = $2, attributes = $3::jsonb,
                   ended_at = COALESCE($4, ended_at), updated_at = now() WHERE sop_instance_uid = $1""",
            uid, requested, json.dumps(attributes, ensure_ascii=False), change.ended_at)
        if action is Action.UPDATE:
            return requested
        final = "completed" if action is Action.COMPLETE else "discontinued"
        steps = await conn.fetch(
            "SELECT * FROM scheduled_procedure_steps WHERE id = ANY($1::bigint[]) FOR UPDATE", row["step_ids"])
        for s in steps:
            await conn.execute(
                """UPDATE scheduled_procedure_steps SET status = $2, completed_at = $3, updated_at = now()
                   WHERE id = $1 AND status IN ('scheduled', 'in_progress')""",
                s["id"], final, change.ended_at)
        await _audit(conn, actor, uid, steps, requested)
        for s in _one_per_accession(steps):
            await publish(conn, ExamCompleted(
                accession_number=s["accession_number"], study_instance_uid=s["study_instance_uid"],
                patient=patient_of_step(s), mpps_uid=uid, station_ae_title=row["station_ae_title"],
                modality=row["modality"] or s["modality"], status=final, started_at=row["started_at"],
                completed_at=change.ended_at, order_id=s["order_id"], exam_code=s["protocol_code"] or None,
                exam_name=s["description"] or None, body_part=s["body_part"] or None,
            ), source=SOURCE, subject=s["accession_number"])
        return requested


async def performed_step(conn: asyncpg.Connection, uid: str) -> asyncpg.Record | None:
    """A Modality Performed Procedure Step as received."""
    return await conn.fetchrow("SELECT * FROM performed_procedure_steps WHERE sop_instance_uid = $1", uid)
