"""The live board and quality-control statistics (standard 8.7), with CSV export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from imaging_common import audit

from critical_values.adapters.deps import ClientIp, Ctx, QualityControl, Viewer
from critical_values.adapters.schemas import Board, Stats
from critical_values.domain import board, stats

router = APIRouter(tags=["board and statistics"])


@router.get("/board", summary="Open critical values with time left and urgency (patient names masked)")
async def live_board(user: Viewer, ctx: Ctx, ip: ClientIp) -> Board:
    now = datetime.now(UTC)
    async with ctx.pool.acquire() as conn, conn.transaction():
        items = await board.open_items(conn, now=now)
        await audit.record_read(conn, actor=user.username, entity="critical_board", source_ip=ip,
                                detail={"count": len(items)})
    return {"now": now, "data": items, "count": len(items)}


GroupBy = Literal["department", "doctor", "modality", "item", "day", "week", "month", "hour", "all"]


# JSON by default (Stats); format=csv answers text/csv, which FastAPI passes on as it is.
@router.get("/stats", summary="10-minute completion rate, time to acknowledgement, escalations",
            response_model=Stats, responses={200: {"content": {"text/csv": {}}}})
async def statistics(user: QualityControl, ctx: Ctx, start: datetime | None = None, end: datetime | None = None,
                     group_by: GroupBy = "department", format: Literal["json", "csv"] = "json") -> Any:
    now = datetime.now(UTC)
    end = end or now
    try:
        start = start or end - timedelta(days=30)
    except OverflowError:  # an end within 30 days of 0001-01-01: no default start exists
        raise HTTPException(422, "end is too early: give a start as well") from None
    s = ctx.settings
    async with ctx.pool.acquire() as conn:
        rows = await stats.summary(conn, start=start, end=end, group_by=group_by, now=now,
                                   window_minutes=s.critical_window_minutes, timezone=s.critical_timezone)
    if format == "csv":
        name = f"critical-values-{group_by}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
        return Response(stats.to_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return {"start": start, "end": end, "group_by": group_by, "data": rows, "count": len(rows)}
