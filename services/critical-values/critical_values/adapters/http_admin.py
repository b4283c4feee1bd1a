"""Administration: the versioned dictionary (7.1.3 (2)), clinician systems (receivers), on-call
rosters and the escalation chain. Reading the dictionary is open to staff who raise or review."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from imaging_common import audit
from imaging_common.json_out import listing
from imaging_common.outbound import AllowList, DestinationRefused
from pydantic import BaseModel, Field, model_validator

from critical_values.adapters.deps import Admin, ClientIp, Ctx, Viewer
from critical_values.adapters.schemas import (
    Dictionary,
    DictionaryVersions,
    EscalationChain,
    Published,
    Receiver,
    Receivers,
    RosterEntries,
    RosterEntry,
)
from critical_values.domain import dictionary, escalation, recipients

router = APIRouter(tags=["administration"])


class ItemIn(BaseModel):
    code: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = Field(min_length=1, max_length=200)
    name_en: str | None = None
    modalities: list[str] = []
    category: int = Field(ge=1, le=3)
    notify_minutes: float = Field(gt=0)
    ack_minutes: float = Field(gt=0)
    requires_senior_confirmation: bool = False
    active: bool = True


class VersionIn(BaseModel):
    items: list[ItemIn] = Field(min_length=1)
    note: str | None = None


class ReceiverIn(BaseModel):
    name: str = Field(min_length=1)
    department: str = "*"
    hl7_host: str | None = None
    hl7_port: int | None = Field(None, ge=1, le=65535)
    hl7_message_type: str = Field("ORU^R01", pattern=r"^ORU\^R01$")  # the only one specified (docs/hl7-interface.md)
    fhir_base_url: str | None = Field(None, pattern=r"^https?://")
    fhir_request: Literal["Task", "CommunicationRequest"] | None = None
    active: bool = True
    # How it is recognised when it acknowledges: HL7 ACK MSH-3 (default: the receiver id), MSH-4
    # (default: any), peer addresses (default: any); FHIR service account (default: the receiver id).
    ack_application: str | None = Field(None, min_length=1, max_length=180)
    ack_facility: str | None = Field(None, min_length=1, max_length=180)
    ack_hosts: list[str] = []
    fhir_client: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def one_channel(self) -> ReceiverIn:
        if not (self.hl7_host and self.hl7_port) and not self.fhir_base_url:
            raise ValueError("a receiver needs hl7_host+hl7_port or fhir_base_url")
        return self


class RosterIn(BaseModel):
    department: str = Field(min_length=1)
    duty: Literal["on-call", "backup", "head"]
    person_id: str = Field(min_length=1)
    person_name: str = Field(min_length=1)
    phone: str | None = None
    starts_at: datetime
    ends_at: datetime


class StepIn(BaseModel):
    action: Literal["repeat", "backup-clinician", "phone-task", "department-head"]
    after_minutes: float = Field(gt=0)


class ChainIn(BaseModel):
    steps: list[StepIn] = Field(min_length=1)


@router.get("/dictionary", summary="The current dictionary version and its items")
async def current_dictionary(user: Viewer, ctx: Ctx, version: int | None = None) -> Dictionary:
    async with ctx.pool.acquire() as conn:
        number, items = await dictionary.items(conn, version)
    return {"version": number, "items": [i.public() for i in items], "count": len(items)}


@router.get("/dictionary/versions", summary="Every published dictionary version")
async def dictionary_versions(user: Viewer, ctx: Ctx) -> DictionaryVersions:
    async with ctx.pool.acquire() as conn:
        rows = await dictionary.versions(conn)
    return listing(rows)


@router.post("/dictionary/versions", status_code=201, summary="Publish a new dictionary version (whole item list)")
async def publish_dictionary(body: VersionIn, user: Admin, ctx: Ctx, ip: ClientIp) -> Published:
    async with ctx.pool.acquire() as conn, conn.transaction():
        version = await dictionary.publish_version(conn, new_items=[i.model_dump() for i in body.items],
                                                   by=user.username, note=body.note)
        await audit.record(conn, actor=user.username, action="create", entity="critical_dictionary",
                           entity_id=str(version), source_ip=ip, detail={"items": len(body.items), "note": body.note})
    return {"version": version, "count": len(body.items)}


@router.get("/receivers", summary="Clinician systems notifications go to")
async def list_receivers(user: Admin, ctx: Ctx) -> Receivers:
    async with ctx.pool.acquire() as conn:
        rows = await recipients.receivers(conn)
    return {"data": [dict(r) for r in rows], "count": len(rows)}


@router.put("/receivers/{receiver_id}", summary="Create or change a clinician system")
async def put_receiver(receiver_id: str, body: ReceiverIn, user: Admin, ctx: Ctx, ip: ClientIp) -> Receiver:
    allow = AllowList.from_settings(ctx.settings)
    try:  # only destinations IMAGING_OUTBOUND_ALLOW names (checked again, resolved, at every send)
        if body.hl7_host:
            allow.check_host(body.hl7_host)
        if body.fhir_base_url:
            allow.check_url(body.fhir_base_url)
    except DestinationRefused as exc:
        raise HTTPException(422, f"destination refused: {exc}") from None
    async with ctx.pool.acquire() as conn, conn.transaction():
        await recipients.put_receiver(conn, receiver_id=receiver_id, **body.model_dump())
        await audit.record(conn, actor=user.username, action="update", entity="critical_receiver",
                           entity_id=receiver_id, source_ip=ip, detail=body.model_dump())
    return {"receiver_id": receiver_id, **body.model_dump()}


@router.post("/rosters", status_code=201, summary="Add an on-call roster entry")
async def add_roster(body: RosterIn, user: Admin, ctx: Ctx, ip: ClientIp) -> RosterEntry:
    if body.ends_at <= body.starts_at:
        from critical_values.domain.errors import Invalid
        raise Invalid("ends_at must be after starts_at")
    async with ctx.pool.acquire() as conn, conn.transaction():
        entry_id = await recipients.add_roster_entry(conn, **body.model_dump())
        await audit.record(conn, actor=user.username, action="create", entity="critical_roster",
                           entity_id=str(entry_id), source_ip=ip, detail=body.model_dump(mode="json"))
    return {"entry_id": entry_id, **body.model_dump()}


@router.get("/rosters", summary="Roster entries covering a time (now by default)")
async def list_rosters(user: Viewer, ctx: Ctx, at: datetime | None = None) -> RosterEntries:
    async with ctx.pool.acquire() as conn:
        rows = await recipients.roster_at(conn, at)
    return {"data": [dict(r) for r in rows], "count": len(rows)}


@router.get("/escalation-chain", summary="The escalation chain")
async def get_chain(user: Viewer, ctx: Ctx) -> EscalationChain:
    async with ctx.pool.acquire() as conn:
        return {"steps": await escalation.chain(conn)}


@router.put("/escalation-chain", summary="Replace the escalation chain")
async def put_chain(body: ChainIn, user: Admin, ctx: Ctx, ip: ClientIp) -> EscalationChain:
    steps = [s.model_dump() for s in body.steps]
    async with ctx.pool.acquire() as conn, conn.transaction():
        await escalation.set_chain(conn, steps, by=user.username)
        await audit.record(conn, actor=user.username, action="update", entity="critical_escalation_chain",
                           entity_id="default", source_ip=ip, detail={"steps": steps})
    return {"steps": steps}
