"""Share links: the patient shares one exam's report for 1 to 30 days, lists the links with who opened
them, and revokes them; whoever holds a link opens it (public, the link's token is the credential,
every opening logged and audited)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from imaging_common import audit
from imaging_common.empi.identifiers import mask
from imaging_common.json_out import Out, listing
from pydantic import BaseModel, Field

from patient_portal.adapters.deps import ClientIp, Ctx, Patient, no_store
from patient_portal.domain import exams, shares

router = APIRouter(tags=["patient share links"], dependencies=[Depends(no_store)])


class NewShare(BaseModel):
    days: int = Field(ge=shares.MIN_DAYS, le=shares.MAX_DAYS, examples=[7])


class Access(Out):
    at: str
    source_ip: str | None
    user_agent: str | None
    outcome: str  # opened | expired | revoked


class Share(Out):
    share_id: str
    accession_number: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class ShareCreated(Share):
    url: str  # shown once: the token is not kept


class ShareWithLog(Share):
    accesses: list[Access]


class Shares(Out):
    data: list[ShareWithLog]
    count: int


class OpenShare(BaseModel):
    token: str = Field(min_length=20, max_length=100)


class SharedReport(Out):
    patient_name: str  # masked
    exam_name: str
    modality: str
    status: str
    reported_at: datetime | None
    report_version: int | None
    impression: str | None
    expires_at: datetime


@router.post("/exams/{accession_number}/shares", status_code=201, response_model=ShareCreated,
             summary="Share my exam's report for 1 to 30 days")
async def create_share(accession_number: str, body: NewShare, patient: Patient, ctx: Ctx,
                       ip: ClientIp) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        exam = await exams.exam_of(conn, await exams.patients_with_phone(conn, patient.phone), accession_number)
        if exam is None:
            raise HTTPException(404, f"no exam {accession_number}")
        row, token = await shares.create(conn, phone=patient.phone, empi_id=exam["empi_id"],
                                         accession_number=accession_number, days=body.days, now=datetime.now(UTC))
        await audit.record(conn, actor=patient.actor, action="create", entity="patient-share",
                           entity_id=str(row["share_id"]), patient_id=exam["empi_id"], source_ip=ip,
                           detail={"accession_number": accession_number, "days": body.days})
    url = f"{ctx.settings.patient_public_base_url.rstrip('/')}/ui/patient/shared#{token}"
    return {**row, "share_id": str(row["share_id"]), "url": url}


@router.get("/shares", response_model=Shares, summary="My share links, with who opened them")
async def my_shares(patient: Patient, ctx: Ctx) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await shares.of_phone(conn, patient.phone)
    return listing([{**r, "share_id": str(r["share_id"]), "accesses": _accesses(r["accesses"])} for r in rows])


def _accesses(value: Any) -> list[dict[str, Any]]:
    return json.loads(value) if isinstance(value, str) else list(value)


@router.delete("/shares/{share_id}", status_code=204, summary="Revoke one of my share links at once")
async def revoke_share(share_id: str, patient: Patient, ctx: Ctx, ip: ClientIp) -> Response:
    async with ctx.pool.acquire() as conn, conn.transaction():
        try:
            revoked = await shares.revoke(conn, share_id=share_id, phone=patient.phone, now=datetime.now(UTC))
        except ValueError:  # not a UUID: not theirs either
            revoked = False
        if not revoked:
            raise HTTPException(404, f"no share link {share_id}")
        await audit.record(conn, actor=patient.actor, action="revoke", entity="patient-share", entity_id=share_id,
                           source_ip=ip)
    return Response(status_code=204)


@router.post("/shared", response_model=SharedReport, summary="Open a share link (public: the link is the credential)")
async def open_share(body: OpenShare, request: Request, ctx: Ctx, ip: ClientIp) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        try:
            share = await shares.open_link(conn, token=body.token, now=datetime.now(UTC), source_ip=ip,
                                           user_agent=request.headers.get("user-agent"))
        except shares.ShareRefused as exc:
            refusal = exc
        else:
            refusal = None
            exam = await exams.exam_of(conn, [share["empi_id"]], share["accession_number"])
            await audit.record_read(conn, actor=f"share:{share['share_id']}", entity="report",
                                    entity_id=share["accession_number"], patient_id=share["empi_id"], source_ip=ip,
                                    detail={"via": "patient-share"})
    if refusal is not None:  # the opening is logged (committed above), only the refusal is sent
        raise HTTPException(refusal.status, str(refusal))
    if exam is None:
        raise HTTPException(404, "this share link is not valid")
    return {**exam, "patient_name": mask(exam["patient_name"]) or "", "expires_at": share["expires_at"],
            "impression": exam["impression"] if exam["status"] == "reported" else None}
