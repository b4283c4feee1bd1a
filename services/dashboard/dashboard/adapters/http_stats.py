"""The department's figures (/stats/<metric>), today's flow and the drill-down to exams; JSON, CSV or XLSX."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from imaging_common import audit
from imaging_common.json_out import listing

from dashboard.adapters.deps import ClientIp, Ctx, Head, window
from dashboard.adapters.export import XLSX, download
from dashboard.adapters.schemas import Exams, Figures, Today
from dashboard.domain import screens, stats

router = APIRouter(tags=["statistics"])

Metric = Literal["volumes", "turnaround", "waiting", "reports", "critical", "utilisation"]
Period = Literal["day", "week", "month", "year", "all"]
GroupBy = Literal["modality", "room", "campus", "department", "patient_class", "device", "all"]
Format = Literal["json", "csv", "xlsx"]


def _query(ctx: Ctx, start: datetime | None, end: datetime | None, period: str, group_by: str,
           filters: dict[str, str | None]) -> stats.Query:
    start, end = window(start, end, days=30)
    return stats.Query(start=start, end=end, period=period, group_by=group_by,
                       timezone=ctx.settings.dashboard_timezone,
                       filters=tuple((k, v) for k, v in filters.items() if v))


@router.get("/stats/{metric}", response_model=Figures,
            summary="A figure by period and group: volumes, turnaround, waiting, reports, critical, utilisation",
            responses={200: {"content": {"text/csv": {}, XLSX: {}}}})
async def figures(metric: Metric, user: Head, ctx: Ctx, start: datetime | None = None, end: datetime | None = None,
                  period: Period = "all", group_by: GroupBy = "all", modality: str | None = None,
                  room_id: str | None = None, campus: str | None = None, department: str | None = None,
                  patient_class: str | None = None, format: Format = "json") -> Any:
    q = _query(ctx, start, end, period, group_by, {"modality": modality, "room_id": room_id, "campus": campus,
                                                   "department": department, "patient_class": patient_class})
    async with ctx.pool.acquire() as conn:
        if metric == "utilisation":
            rows = await stats.utilisation(conn, q)
        else:
            rows = await stats.figures(conn, metric, q, now=datetime.now(UTC),
                                       window_seconds=ctx.settings.dashboard_critical_window_minutes * 60)
    if format != "json":
        return download(rows, fmt=format, name=f"{metric}-{q.period}-{q.group_by}-{q.start:%Y%m%d}-{q.end:%Y%m%d}")
    return {"metric": metric, "start": q.start, "end": q.end, "period": q.period, "group_by": q.group_by,
            **listing(rows)}


@router.get("/exams", response_model=Exams, summary="Drill-down: the exams ordered in the period (patient names)")
async def exams(user: Head, ctx: Ctx, ip: ClientIp, start: datetime | None = None, end: datetime | None = None,
                modality: str | None = None, room_id: str | None = None, campus: str | None = None,
                department: str | None = None, patient_class: str | None = None,
                limit: int = Query(500, ge=1, le=5000)) -> Any:
    q = _query(ctx, start, end, "all", "all", {"modality": modality, "room_id": room_id, "campus": campus,
                                               "department": department, "patient_class": patient_class})
    async with ctx.pool.acquire() as conn, conn.transaction():
        rows = await stats.exams(conn, q, limit=limit)
        await audit.record_read(conn, actor=user.username, entity="dashboard_exams", source_ip=ip,
                                detail={"count": len(rows), "start": q.start.isoformat(), "end": q.end.isoformat(),
                                        "filters": dict(q.filters)})
    return listing(rows)


@router.get("/today", response_model=Today, summary="Today's flow per modality, exams under way (names masked)")
async def today(user: Head, ctx: Ctx) -> Any:
    now = datetime.now(UTC)
    async with ctx.pool.acquire() as conn:
        return {"now": now, **await screens.today(conn, now=now, timezone=ctx.settings.dashboard_timezone)}
