"""HTTP API `/api/reporting/...`: reports and their workflow steps, versions and diffs, the ORU a receiver
would get, structured search, amendments and consultation notes.

Every read or change of patient data is audited (changes in the same transaction, inside the domain step)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from imaging_common import audit
from pydantic import BaseModel, Field

from reporting.adapters import deps, schemas
from reporting.adapters.deps import Ctx, Reader, Reporter, Stepper
from reporting.adapters.hl7_oru import build_oru
from reporting.domain import exams, qc, reports, signing
from reporting.domain.content import ReportContent
from reporting.domain.states import Action, InvalidTransition, State
from reporting.domain.workflow import NotPermitted

router = APIRouter(tags=["reporting"])


# ---- workflow steps ------------------------------------------------------------------------------

class StepRequest(BaseModel):
    content: ReportContent | None = None
    template_id: str | None = None
    note: str | None = Field(None, max_length=2000)
    expected_version: int | None = None  # optimistic lock: refuse if someone saved in between


@router.post("/exams/{accession_number}/report/{action}",
             summary="Take a workflow step: save, preliminary, final, return, consult, close-consultation, "
                     "sign-amended, withdraw, cancel", response_model=schemas.StepOut)
async def step(accession_number: str, action: str, ctx: Ctx, request: Request, user: Stepper,
               body: StepRequest | None = None) -> dict[str, Any]:
    try:
        chosen = Action(action)
    except ValueError:
        raise HTTPException(404, f"unknown step {action!r}; steps: {', '.join(a.value for a in Action)}") from None
    if chosen in (Action.REQUEST_AMENDMENT, Action.APPROVE_AMENDMENT, Action.REJECT_AMENDMENT):
        raise HTTPException(409, "amendments go through /reports/{id}/amendments (they need a reason)")
    body = body or StepRequest()
    async with ctx.pool.acquire() as conn:
        actor = await deps.actor(conn, user, request)
        try:
            result = await reports.act(conn, accession_number=accession_number, action=chosen, actor=actor,
                                       content=body.content, template_id=body.template_id, note=body.note,
                                       signing_secret=deps.settings_of(ctx).reporting_signing_secret,
                                       expected_version=body.expected_version,
                                       require_key_approval=deps.settings_of(ctx).reporting_require_key_approval,
                                       single_reader_site=deps.settings_of(ctx).reporting_single_reader)
        except (reports.ReportError, InvalidTransition, NotPermitted, signing.SigningError) as exc:
            raise deps.domain_error(exc) from None
    worker = ctx.extras.get("delivery_worker")
    if worker is not None and result.deliveries:
        worker.wake()
    return result.__dict__


# ---- reports: read, versions, diffs ----------------------------------------------------------------

async def report_body(conn: asyncpg.Connection, report: asyncpg.Record) -> dict[str, Any]:
    """A report with its current content, its template, QC of that content and its critical findings."""
    content = await reports.version_content(conn, report["id"], report["version"])
    template = await reports.template_of(conn, report["template_id"])
    exam = await exams.qc_facts(conn, report["accession_number"])
    content = json.loads(content) if isinstance(content, str) else (content or ReportContent().model_dump())
    issues = qc.check(content, template, sex=exam["sex"], ordered_laterality=exam["laterality"])
    criticals = await reports.critical_findings(conn, report["id"])
    return {**deps.jsonable(dict(report)), "content": content, "template": template.model_dump(),
            "qc": [i.public() for i in issues], "critical_findings": [deps.jsonable(dict(c)) for c in criticals]}

@router.get("/reports/{report_id}", summary="A report with its current content, QC and critical findings",
            response_model=schemas.ReportView)
async def report_view(report_id: str, ctx: Ctx, request: Request, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        report = await deps.report_or_404(conn, report_id)
        body = await report_body(conn, report)
        await deps.audit_read(conn, user, request, report, "report")
    return body


@router.get("/reports/{report_id}/versions", summary="Revision history: every save, who, when, which step",
            response_model=schemas.Versions)
async def versions(report_id: str, ctx: Ctx, request: Request, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        report = await deps.report_or_404(conn, report_id)
        rows = await reports.history(conn, report_id)
        await deps.audit_read(conn, user, request, report, "versions")
    return {"data": [deps.jsonable(r) for r in rows], "count": len(rows)}


@router.get("/reports/{report_id}/versions/{version}", summary="One version's content",
            response_model=schemas.VersionView)
async def version_view(report_id: str, version: int, ctx: Ctx, request: Request, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        report = await deps.report_or_404(conn, report_id)
        row = await reports.version_row(conn, report_id, version)
        if row is None:
            raise HTTPException(404, f"report {report_id} has no version {version}")
        await deps.audit_read(conn, user, request, report, f"version {version}")
    body = deps.jsonable(dict(row))
    body["content"] = json.loads(row["content"]) if isinstance(row["content"], str) else row["content"]
    return body


@router.get("/reports/{report_id}/diff", summary="Changes between any two versions, and who made each",
            response_model=schemas.DiffOut)
async def version_diff(report_id: str, ctx: Ctx, request: Request, user: Reader,
                       from_version: int = Query(..., alias="from", ge=1),
                       to_version: int = Query(..., alias="to", ge=1)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        report = await deps.report_or_404(conn, report_id)
        try:
            body = await reports.compare(conn, report_id, from_version, to_version)
        except reports.NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        await deps.audit_read(conn, user, request, report, f"diff {from_version}..{to_version}")
    for step_ in body["by_step"]:
        step_["at"] = step_["at"].isoformat()
    return body


@router.get("/reports/{report_id}/oru", response_class=PlainTextResponse,
            summary="The HL7 v2.5.1 ORU^R01 of the report's current state (as a receiver would get it)")
async def oru_view(report_id: str, ctx: Ctx, request: Request, user: Reader,
                   validate: bool = Query(False, description="also parse it with hl7apy, strict v2.5.1")
                   ) -> PlainTextResponse:
    async with ctx.pool.acquire() as conn:
        report = await deps.report_or_404(conn, report_id)
        snap = await reports.snapshot(conn, report_id)
        await deps.audit_read(conn, user, request, report, "oru")
    er7 = build_oru(snap).to_er7()
    if validate:
        # hl7apy's strict validation costs tens of ms a message here: on demand, off the event loop,
        # never on the delivery path.
        problem = await asyncio.to_thread(_hl7apy_problem, er7)
        if problem:
            raise HTTPException(422, f"hl7apy (strict v2.5.1): {problem}")
    return PlainTextResponse(er7.replace("\r", "\n"))


def _hl7apy_problem(er7: str) -> str | None:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    try:
        parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    except Exception as exc:  # hl7apy raises many types; each is a conformance problem to show
        return f"{type(exc).__name__}: {exc}"
    return None


@router.get("/search", summary="Reports by structured field value or code (data, not text search)",
            response_model=schemas.SearchHits)
async def search(ctx: Ctx, request: Request, user: Reader, field_id: str | None = None, value: str | None = None,
                 code: str | None = None, min_number: float | None = None, max_number: float | None = None,
                 limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    if not (field_id or code):
        raise HTTPException(422, "give field_id and/or code")
    async with ctx.pool.acquire() as conn:
        rows = await reports.search_fields(conn, field_id=field_id, value=value, code=code, min_number=min_number,
                                           max_number=max_number, limit=limit)
        await audit.record_read(conn, actor=user.username, entity="report-search",
                                source_ip=audit.client_ip(request), detail={"field_id": field_id, "code": code,
                                                                             "count": len(rows)})
    return {"data": [dict(r) for r in rows], "count": len(rows)}


# ---- amendments and consultation ------------------------------------------------------------------

class AmendmentRequest(BaseModel):
    kind: Literal["amended", "corrected"] = "corrected"  # corrected: an error; amended: added information
    reason: str = Field(min_length=2, max_length=2000)


class AmendmentReview(BaseModel):
    approve: bool
    note: str | None = Field(None, max_length=2000)


async def _amendment_step(ctx: Ctx, request: Request, user: Any, report_id: str,
                          step: Callable[..., Awaitable[Any]], **args: Any) -> dict[str, Any]:
    """One step of an amendment (asked, decided) on an existing report, signed with the site's secret."""
    async with ctx.pool.acquire() as conn:
        await deps.report_or_404(conn, report_id)
        actor = await deps.actor(conn, user, request)
        try:
            result = await step(conn, report_id=report_id, actor=actor,
                                signing_secret=deps.settings_of(ctx).reporting_signing_secret, **args)
        except (reports.ReportError, InvalidTransition, NotPermitted) as exc:
            raise deps.domain_error(exc) from None
    return dict(result.__dict__)


@router.post("/reports/{report_id}/amendments", summary="Ask for a signed report to be changed, with a reason",
             response_model=schemas.StepOut)
async def request_amendment(report_id: str, body: AmendmentRequest, ctx: Ctx, request: Request,
                            user: Stepper) -> dict[str, Any]:
    return await _amendment_step(ctx, request, user, report_id, reports.request_amendment, kind=body.kind,
                                 reason=body.reason)


@router.post("/reports/{report_id}/amendments/review", summary="Decide an amendment request (senior)",
             response_model=schemas.StepOut)
async def review_amendment(report_id: str, body: AmendmentReview, ctx: Ctx, request: Request,
                           user: Stepper) -> dict[str, Any]:
    return await _amendment_step(ctx, request, user, report_id, reports.review_amendment, approve=body.approve,
                                 note=body.note, single_reader_site=deps.settings_of(ctx).reporting_single_reader)


@router.get("/reports/{report_id}/amendments", summary="Amendment requests and decisions, with reasons",
            response_model=schemas.Amendments)
async def amendments(report_id: str, ctx: Ctx, user: Stepper) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await reports.amendments(conn, report_id)
    return {"data": [deps.jsonable(dict(r)) for r in rows], "count": len(rows)}


class NoteCreate(BaseModel):
    note: str = Field(min_length=1, max_length=4000)


@router.post("/reports/{report_id}/consultation-notes", summary="A consultation participant's opinion",
             response_model=schemas.ConsultationNote)
async def add_note(report_id: str, body: NoteCreate, ctx: Ctx, request: Request, user: Reporter) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        report = await deps.report_or_404(conn, report_id)
        if report["state"] != State.CONSULTATION.value:
            raise HTTPException(409, "the report is not in consultation")
        async with conn.transaction():
            row = await reports.add_consultation_note(conn, report_id, user.username, body.note)
            await audit.record(conn, actor=user.username, action="create", entity="consultation-note",
                               entity_id=str(row["id"]), source_ip=audit.client_ip(request))
    return deps.jsonable(dict(row))


@router.get("/reports/{report_id}/consultation-notes", summary="The consultation's discussion",
            response_model=schemas.ConsultationNotes)
async def notes(report_id: str, ctx: Ctx, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await reports.consultation_notes(conn, report_id)
    return {"data": [deps.jsonable(dict(r)) for r in rows], "count": len(rows)}
