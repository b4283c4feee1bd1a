"""Messages: the patient sees what was sent to their phone and may stop messages; staff follow delivery."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from imaging_common import audit
from imaging_common.auth import Principal, require_roles
from imaging_common.json_out import Out, listing
from pydantic import BaseModel

from patient_portal.adapters.deps import ClientIp, Ctx, Patient, no_store
from patient_portal.domain import messages

router = APIRouter(tags=["patient messages"], dependencies=[Depends(no_store)])
Operators = Annotated[Principal, Depends(require_roles("admin", "it-ops"))]
Status = Literal["queued", "sent", "failed", "opted-out"]


class Message(Out):
    message_id: int
    kind: str
    accession_number: str | None
    body: str
    status: Status
    attempts: int
    created_at: datetime
    next_attempt_at: datetime  # a message held by quiet hours waits until then
    sent_at: datetime | None


class Messages(Out):
    data: list[Message]
    count: int


class Preferences(BaseModel):
    messages: bool  # False: no more messages to this phone (critical notices excepted, per department policy)


class PreferencesOut(Out):
    messages: bool


@router.get("/messages", response_model=Messages, summary="Messages sent (or waiting) to my phone, with status")
async def my_messages(patient: Patient, ctx: Ctx, ip: ClientIp) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        rows = await messages.of_phone(conn, patient.phone)
        await audit.record_read(conn, actor=patient.actor, entity="patient-message", source_ip=ip,
                                detail={"via": "patient-portal", "count": len(rows)})
    return listing(rows)


@router.get("/preferences", response_model=PreferencesOut, summary="Whether my phone gets messages")
async def my_preferences(patient: Patient, ctx: Ctx) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        return {"messages": not await messages.is_opted_out(conn, patient.phone)}


@router.put("/preferences", response_model=PreferencesOut, summary="Stop or resume messages to my phone")
async def set_preferences(body: Preferences, patient: Patient, ctx: Ctx, ip: ClientIp) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        await messages.set_opt_out(conn, patient.phone, not body.messages)
        await audit.record(conn, actor=patient.actor, action="update", entity="patient-preferences", source_ip=ip,
                           detail={"messages": body.messages})
    return {"messages": body.messages}


@router.get("/admin/messages", response_model=Messages, summary="Delivery of messages to patients (operators)")
async def delivery(user: Operators, ctx: Ctx, ip: ClientIp, status: Status | None = None,
                   limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        rows = await messages.with_status(conn, status, limit=limit)
        await audit.record_read(conn, actor=user.username, entity="patient-message", source_ip=ip,
                                detail={"status": status, "count": len(rows)})
    return listing(rows)
