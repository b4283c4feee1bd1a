"""HTTP API `/api/reporting/...`: the radiologists' worklist, one exam with its report and next steps, and
pre-sign QC of unsaved content."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from imaging_common import audit

from reporting.adapters import deps, schemas
from reporting.adapters.deps import Ctx, Reader, Reporter
from reporting.adapters.http_reports import report_body
from reporting.domain import exams, films, patients, qc, reports
from reporting.domain.content import ReportContent
from reporting.domain.states import State
from reporting.domain.workflow import allowed_actions

router = APIRouter(tags=["reporting"])


# ---- worklist and exams --------------------------------------------------------------------------

@router.get("/worklist", summary="Exams to report (unreported and in progress), urgent first",
            response_model=schemas.Worklist)
async def worklist(ctx: Ctx, request: Request, user: Reader, modality: str | None = None,
                   state: Annotated[list[str] | None, Query()] = None, include_reported: bool = False,
                   limit: int = Query(200, ge=1, le=1000)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await exams.worklist(conn, states=state, modality=modality, limit=limit,
                                    include_reported=include_reported)
        await audit.record_read(conn, actor=user.username, entity="worklist",
                                source_ip=audit.client_ip(request), detail={"count": len(rows), "modality": modality})
    return {"data": [deps.jsonable(r) for r in rows], "count": len(rows)}


@router.get("/exams/{accession_number}", summary="An exam, its report, the caller's next steps and priors",
            response_model=schemas.ExamView)
async def exam_view(accession_number: str, ctx: Ctx, request: Request, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        exam = await exams.exam_by_accession(conn, accession_number)
        if exam is None:
            raise HTTPException(404, f"no exam with accession number {accession_number}")
        report = await reports.report_by_accession(conn, accession_number)
        actor = await deps.actor(conn, user, request)
        state = State(report["state"]) if report else State.NONE
        body: dict[str, Any] = {
            "exam": deps.jsonable({k: v for k, v in dict(exam).items() if k != "patient"}),
            "patient": json.loads(exam["patient"]) if isinstance(exam["patient"], str) else exam["patient"],
            "report": await report_body(conn, report) if report else None,
            "allowed_actions": allowed_actions(state, actor.grades),
            "grades": sorted(g.value for g in actor.grades),
            "priors": [deps.jsonable(p) for p in await exams.priors(conn, accession_number)],
            "films": [deps.jsonable(f) for f in await films.films_of(conn, accession_number)],
            # The order went to another patient after the report was signed: it needs an amendment.
            "patient_change": deps.jsonable(change) if (change := await patients.pending_change(conn, accession_number))
            else None,
            "patient_changes": [deps.jsonable(c) for c in await patients.changes(conn, accession_number)],
        }
        await audit.record_read(conn, actor=user.username, entity="exam", entity_id=accession_number,
                                patient_id=exam["patient_id"], source_ip=audit.client_ip(request))
    return body


@router.post("/qc", summary="Run pre-sign QC on unsaved content (the editor checks as you type)",
             response_model=schemas.QCResult)
async def check_content(ctx: Ctx, user: Reporter, accession_number: Annotated[str, Body()],
                        content: Annotated[ReportContent, Body()],
                        template_id: Annotated[str | None, Body()] = None) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        exam = await exams.qc_facts(conn, accession_number)
        if exam is None:
            raise HTTPException(404, f"no exam with accession number {accession_number}")
        try:
            template = await reports.template_of(conn, template_id)
        except reports.ReportError as exc:
            raise deps.domain_error(exc) from None
    issues = qc.check(content.model_dump(mode="json"), template, sex=exam["sex"], ordered_laterality=exam["laterality"])
    return {"issues": [i.public() for i in issues], "blocked": bool(qc.blockers(issues))}
