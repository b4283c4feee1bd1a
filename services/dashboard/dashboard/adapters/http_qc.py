"""Quality-control programmes (/qc): the sampling plan, the exams drawn for review, first and second
readings, statistics per person and month. Every change and every read of the drawn exams is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Path
from imaging_common import audit
from imaging_common.json_out import listing

from dashboard.adapters.deps import REPORT_READERS, ClientIp, Ctx, QcLead, QcReader, window
from dashboard.adapters.schemas import Plan, PlanIn, Plans, QcItems, QcStats, Review, ReviewIn
from dashboard.domain import qc

router = APIRouter(prefix="/qc", tags=["quality control"])
Kind = Literal["image", "request", "report"]
Modality = Path(pattern=r"^(\*|[A-Z]{2,4})$", description="a DICOM modality, or * for any other")
Accession = Path(min_length=1, max_length=64)


@router.get("/plans", response_model=Plans, summary="The sampling plan: a percentage per kind and modality")
async def plans(user: QcLead, ctx: Ctx) -> Any:
    async with ctx.pool.acquire() as conn:
        return listing(await qc.plans(conn))


@router.put("/plans/{kind}/{modality}", response_model=Plan, summary="Set the share of exams drawn for review")
async def put_plan(kind: Kind, body: PlanIn, user: QcLead, ctx: Ctx, ip: ClientIp,
                   modality: str = Modality) -> Any:
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await qc.put_plan(conn, kind, modality, body.percent, user.username)
        await audit.record(conn, actor=user.username, action="update", entity="qc_plan", entity_id=f"{kind}/{modality}",
                           source_ip=ip, service="dashboard", detail={"percent": body.percent})
    return row


@router.get("/{kind}/items", response_model=QcItems, summary="Exams drawn for review (open: fewer than two readers)")
async def items(kind: Kind, user: QcReader, ctx: Ctx, ip: ClientIp, open: bool = True) -> Any:
    async with ctx.pool.acquire() as conn, conn.transaction():
        rows = await qc.items(conn, kind, open_only=open)
        await audit.record_read(conn, actor=user.username, entity="qc_items", source_ip=ip, service="dashboard",
                                detail={"kind": kind, "count": len(rows)})
    return listing(rows)


@router.post("/{kind}/items/{accession_number}/reviews", response_model=Review, status_code=201,
             summary="A first or second reading: a grade 甲/乙/丙/丁 (image, request) or a score (report)")
async def review(kind: Kind, body: ReviewIn, user: QcReader, ctx: Ctx, ip: ClientIp,
                 accession_number: str = Accession) -> Any:
    if kind == "report" and not user.has_any(REPORT_READERS):
        raise HTTPException(403, "report QC is read by radiologists")
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await qc.review(conn, kind, accession_number, reviewer=user.username, grade=body.grade,
                              score=body.score, reasons=body.reasons, note=body.note)
        await audit.record(conn, actor=user.username, action="create", entity="qc_review",
                           entity_id=str(row["review_id"]), source_ip=ip, service="dashboard",
                           detail={"kind": kind, "accession_number": accession_number, "reader": row["reader"],
                                   "grade": row["grade"], "score": row["score"]})
    return row


@router.get("/{kind}/stats", response_model=QcStats, summary="Per month and person: readings, grades, agreement")
async def stats(kind: Kind, user: QcLead, ctx: Ctx, start: datetime | None = None,
                end: datetime | None = None) -> Any:
    start, end = window(start, end, days=365)
    async with ctx.pool.acquire() as conn:
        rows = await qc.statistics(conn, kind, start=start, end=end, timezone=ctx.settings.dashboard_timezone)
    return {"kind": kind, **listing(rows)}
