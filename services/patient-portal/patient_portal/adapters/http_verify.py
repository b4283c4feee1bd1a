"""Anyone holding a printed or downloaded report scans its QR: was this version signed, and is it the
newest? Public: it answers no patient data, only the report's signing facts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query

from patient_portal.adapters import schemas
from patient_portal.adapters.deps import Ctx
from patient_portal.domain import exams

router = APIRouter(prefix="/reports", tags=["report verification"])


@router.get("/{report_id}/verify", response_model=schemas.ReportVerified,
            summary="Verify a patient's report copy (its QR code): signed, and whether it is the newest version")
async def verify(report_id: str, ctx: Ctx, version: int = Query(ge=1)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        row = await exams.report_version(conn, report_id)
    if row is None:
        raise HTTPException(404, f"no report {report_id}")
    return {"report_id": report_id, "version": version, "current_version": row["report_version"],
            "current": version == row["report_version"], "signed_at": row["reported_at"],
            "content_sha256": row["content_sha256"] if version == row["report_version"] else None}
