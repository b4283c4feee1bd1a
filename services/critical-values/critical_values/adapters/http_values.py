"""HTTP API of critical values: raise (radiologist, AI), confirm/reject (senior), acknowledge
(clinician's page), document only, list, detail with timeline. Every read and change of patient
data is audited, changes in the same transaction."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from imaging_common import audit
from pydantic import BaseModel, Field

from critical_values.adapters.deps import ClientIp, Clinician, Confirmer, Ctx, Raiser, Senior, Viewer, wake
from critical_values.adapters.schemas import Acknowledged, CriticalValue, CriticalValueDetail, CriticalValueList
from critical_values.domain import lifecycle, recipients, states
from critical_values.domain.errors import Invalid
from critical_values.domain.lifecycle import Defaults, NewCritical

router = APIRouter(tags=["critical values"])


class PatientIn(BaseModel):
    patient_id: str = Field(min_length=1)
    name: str = ""
    empi_id: str | None = None
    birth_date: str | None = None
    sex: str | None = None


class RaiseIn(BaseModel):
    accession_number: str = Field(min_length=1, max_length=64)
    finding: str = Field(min_length=1, max_length=2000)
    item_code: str | None = None
    modality: str | None = None
    report_id: str | None = None
    patient: PatientIn | None = None  # taken from the order when omitted
    critical_id: str | None = Field(None, max_length=80)  # the caller's id makes a retry idempotent
    # When it was found, for a back-entry after downtime: kept as raised_claimed_at (judged); the value's
    # raised_at, from which deadlines run, is when it reaches us.
    raised_at: datetime | None = None


class AiFindingIn(RaiseIn):
    model: str = Field(min_length=1, max_length=200)
    score: float | None = Field(None, ge=0, le=1)


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class AckIn(BaseModel):
    action_taken: str | None = Field(None, max_length=2000)


class NoteIn(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


def public(row: Any) -> dict[str, Any]:
    d = dict(row)
    if isinstance(d.get("patient"), str):
        d["patient"] = json.loads(d["patient"])
    return d


async def _raise(ctx: Ctx, body: RaiseIn, *, user: Any, ip: str | None, source: str, ai_model: str | None = None,
                 ai_score: float | None = None) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        order = await recipients.order_of(conn, body.accession_number)
        if body.patient is not None:
            patient = body.patient.model_dump(exclude_none=True)
        elif order is not None:
            patient = json.loads(order["patient"]) if isinstance(order["patient"], str) else dict(order["patient"])
        else:
            raise Invalid(f"accession {body.accession_number} has no known order; send the patient")
        new = NewCritical(
            critical_id=body.critical_id or f"CV-{uuid.uuid4().hex[:16]}", accession_number=body.accession_number,
            patient=patient, finding=body.finding, raised_by=user.username if source != "ai" else f"ai:{ai_model}",
            raised_at=body.raised_at, source=source, item_code=body.item_code,
            modality=body.modality or (order["modality"] if order else None), report_id=body.report_id,
            ai_model=ai_model, ai_score=ai_score, raised_by_senior="senior-radiologist" in user.roles)
        row, created = await lifecycle.raise_critical(conn, new, defaults=Defaults.of(ctx.settings))
        await audit.record(conn, actor=user.username, action="create", entity="critical_value",
                           entity_id=row["critical_id"], patient_id=row["patient_id"], source_ip=ip,
                           detail={"source": source, "created": created, "finding": body.finding,
                                   **({"raised_claimed_at": body.raised_at.isoformat()} if body.raised_at else {}),
                                   **({"raised_claim_invalid": row["raised_claim_invalid"]}
                                      if created and row["raised_claim_invalid"] else {})})
    wake(ctx)
    return public(row)


@router.post("/critical-values", status_code=201, summary="A radiologist raises a critical value")
async def raise_value(body: RaiseIn, user: Raiser, ctx: Ctx, ip: ClientIp) -> CriticalValue:
    return await _raise(ctx, body, user=user, ip=ip, source="radiologist")


@router.post("/ai-findings", status_code=201,
             summary="An AI result suspected critical: recorded, waits for a radiologist's confirmation")
async def ai_finding(body: AiFindingIn, user: Raiser, ctx: Ctx, ip: ClientIp) -> CriticalValue:
    return await _raise(ctx, body, user=user, ip=ip, source="ai", ai_model=body.model, ai_score=body.score)


@router.get("/critical-values", summary="Critical values, open ones by default")
async def list_values(user: Viewer, ctx: Ctx, ip: ClientIp, state: Literal["open", "all"] = "open",
                      accession_number: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> CriticalValueList:
    async with ctx.pool.acquire() as conn, conn.transaction():
        rows = await lifecycle.listing(conn, state=state, accession_number=accession_number, limit=limit)
        await audit.record_read(conn, actor=user.username, entity="critical_value", source_ip=ip,
                                patient_id=rows[0]["patient_id"] if len({r["patient_id"] for r in rows}) == 1 else None,
                                detail={"list": state, "count": len(rows), "accession_number": accession_number,
                                        "critical_ids": [r["critical_id"] for r in rows][:100]})
    return {"data": [public(r) for r in rows], "count": len(rows)}


@router.get("/critical-values/{critical_id}", summary="One critical value with its timeline")
async def get_value(critical_id: str, user: Viewer, ctx: Ctx, ip: ClientIp) -> CriticalValueDetail:
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await lifecycle.get(conn, critical_id)
        notes = await lifecycle.notifications_of(conn, critical_id)
        tasks = await lifecycle.phone_tasks_of(conn, critical_id)
        manual = await lifecycle.manual_records_of(conn, critical_id)
        log = await lifecycle.timeline(conn, critical_id)
        await audit.record_read(conn, actor=user.username, entity="critical_value", entity_id=critical_id,
                                patient_id=row["patient_id"], source_ip=ip)
    return {**public(row), "timeline": log, "notifications": [dict(n) for n in notes],
            "phone_tasks": [dict(t) for t in tasks], "manual_records": [dict(m) for m in manual]}


@router.post("/critical-values/{critical_id}/confirm", summary="Confirm a finding (senior doctor when required)")
async def confirm(critical_id: str, user: Confirmer, ctx: Ctx, ip: ClientIp) -> CriticalValue:
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await lifecycle.confirm(conn, critical_id, by=user.username,
                                      senior="senior-radiologist" in user.roles)
        await audit.record(conn, actor=user.username, action="update", entity="critical_value",
                           entity_id=critical_id, patient_id=row["patient_id"], source_ip=ip,
                           detail={"change": "confirmed"})
    wake(ctx)
    return public(row)


@router.post("/critical-values/{critical_id}/reject", summary="A senior doctor does not confirm the finding")
async def reject(critical_id: str, body: ReasonIn, user: Senior, ctx: Ctx, ip: ClientIp) -> CriticalValue:
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await lifecycle.reject(conn, critical_id, by=user.username, reason=body.reason)
        await audit.record(conn, actor=user.username, action="update", entity="critical_value",
                           entity_id=critical_id, patient_id=row["patient_id"], source_ip=ip,
                           detail={"change": "rejected", "reason": body.reason})
    return public(row)


@router.post("/critical-values/{critical_id}/acknowledge", summary="The clinician acknowledges (clinician's page)")
async def acknowledge(critical_id: str, body: AckIn, user: Clinician, ctx: Ctx, ip: ClientIp) -> Acknowledged:
    async with ctx.pool.acquire() as conn, conn.transaction():
        row, changed = await lifecycle.acknowledge(conn, critical_id, by=user.display_name or user.username,
                                                   channel="page", action_taken=body.action_taken,
                                                   detail={"user_id": user.user_id, "username": user.username})
        await audit.record(conn, actor=user.username, action="update", entity="critical_value",
                           entity_id=critical_id, patient_id=row["patient_id"], source_ip=ip,
                           detail={"change": "acknowledged", "changed": changed})
    return {**public(row), "already_acknowledged": not changed}


@router.post("/critical-values/{critical_id}/document",
             summary='Close with a manual "documented only" record (no clinician system involved)')
async def document(critical_id: str, body: NoteIn, user: Confirmer, ctx: Ctx, ip: ClientIp) -> CriticalValue:
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await lifecycle.document_only(conn, critical_id, by=user.username, note=body.note)
        await audit.record(conn, actor=user.username, action="update", entity="critical_value",
                           entity_id=critical_id, patient_id=row["patient_id"], source_ip=ip,
                           detail={"change": "documented-only"})
    return public(row)


__all__ = ["router", "states"]
