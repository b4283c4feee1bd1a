"""Fallback (standard 7.1.3 (4)): phone tasks a human works through, manual phone records entered
later (back-entry) and linked to their critical value."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
from fastapi import APIRouter
from imaging_common import audit
from imaging_common.json_out import listing
from pydantic import BaseModel, Field

from critical_values.adapters.deps import Caller, ClientIp, Ctx, Viewer
from critical_values.adapters.schemas import Linked, ManualEntered, ManualRecords, PhoneOutcome, PhoneTasks
from critical_values.domain import fallback, lifecycle, times

router = APIRouter(tags=["fallback"])


class PhoneOutcomeIn(BaseModel):
    outcome: Literal["reached", "no-answer", "wrong-number", "other"]
    called_person: str | None = Field(None, max_length=200)
    called_at: datetime | None = None  # when the call was made, if not just now: kept as a claim
    notes: str | None = Field(None, max_length=2000)
    action_taken: str | None = Field(None, max_length=2000)


class ManualRecordIn(BaseModel):
    accession_number: str = Field(min_length=1, max_length=64)
    finding: str = Field(min_length=1, max_length=2000)
    called_person: str = Field(min_length=1, max_length=200)
    called_at: datetime
    read_back: bool = False  # the clinician read the result back (common safety practice)
    action_taken: str | None = Field(None, max_length=2000)
    notes: str | None = Field(None, max_length=2000)
    critical_id: str | None = None  # link at once when the critical value is already in the system


class LinkIn(BaseModel):
    critical_id: str = Field(min_length=1)


async def _read_list(ctx: Ctx, user: Any, ip: str | None, entity: str,
                     fetch: Callable[[asyncpg.Connection], Awaitable[list[Any]]],
                     detail: dict[str, Any]) -> dict[str, Any]:
    """A list staff read, its reading audited (what was asked, how many rows) in the same transaction."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        rows = await fetch(conn)
        await audit.record_read(conn, actor=user.username, entity=entity, source_ip=ip,
                                detail={**detail, "count": len(rows)})
    return listing([dict(r) for r in rows])


@router.get("/phone-tasks", summary="Phone calls a person must make")
async def phone_tasks(user: Caller, ctx: Ctx, ip: ClientIp, status: Literal["open", "done", "all"] = "open"
                      ) -> PhoneTasks:
    return await _read_list(ctx, user, ip, "phone_task", lambda conn: fallback.phone_tasks(conn, status),
                            {"status": status})


@router.post("/phone-tasks/{task_id}/outcome", summary="Record how the phone call went")
async def phone_outcome(task_id: int, body: PhoneOutcomeIn, user: Caller, ctx: Ctx, ip: ClientIp) -> PhoneOutcome:
    async with ctx.pool.acquire() as conn, conn.transaction():
        result = await fallback.complete_phone_task(
            conn, task_id, outcome=body.outcome, called_person=body.called_person, called_at=body.called_at,
            recorded_at=datetime.now(UTC), by=user.username, notes=body.notes, action_taken=body.action_taken,
            skew=times.skew_of(ctx.settings))
        pid = await lifecycle.patient_of(conn, result["critical_id"])
        await audit.record(conn, actor=user.username, action="update", entity="critical_value",
                           entity_id=result["critical_id"], patient_id=pid, source_ip=ip,
                           detail={"phone_task": task_id, "outcome": body.outcome,
                                   **({"called_at_invalid": result["called_at_invalid"]}
                                      if result["called_at_invalid"] else {})})
    return result


@router.post("/manual-records", status_code=201, summary="Enter a phone notification made while the system was down")
async def add_manual(body: ManualRecordIn, user: Caller, ctx: Ctx, ip: ClientIp) -> ManualEntered:
    async with ctx.pool.acquire() as conn, conn.transaction():
        record_id = await fallback.add_manual_record(
            conn, accession_number=body.accession_number, finding=body.finding, called_person=body.called_person,
            called_at=body.called_at, caller=user.username, read_back=body.read_back,
            action_taken=body.action_taken, notes=body.notes, entered_by=user.username, entered_at=datetime.now(UTC),
            skew=times.skew_of(ctx.settings))
        result: dict[str, Any] = {"record_id": record_id, "critical_id": None, "acknowledged": False}
        if body.critical_id:
            result = await fallback.link(conn, record_id, body.critical_id, by=user.username, at=datetime.now(UTC),
                                         skew=times.skew_of(ctx.settings))
        invalid = await fallback.called_at_invalid(conn, record_id)
        result["called_at_invalid"] = invalid
        await audit.record(conn, actor=user.username, action="create", entity="manual_record",
                           entity_id=str(record_id), source_ip=ip,
                           detail={"accession_number": body.accession_number, "linked": result["critical_id"],
                                   **({"called_at_invalid": invalid} if invalid else {})})
    return result


@router.get("/manual-records", summary="Manual phone records, the unlinked ones by default")
async def list_manual(user: Viewer, ctx: Ctx, ip: ClientIp, linked: bool = False,
                      accession_number: str | None = None) -> ManualRecords:
    def fetch(conn: asyncpg.Connection) -> Awaitable[list[Any]]:
        return fallback.manual_records(conn, linked=linked, accession_number=accession_number)

    return await _read_list(ctx, user, ip, "manual_record", fetch, {"linked": linked})


@router.post("/manual-records/{record_id}/link", summary="Back-entry: link a manual record to its critical value")
async def link(record_id: int, body: LinkIn, user: Caller, ctx: Ctx, ip: ClientIp) -> Linked:
    async with ctx.pool.acquire() as conn, conn.transaction():
        result = await fallback.link(conn, record_id, body.critical_id, by=user.username, at=datetime.now(UTC),
                                     skew=times.skew_of(ctx.settings))
        pid = await lifecycle.patient_of(conn, body.critical_id)
        await audit.record(conn, actor=user.username, action="update", entity="critical_value",
                           entity_id=body.critical_id, patient_id=pid, source_ip=ip,
                           detail={"manual_record": record_id, "acknowledged": result["acknowledged"]})
    return result
