"""HTTP API `/api/reporting/statistics`: turnaround, positive and amendment rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException

from reporting.adapters import schemas
from reporting.adapters.deps import Ctx, Senior
from reporting.domain import stats

router = APIRouter(tags=["reporting"])


# ---- statistics --------------------------------------------------------------------------------------

@router.get("/statistics", summary="Turnaround per stage, positive rate per modality/doctor, amendment rate",
            response_model=schemas.Statistics)
async def statistics(ctx: Ctx, user: Senior, since: datetime | None = None,
                     until: datetime | None = None) -> dict[str, Any]:
    until = until or datetime.now(UTC)
    try:
        since = since or until - timedelta(days=30)
    except OverflowError:  # an until within 30 days of 0001-01-01: no default since exists
        raise HTTPException(422, "until is too early: give since as well") from None
    async with ctx.pool.acquire() as conn:
        return await stats.statistics(conn, since=since, until=until)
