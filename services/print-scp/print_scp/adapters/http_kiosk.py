"""Kiosk devices and film slips, for staff (/api/print/admin/kiosks, /api/print/slips).

IT registers each self-service kiosk and gets its key once (only its SHA-256 is kept); a revoked
device is refused at once. The desk issues the patient's slip: a random token as a QR code, valid
IMAGING_PRINT_SLIP_VALID_DAYS, which the kiosk scans instead of the accession number. Audited.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import qrcode
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from imaging_common import audit
from imaging_common.auth import Principal, require_roles
from pydantic import BaseModel, Field

from print_scp.adapters import schemas
from print_scp.adapters.deps import request_context
from print_scp.adapters.http_films import Desk, client_ip, runtime
from print_scp.domain import films_store, kiosk, sharing

router = APIRouter(tags=["kiosks and slips"])
KioskAdmin = Annotated[Principal, Depends(require_roles("admin", "it-ops"))]


class DeviceIn(BaseModel):
    id: str = Field(pattern=kiosk.DEVICE_ID.pattern, description="e.g. hall-1f-01")
    name: str = Field(min_length=1, max_length=200)


def _device(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "created_at": row["created_at"].isoformat(),
            "created_by": row["created_by"], "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None}


@router.post("/admin/kiosks", status_code=201, response_model=schemas.KioskDeviceWithKey,
             summary="Register a kiosk device; its key is shown this once")
async def register_kiosk(request: Request, body: DeviceIn, user: KioskAdmin) -> dict[str, Any]:
    key = kiosk.new_device_key()
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        row = await kiosk.register_device(conn, body.id, body.name, key, user.username)
        if row is None:
            raise HTTPException(409, f"kiosk {body.id} exists (revoked ids are not reused)")
        await audit.record(conn, actor=user.username, action="create", entity="kiosk_device", entity_id=body.id,
                           source_ip=client_ip(request), detail={"name": body.name})
    return {**_device(row), "key": key}


@router.get("/admin/kiosks", response_model=schemas.KioskDeviceList,
            summary="Registered kiosk devices (never their keys)")
async def list_kiosks(request: Request, user: KioskAdmin) -> dict[str, Any]:
    async with request_context(request).pool.acquire() as conn:
        rows = await kiosk.devices(conn)
    return {"data": [_device(r) for r in rows], "count": len(rows)}


@router.delete("/admin/kiosks/{device_id}", status_code=204, summary="Revoke a kiosk device (refused at once)")
async def revoke_kiosk(request: Request, device_id: str, user: KioskAdmin) -> Response:
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        if not await kiosk.revoke_device(conn, device_id, user.username):
            raise HTTPException(404, "no such kiosk")
        await audit.record(conn, actor=user.username, action="update", entity="kiosk_device", entity_id=device_id,
                           source_ip=client_ip(request), detail={"revoked": True})
    return Response(status_code=204)


class SlipRequest(BaseModel):
    accession_number: str = Field(min_length=1, max_length=64)


@router.post("/slips", status_code=201, response_model=schemas.Slip,
             summary="The patient's film slip: a token (and QR code) the kiosk scans")
async def issue_slip(request: Request, body: SlipRequest, user: Desk) -> dict[str, Any]:
    days = runtime(request).settings.print_slip_valid_days
    token, slip_id = kiosk.new_slip_token(), str(uuid.uuid4())
    expires = datetime.now(UTC) + timedelta(days=days)
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        study = await films_store.study_by_accession(conn, body.accession_number)
        if study is None:
            raise HTTPException(404, f"no study with accession number {body.accession_number}")
        if study["status"] == "cancelled":
            raise HTTPException(409, "the order was cancelled")
        await kiosk.issue_slip(conn, slip_id=slip_id, token=token, accession=body.accession_number,
                               empi_id=study["empi_id"], created_by=user.username, expires_at=expires)
        await audit.record(conn, actor=user.username, action="create", entity="film_slip", entity_id=slip_id,
                           patient_id=study["patient_id"], source_ip=client_ip(request),
                           detail={"accession_number": body.accession_number})
    patient = json.loads(study["patient"]) if isinstance(study["patient"], str) else dict(study["patient"] or {})
    buf = io.BytesIO()
    qrcode.make(token).save(buf, format="PNG")
    return {"id": slip_id, "token": token, "expires_at": expires.isoformat(),
            "patient_name": sharing.mask_name(patient.get("name") or study["patient_name"]),
            "qr_png_base64": base64.b64encode(buf.getvalue()).decode()}


@router.delete("/slips/{slip_id}", status_code=204, summary="Withdraw a slip (lost, or reissued)")
async def revoke_slip(request: Request, slip_id: uuid.UUID, user: Desk) -> Response:
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        if not await kiosk.revoke_slip(conn, slip_id):
            raise HTTPException(404, "no such slip")
        await audit.record(conn, actor=user.username, action="update", entity="film_slip", entity_id=str(slip_id),
                           source_ip=client_ip(request), detail={"revoked": True})
    return Response(status_code=204)
