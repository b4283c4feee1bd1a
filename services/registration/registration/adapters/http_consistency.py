"""GET /api/registration/admin/consistency: every service's copy of orders and patients against
registration's (imaging_common.consistency), for administrators.

The drifts show patients' names, sex and birth dates as each service holds them, so the read is
audited like other reads of patient data: one row for the check, one per patient it names.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from imaging_common import audit, consistency
from imaging_common.auth import Principal, require_roles

from registration.adapters import schemas
from registration.adapters.deps import request_context

router = APIRouter()

Admins = Annotated[Principal, Depends(require_roles("admin"))]


@router.get("/admin/consistency", tags=["admin"], response_model=schemas.ConsistencyReport,
            summary="Drifts between each service's copy of orders and patients and registration's (admin; audited)")
async def consistency_check(
    request: Request, admin: Admins,
    settle: float = Query(0.0, ge=0, le=10, description="look again after this many seconds and list only the "
                                                          "drifts still there (events in flight)"),
) -> dict[str, Any]:
    ctx = request_context(request)

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[asyncpg.Connection]:
        async with ctx.pool.acquire() as conn:
            yield conn

    report = await consistency.check_settled(connect, settle)
    who = audit.request_context(request, admin)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await audit.record_read(conn, **who, entity="consistency",
                                detail={"drifts": len(report.drifts), "counts": report.counts(),
                                        "errors": report.errors, "settle_seconds": settle})
        for empi_id in report.patients():
            await audit.record_read(conn, **who, entity="patient", entity_id=empi_id, patient_id=empi_id,
                                    detail={"via": "consistency"})
    return report.public()
