"""HTTP API `/api/reporting/...`: worklist, reports and their workflow steps, versions and diffs,
QC, signatures and their verification, amendments, consultation notes, templates (MRRT import),
phrases, receivers and the delivery queue, statistics.

Every route declares its roles; every read or change of patient data is audited (changes in the
same transaction as the change, inside the domain step).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from imaging_common import audit
from imaging_common.auth import Principal, require_roles
from imaging_common.outbound import AllowList, DestinationRefused
from imaging_common.service import ServiceContext
from pydantic import BaseModel, Field

from reporting.domain import deliveries, exams, films, patients, qc, reports, signing, stats
from reporting.domain.content import ReportContent
from reporting.domain.oru import build_oru
from reporting.domain.templates import MRRTError, TemplateCreate, from_mrrt
from reporting.domain.workflow import Action, InvalidTransition, NotPermitted, State, allowed_actions, grades_of
from reporting.settings import Settings

router = APIRouter(tags=["reporting"])

Reporter = Annotated[Principal, Depends(require_roles("radiologist", "senior-radiologist"))]
Reader = Annotated[Principal, Depends(require_roles("radiologist", "senior-radiologist", "admin"))]
Stepper = Annotated[Principal, Depends(require_roles("radiologist", "senior-radiologist", "admin", "clinician"))]
Senior = Annotated[Principal, Depends(require_roles("senior-radiologist", "admin"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
Ops = Annotated[Principal, Depends(require_roles("admin", "it-ops"))]


def _ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext | None = getattr(request.app.state, "ctx", None)
    if ctx is None:
        raise HTTPException(503, "service is starting")
    return ctx


def _settings(ctx: ServiceContext) -> Settings:
    return ctx.settings if isinstance(ctx.settings, Settings) else Settings()


Ctx = Annotated[ServiceContext, Depends(_ctx)]


async def _actor(conn: asyncpg.Connection, user: Principal, request: Request) -> reports.Actor:
    kind = await reports.reporter_kind(conn, user.username)
    return reports.Actor(user.user_id, user.username, user.display_name, grades_of(user.roles, kind),
                         audit.client_ip(request))


def _domain_error(exc: Exception) -> HTTPException:
    if isinstance(exc, reports.NotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, NotPermitted):
        return HTTPException(403, str(exc))
    if isinstance(exc, InvalidTransition | reports.Conflict):
        return HTTPException(409, str(exc))
    if isinstance(exc, reports.QCBlocked):
        return HTTPException(422, [{"msg": i.message, **i.public()} for i in exc.issues])
    if isinstance(exc, signing.SigningError):
        return HTTPException(409, str(exc))
    if isinstance(exc, reports.InvalidContent):
        return HTTPException(422, [{"msg": p} for p in exc.problems])
    raise exc


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


# ---- worklist and exams --------------------------------------------------------------------------

@router.get("/worklist", summary="Exams to report (unreported and in progress), urgent first")
async def worklist(ctx: Ctx, request: Request, user: Reader, modality: str | None = None,
                   state: Annotated[list[str] | None, Query()] = None, include_reported: bool = False,
                   limit: int = Query(200, ge=1, le=1000)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await exams.worklist(conn, states=state, modality=modality, limit=limit,
                                    include_reported=include_reported)
        await audit.record(conn, actor=user.username, action="read", entity="worklist",
                           source_ip=audit.client_ip(request), detail={"count": len(rows), "modality": modality})
    return {"data": [_jsonable(r) for r in rows], "count": len(rows)}


@router.get("/exams/{accession_number}", summary="An exam, its report, the caller's next steps and priors")
async def exam_view(accession_number: str, ctx: Ctx, request: Request, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        exam = await conn.fetchrow("SELECT * FROM exam WHERE accession_number = $1", accession_number)
        if exam is None:
            raise HTTPException(404, f"no exam with accession number {accession_number}")
        report = await conn.fetchrow("SELECT * FROM report WHERE accession_number = $1", accession_number)
        actor = await _actor(conn, user, request)
        state = State(report["state"]) if report else State.NONE
        body: dict[str, Any] = {
            "exam": _jsonable({k: v for k, v in dict(exam).items() if k != "patient"}),
            "patient": json.loads(exam["patient"]) if isinstance(exam["patient"], str) else exam["patient"],
            "report": await _report_body(conn, report) if report else None,
            "allowed_actions": allowed_actions(state, actor.grades),
            "grades": sorted(g.value for g in actor.grades),
            "priors": [_jsonable(p) for p in await exams.priors(conn, accession_number)],
            "films": [_jsonable(f) for f in await films.films_of(conn, accession_number)],
            # The order went to another patient after the report was signed: it needs an amendment.
            "patient_change": _jsonable(change) if (change := await patients.pending_change(conn, accession_number))
            else None,
            "patient_changes": [_jsonable(c) for c in await patients.changes(conn, accession_number)],
        }
        await audit.record(conn, actor=user.username, action="read", entity="exam", entity_id=accession_number,
                           patient_id=exam["patient_id"], source_ip=audit.client_ip(request))
    return body


async def _report_body(conn: asyncpg.Connection, report: asyncpg.Record) -> dict[str, Any]:
    content = await conn.fetchval("SELECT content FROM report_version WHERE report_id = $1 AND version = $2",
                                  report["id"], report["version"])
    template = await reports.template_of(conn, report["template_id"])
    exam = await conn.fetchrow("SELECT sex, laterality FROM exam WHERE accession_number = $1",
                               report["accession_number"])
    content = json.loads(content) if isinstance(content, str) else (content or ReportContent().model_dump())
    issues = qc.check(content, template, sex=exam["sex"], ordered_laterality=exam["laterality"])
    criticals = await conn.fetch("SELECT critical_id, finding, item_code, source, raised_by, raised_at "
                                 "FROM critical_finding WHERE report_id = $1 ORDER BY raised_at", report["id"])
    return {**_jsonable(dict(report)), "content": content, "template": template.model_dump(),
            "qc": [i.public() for i in issues], "critical_findings": [_jsonable(dict(c)) for c in criticals]}


# ---- workflow steps ------------------------------------------------------------------------------

class StepRequest(BaseModel):
    content: ReportContent | None = None
    template_id: str | None = None
    note: str | None = Field(None, max_length=2000)
    expected_version: int | None = None  # optimistic lock: refuse if someone saved in between


@router.post("/exams/{accession_number}/report/{action}",
             summary="Take a workflow step: save, preliminary, final, return, consult, close-consultation, "
                     "sign-amended, withdraw, cancel")
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
        actor = await _actor(conn, user, request)
        try:
            result = await reports.act(conn, accession_number=accession_number, action=chosen, actor=actor,
                                       content=body.content, template_id=body.template_id, note=body.note,
                                       signing_secret=_settings(ctx).reporting_signing_secret,
                                       expected_version=body.expected_version,
                                       require_key_approval=_settings(ctx).reporting_require_key_approval,
                                       single_reader_site=_settings(ctx).reporting_single_reader)
        except (reports.ReportError, InvalidTransition, NotPermitted, signing.SigningError) as exc:
            raise _domain_error(exc) from None
    worker = ctx.extras.get("delivery_worker")
    if worker is not None and result.deliveries:
        worker.wake()
    return result.__dict__


@router.post("/qc", summary="Run pre-sign QC on unsaved content (the editor checks as you type)")
async def check_content(ctx: Ctx, user: Reporter, accession_number: Annotated[str, Body()],
                        content: Annotated[ReportContent, Body()],
                        template_id: Annotated[str | None, Body()] = None) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        exam = await conn.fetchrow("SELECT sex, laterality FROM exam WHERE accession_number = $1", accession_number)
        if exam is None:
            raise HTTPException(404, f"no exam with accession number {accession_number}")
        try:
            template = await reports.template_of(conn, template_id)
        except reports.ReportError as exc:
            raise _domain_error(exc) from None
    issues = qc.check(content.model_dump(mode="json"), template, sex=exam["sex"], ordered_laterality=exam["laterality"])
    return {"issues": [i.public() for i in issues], "blocked": bool(qc.blockers(issues))}


# ---- reports: read, versions, diffs ----------------------------------------------------------------

async def _report_or_404(conn: asyncpg.Connection, report_id: str) -> asyncpg.Record:
    try:
        return await reports.report_by_id(conn, report_id)
    except reports.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


async def _audit_read(conn: asyncpg.Connection, user: Principal, request: Request, report: asyncpg.Record,
                      what: str) -> None:
    patient_id = await conn.fetchval("SELECT patient_id FROM exam WHERE accession_number = $1",
                                     report["accession_number"])
    await audit.record(conn, actor=user.username, action="read", entity="report", entity_id=report["id"],
                       patient_id=patient_id, source_ip=audit.client_ip(request), detail={"what": what})


@router.get("/reports/{report_id}", summary="A report with its current content, QC and critical findings")
async def report_view(report_id: str, ctx: Ctx, request: Request, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        report = await _report_or_404(conn, report_id)
        body = await _report_body(conn, report)
        await _audit_read(conn, user, request, report, "report")
    return body


@router.get("/reports/{report_id}/versions", summary="Revision history: every save, who, when, which step")
async def versions(report_id: str, ctx: Ctx, request: Request, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        report = await _report_or_404(conn, report_id)
        rows = await reports.history(conn, report_id)
        await _audit_read(conn, user, request, report, "versions")
    return {"data": [_jsonable(r) for r in rows], "count": len(rows)}


@router.get("/reports/{report_id}/versions/{version}", summary="One version's content")
async def version_view(report_id: str, version: int, ctx: Ctx, request: Request, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        report = await _report_or_404(conn, report_id)
        row = await conn.fetchrow("SELECT * FROM report_version WHERE report_id = $1 AND version = $2",
                                  report_id, version)
        if row is None:
            raise HTTPException(404, f"report {report_id} has no version {version}")
        await _audit_read(conn, user, request, report, f"version {version}")
    body = _jsonable(dict(row))
    body["content"] = json.loads(row["content"]) if isinstance(row["content"], str) else row["content"]
    return body


@router.get("/reports/{report_id}/diff", summary="Changes between any two versions, and who made each")
async def version_diff(report_id: str, ctx: Ctx, request: Request, user: Reader,
                       from_version: int = Query(..., alias="from", ge=1),
                       to_version: int = Query(..., alias="to", ge=1)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        report = await _report_or_404(conn, report_id)
        try:
            body = await reports.compare(conn, report_id, from_version, to_version)
        except reports.NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        await _audit_read(conn, user, request, report, f"diff {from_version}..{to_version}")
    for step_ in body["by_step"]:
        step_["at"] = step_["at"].isoformat()
    return body


@router.get("/reports/{report_id}/oru", response_class=PlainTextResponse,
            summary="The HL7 v2.5.1 ORU^R01 of the report's current state (as a receiver would get it)")
async def oru_view(report_id: str, ctx: Ctx, request: Request, user: Reader,
                   validate: bool = Query(False, description="also parse it with hl7apy, strict v2.5.1")
                   ) -> PlainTextResponse:
    async with ctx.pool.acquire() as conn:
        report = await _report_or_404(conn, report_id)
        snap = await reports.snapshot(conn, report_id)
        await _audit_read(conn, user, request, report, "oru")
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


@router.get("/search", summary="Reports by structured field value or code (data, not text search)")
async def search(ctx: Ctx, request: Request, user: Reader, field_id: str | None = None, value: str | None = None,
                 code: str | None = None, min_number: float | None = None, max_number: float | None = None,
                 limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    if not (field_id or code):
        raise HTTPException(422, "give field_id and/or code")
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT r.id AS report_id, r.accession_number, r.state, f.field_id, f.value_text, f.value_number,
                      f.unit, f.code, f.code_system
               FROM report_field f JOIN report r ON r.id = f.report_id
               WHERE ($1::text IS NULL OR f.field_id = $1) AND ($2::text IS NULL OR f.value_text = $2)
                 AND ($3::text IS NULL OR f.code = $3) AND ($4::float8 IS NULL OR f.value_number >= $4)
                 AND ($5::float8 IS NULL OR f.value_number <= $5)
               ORDER BY r.updated_at DESC LIMIT $6""", field_id, value, code, min_number, max_number, limit)
        await audit.record(conn, actor=user.username, action="read", entity="report-search",
                           source_ip=audit.client_ip(request), detail={"field_id": field_id, "code": code,
                                                                        "count": len(rows)})
    return {"data": [dict(r) for r in rows], "count": len(rows)}


# ---- signatures ------------------------------------------------------------------------------------

@router.get("/reports/{report_id}/verify", summary="Prove the report was not changed after signing (logged)")
async def verify(report_id: str, ctx: Ctx, request: Request,
                 user: Annotated[Principal, Depends(require_roles("radiologist", "senior-radiologist", "admin",
                                                                 "clinician"))],
                 version: int | None = None) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        await _report_or_404(conn, report_id)
        result = await reports.verify_signature(conn, report_id=report_id, actor=user.username, version=version)
    return result


@router.get("/reports/{report_id}/signatures", summary="Signatures of a report")
async def signatures(report_id: str, ctx: Ctx, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, version, kind, signer_id, signer_name, signed_at, content_sha256, key_id "
                                "FROM signature WHERE report_id = $1 ORDER BY id", report_id)
    return {"data": [_jsonable(dict(r)) for r in rows], "count": len(rows)}


@router.get("/signature-log", summary="Every signing and verification (standard 10.2.4)")
async def signature_log(ctx: Ctx, user: Senior, report_id: str | None = None,
                        limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM signature_log WHERE ($1::text IS NULL OR report_id = $1) "
                                "ORDER BY id DESC LIMIT $2", report_id, limit)
    data = [_jsonable(dict(r)) for r in rows]
    for row in data:
        row["detail"] = json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
    return {"data": data, "count": len(data)}


@router.get("/signing-keys", summary="Users' public signing keys")
async def signing_keys(ctx: Ctx, user: Senior) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch("SELECT key_id, user_id, username, public_key, status, created_at, approved_by, "
                                "approved_at, revoked_at "
                                "FROM signing_key ORDER BY created_at")
    return {"data": [_jsonable(dict(r)) for r in rows], "count": len(rows)}


@router.post("/signing-keys", status_code=201, summary="Enrol: make the caller's signing key (pending approval "
             "when IMAGING_REPORTING_REQUIRE_KEY_APPROVAL)")
async def enrol_key(ctx: Ctx, request: Request, user: Reporter) -> dict[str, Any]:
    settings = _settings(ctx)
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


@router.post("/signing-keys/{key_id}/approve", summary="Approve a pending signing key (standard 10.2.4 (1))")
async def approve_key(key_id: str, ctx: Ctx, request: Request, user: Admin) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            done = await conn.execute("UPDATE signing_key SET status = 'active', approved_by = $2, approved_at = now() "
                                      "WHERE key_id = $1 AND status = 'pending'", key_id, user.username)
            if not done.endswith(" 1"):
                raise HTTPException(404, f"no pending key {key_id}")
            await audit.record(conn, actor=user.username, action="update", entity="signing-key", entity_id=key_id,
                               source_ip=audit.client_ip(request), detail={"status": "active"})
    return {"key_id": key_id, "status": "active"}


@router.post("/signing-keys/{key_id}/revoke", summary="Revoke a key (the user gets a new one on next signing)")
async def revoke_key(key_id: str, ctx: Ctx, request: Request, user: Admin) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            done = await conn.execute("UPDATE signing_key SET status = 'revoked', revoked_at = now() "
                                      "WHERE key_id = $1 AND status = 'active'", key_id)
            if not done.endswith(" 1"):
                raise HTTPException(404, f"no active key {key_id}")
            await audit.record(conn, actor=user.username, action="update", entity="signing-key", entity_id=key_id,
                               source_ip=audit.client_ip(request), detail={"status": "revoked"})
    return {"key_id": key_id, "status": "revoked"}


# ---- amendments and consultation ------------------------------------------------------------------

class AmendmentRequest(BaseModel):
    kind: Literal["amended", "corrected"] = "corrected"  # corrected: an error; amended: added information
    reason: str = Field(min_length=2, max_length=2000)


class AmendmentReview(BaseModel):
    approve: bool
    note: str | None = Field(None, max_length=2000)


@router.post("/reports/{report_id}/amendments", summary="Ask for a signed report to be changed, with a reason")
async def request_amendment(report_id: str, body: AmendmentRequest, ctx: Ctx, request: Request,
                            user: Stepper) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        await _report_or_404(conn, report_id)
        actor = await _actor(conn, user, request)
        try:
            result = await reports.request_amendment(conn, report_id=report_id, kind=body.kind, reason=body.reason,
                                                     actor=actor,
                                                     signing_secret=_settings(ctx).reporting_signing_secret)
        except (reports.ReportError, InvalidTransition, NotPermitted) as exc:
            raise _domain_error(exc) from None
    return result.__dict__


@router.post("/reports/{report_id}/amendments/review", summary="Decide an amendment request (senior)")
async def review_amendment(report_id: str, body: AmendmentReview, ctx: Ctx, request: Request,
                           user: Stepper) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        await _report_or_404(conn, report_id)
        actor = await _actor(conn, user, request)
        try:
            result = await reports.review_amendment(conn, report_id=report_id, approve=body.approve, note=body.note,
                                                    actor=actor,
                                                    signing_secret=_settings(ctx).reporting_signing_secret,
                                                    single_reader_site=_settings(ctx).reporting_single_reader)
        except (reports.ReportError, InvalidTransition, NotPermitted) as exc:
            raise _domain_error(exc) from None
    return result.__dict__


@router.get("/reports/{report_id}/amendments", summary="Amendment requests and decisions, with reasons")
async def amendments(report_id: str, ctx: Ctx, user: Stepper) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM amendment WHERE report_id = $1 ORDER BY id", report_id)
    return {"data": [_jsonable(dict(r)) for r in rows], "count": len(rows)}


class NoteCreate(BaseModel):
    note: str = Field(min_length=1, max_length=4000)


@router.post("/reports/{report_id}/consultation-notes", summary="A consultation participant's opinion")
async def add_note(report_id: str, body: NoteCreate, ctx: Ctx, request: Request, user: Reporter) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        report = await _report_or_404(conn, report_id)
        if report["state"] != State.CONSULTATION.value:
            raise HTTPException(409, "the report is not in consultation")
        async with conn.transaction():
            row = await conn.fetchrow("INSERT INTO consultation_note (report_id, author, note) VALUES ($1, $2, $3) "
                                      "RETURNING *", report_id, user.username, body.note)
            await audit.record(conn, actor=user.username, action="create", entity="consultation-note",
                               entity_id=str(row["id"]), source_ip=audit.client_ip(request))
    return _jsonable(dict(row))


@router.get("/reports/{report_id}/consultation-notes", summary="The consultation's discussion")
async def notes(report_id: str, ctx: Ctx, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM consultation_note WHERE report_id = $1 ORDER BY id", report_id)
    return {"data": [_jsonable(dict(r)) for r in rows], "count": len(rows)}


# ---- templates, phrases, reporters ---------------------------------------------------------------

@router.get("/templates", summary="Templates, optionally for a modality / body part")
async def templates(ctx: Ctx, user: Reader, modality: str | None = None) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, name, modality, body_part, source FROM template "
                                "WHERE $1::text IS NULL OR modality = $1 OR modality IS NULL ORDER BY id", modality)
    return {"data": [dict(r) for r in rows], "count": len(rows)}


@router.get("/templates/{template_id}", summary="A template with its sections and typed fields")
async def template_view(template_id: str, ctx: Ctx, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM template WHERE id = $1", template_id)
    if row is None:
        raise HTTPException(404, f"no template {template_id}")
    body = _jsonable(dict(row))
    body["definition"] = json.loads(row["definition"]) if isinstance(row["definition"], str) else row["definition"]
    return body


async def _store_template(ctx: ServiceContext, template: TemplateCreate, source: str, user: Principal,
                          request: Request) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO template (id, name, modality, body_part, source, definition, created_by)
                   VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
                   ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, modality = EXCLUDED.modality,
                       body_part = EXCLUDED.body_part, source = EXCLUDED.source, definition = EXCLUDED.definition""",
                template.id, template.name, template.modality, template.body_part, source,
                template.definition.model_dump_json(), user.username)
            await audit.record(conn, actor=user.username, action="update", entity="template", entity_id=template.id,
                               source_ip=audit.client_ip(request), detail={"source": source})
    return template.model_dump()


@router.put("/templates/{template_id}", summary="Create or replace a template")
async def put_template(template_id: str, body: TemplateCreate, ctx: Ctx, request: Request,
                       user: Senior) -> dict[str, Any]:
    if body.id != template_id:
        raise HTTPException(422, "the body's id differs from the URL's")
    return await _store_template(ctx, body, "native", user, request)


@router.post("/templates/mrrt", summary="Import an IHE MRRT (HTML5) template (body: the HTML document)")
async def import_mrrt(ctx: Ctx, request: Request, user: Senior, modality: str | None = None,
                      body_part: str | None = None, template_id: str | None = None) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > 2_000_000:
        raise HTTPException(413, "template larger than 2 MB")
    try:
        template = from_mrrt(raw.decode("utf-8"), template_id=template_id)
    except UnicodeDecodeError:
        raise HTTPException(422, "MRRT templates are UTF-8 HTML") from None
    except (MRRTError, ValueError) as exc:
        raise HTTPException(422, f"not an MRRT template we can read: {exc}") from None
    template.modality, template.body_part = modality, body_part
    return await _store_template(ctx, template, "mrrt", user, request)


class PhraseCreate(BaseModel):
    label: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=4000)
    section: Literal["findings", "impression", "recommendation"] = "findings"
    modality: str | None = None
    department: str | None = None  # set: a department phrase (senior/admin); unset: the caller's own


@router.get("/phrases", summary="The caller's phrases and the department's")
async def phrases(ctx: Ctx, user: Reporter, modality: str | None = None, section: str | None = None) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT id, owner, department, modality, section, label, text FROM phrase
               WHERE (owner = $1 OR owner IS NULL) AND ($2::text IS NULL OR modality IS NULL OR modality = $2)
                 AND ($3::text IS NULL OR section = $3) ORDER BY owner NULLS LAST, label""",
            user.username, modality, section)
    return {"data": [dict(r) for r in rows], "count": len(rows)}


@router.post("/phrases", status_code=201, summary="Add a phrase (own, or a department phrase for seniors)")
async def add_phrase(body: PhraseCreate, ctx: Ctx, user: Reporter) -> dict[str, Any]:
    if body.department and "senior-radiologist" not in user.roles:
        raise HTTPException(403, "department phrases are kept by senior radiologists")
    async with ctx.pool.acquire() as conn:
        row = await conn.fetchrow(
            "INSERT INTO phrase (owner, department, modality, section, label, text) VALUES ($1, $2, $3, $4, $5, $6) "
            "RETURNING id, owner, department, modality, section, label, text",
            None if body.department else user.username, body.department, body.modality, body.section, body.label,
            body.text)
    return dict(row)


@router.delete("/phrases/{phrase_id}", status_code=204, summary="Delete one of the caller's phrases")
async def delete_phrase(phrase_id: int, ctx: Ctx, user: Reporter) -> None:
    async with ctx.pool.acquire() as conn:
        done = await conn.execute("DELETE FROM phrase WHERE id = $1 AND (owner = $2 OR ($3 AND owner IS NULL))",
                                  phrase_id, user.username, "senior-radiologist" in user.roles)
    if not done.endswith(" 1"):
        raise HTTPException(404, f"no phrase {phrase_id} of yours")


class ReporterPut(BaseModel):
    kind: Literal["trainee", "ai", "radiologist"]
    display_name: str | None = None


@router.put("/reporters/{username}", summary="Register a reporter as trainee, AI system or radiologist")
async def put_reporter(username: str, body: ReporterPut, ctx: Ctx, request: Request, user: Admin) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO reporter (username, kind, display_name, updated_by) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (username) DO UPDATE SET kind = EXCLUDED.kind, display_name = EXCLUDED.display_name,
                       updated_by = EXCLUDED.updated_by, updated_at = now()""",
                username, body.kind, body.display_name, user.username)
            await audit.record(conn, actor=user.username, action="update", entity="reporter", entity_id=username,
                               source_ip=audit.client_ip(request), detail={"kind": body.kind})
    return {"username": username, **body.model_dump()}


@router.get("/reporters", summary="Registered trainees, AI systems and radiologists")
async def list_reporters(ctx: Ctx, user: Senior) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM reporter ORDER BY username")
    return {"data": [_jsonable(dict(r)) for r in rows], "count": len(rows)}


# ---- receivers and deliveries -----------------------------------------------------------------------

class ReceiverPut(BaseModel):
    kind: Literal["hl7", "fhir"]
    name: str = Field(min_length=1, max_length=100)
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    url: str | None = Field(None, pattern=r"^https?://")
    charset: Literal["utf-8", "gb18030"] = "utf-8"
    receiving_application: str = "HIS"
    receiving_facility: str = "HOSPITAL"
    enabled: bool = True


@router.put("/receivers/{receiver_id}", summary="Configure an HL7 (MLLP) or FHIR receiver")
async def put_receiver(receiver_id: str, body: ReceiverPut, ctx: Ctx, request: Request, user: Ops) -> dict[str, Any]:
    if body.kind == "hl7" and not (body.host and body.port):
        raise HTTPException(422, "an HL7 receiver needs host and port")
    if body.kind == "fhir" and not body.url:
        raise HTTPException(422, "a FHIR receiver needs url")
    try:  # only destinations IMAGING_OUTBOUND_ALLOW names (checked again, resolved, at every send)
        deliveries.check_destination(AllowList.from_settings(ctx.settings), body.model_dump())
    except DestinationRefused as exc:
        raise HTTPException(422, f"destination refused: {exc}") from None
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            receiver = await deliveries.upsert_receiver(conn, {"id": receiver_id, **body.model_dump()})
            await audit.record(conn, actor=user.username, action="update", entity="receiver", entity_id=receiver_id,
                               source_ip=audit.client_ip(request), detail=body.model_dump())
    return receiver.__dict__


@router.get("/receivers", summary="Configured receivers")
async def list_receivers(ctx: Ctx, user: Ops) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await deliveries.receivers(conn, enabled_only=False)
    return {"data": [r.__dict__ for r in rows], "count": len(rows)}


@router.get("/deliveries", summary="The delivery queue; status=dead lists what needs a person")
async def list_deliveries(ctx: Ctx, user: Ops, status: Literal["pending", "sending", "delivered", "dead"] | None = None,
                          report_id: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await deliveries.listing(conn, status=status, report_id=report_id, limit=limit)
        counts = dict(await conn.fetch("SELECT status, count(*) FROM delivery GROUP BY status"))
    return {"data": [_jsonable(r) for r in rows], "count": len(rows), "by_status": counts}


@router.post("/deliveries/{delivery_id}/retry", summary="Put a dead delivery back in line")
async def retry_delivery(delivery_id: int, ctx: Ctx, request: Request, user: Ops) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            if not await deliveries.requeue(conn, delivery_id):
                raise HTTPException(404, f"no dead delivery {delivery_id}")
            await audit.record(conn, actor=user.username, action="update", entity="delivery",
                               entity_id=str(delivery_id), source_ip=audit.client_ip(request),
                               detail={"status": "pending"})
    return {"id": delivery_id, "status": "pending"}


# ---- statistics --------------------------------------------------------------------------------------

@router.get("/statistics", summary="Turnaround per stage, positive rate per modality/doctor, amendment rate")
async def statistics(ctx: Ctx, user: Senior, since: datetime | None = None,
                     until: datetime | None = None) -> dict[str, Any]:
    until = until or datetime.now(UTC)
    try:
        since = since or until - timedelta(days=30)
    except OverflowError:  # an until within 30 days of 0001-01-01: no default since exists
        raise HTTPException(422, "until is too early: give since as well") from None
    async with ctx.pool.acquire() as conn:
        return await stats.statistics(conn, since=since, until=until)
