"""HTTP API `/api/reporting/...`: signatures, their verification and log, and users' signing keys."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from imaging_common import audit
from imaging_common.auth import Principal, require_roles
from imaging_common.json_out import listing

from reporting.adapters import deps, schemas
from reporting.adapters.deps import Admin, Ctx, Reader, Reporter, Senior
from reporting.domain import reports, signing

router = APIRouter(tags=["reporting"])


# ---- signatures ------------------------------------------------------------------------------------

@router.get("/reports/{report_id}/verify", summary="Prove the report was not changed after signing (logged)",
            response_model=schemas.Verification)
async def verify(report_id: str, ctx: Ctx, request: Request,
                 user: Annotated[Principal, Depends(require_roles("radiologist", "senior-radiologist", "admin",
                                                                 "clinician"))],
                 version: int | None = None) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        await deps.report_or_404(conn, report_id)
        result = await reports.verify_signature(conn, report_id=report_id, actor=user.username, version=version)
    return result


@router.get("/reports/{report_id}/signatures", summary="Signatures of a report", response_model=schemas.Signatures)
async def signatures(report_id: str, ctx: Ctx, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await signing.signatures_of(conn, report_id)
    return {"data": [deps.jsonable(dict(r)) for r in rows], "count": len(rows)}


@router.get("/signature-log", summary="Every signing and verification (standard 10.2.4)",
            response_model=schemas.SignatureLog)
async def signature_log(ctx: Ctx, user: Senior, report_id: str | None = None,
                        limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await signing.log_entries(conn, report_id=report_id, limit=limit)
    data = [deps.jsonable(dict(r)) for r in rows]
    for row in data:
        row["detail"] = json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
    return listing(data)


@router.get("/signing-keys", summary="Users' public signing keys", response_model=schemas.SigningKeys)
async def signing_keys(ctx: Ctx, user: Senior) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await signing.keys(conn)
    return {"data": [deps.jsonable(dict(r)) for r in rows], "count": len(rows)}


@router.post("/signing-keys", status_code=201, summary="Enrol: make the caller's signing key (pending approval "
             "when IMAGING_REPORTING_REQUIRE_KEY_APPROVAL)", response_model=schemas.KeyStatus)
async def enrol_key(ctx: Ctx, request: Request, user: Reporter) -> dict[str, Any]:
    settings = deps.settings_of(ctx)
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            key = await signing.enrol(conn, user_id=user.user_id, username=user.username,
                                      secret=settings.reporting_signing_secret,
                                      status="pending" if settings.reporting_require_key_approval else "active")
            if key is None:
                raise HTTPException(409, "you already have an active or pending signing key")
            await audit.record(conn, actor=user.username, action="create", entity="signing-key",
                               entity_id=key.key_id, source_ip=audit.client_ip(request))
    return {"key_id": key.key_id, "status": "pending" if settings.reporting_require_key_approval else "active"}


@router.post("/signing-keys/{key_id}/approve", summary="Approve a pending signing key (standard 10.2.4 (1))",
             response_model=schemas.KeyStatus)
async def approve_key(key_id: str, ctx: Ctx, request: Request, user: Admin) -> dict[str, Any]:
    await deps.status_set(ctx, request, user, entity="signing-key", entity_id=key_id, status="active",
                          change=lambda conn: signing.approve(conn, key_id, user.username),
                          missing=f"no pending key {key_id}")
    return {"key_id": key_id, "status": "active"}


@router.post("/signing-keys/{key_id}/revoke", summary="Revoke a key (the user gets a new one on next signing)",
             response_model=schemas.KeyStatus)
async def revoke_key(key_id: str, ctx: Ctx, request: Request, user: Admin) -> dict[str, Any]:
    await deps.status_set(ctx, request, user, entity="signing-key", entity_id=key_id, status="revoked",
                          change=lambda conn: signing.revoke(conn, key_id), missing=f"no active key {key_id}")
    return {"key_id": key_id, "status": "revoked"}
