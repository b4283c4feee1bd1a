"""Route dependencies in domain words: the service context, who is calling with which role, and the
helpers every reporting router shares (the acting reporter, domain errors as HTTP, audited reads)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeAlias

import asyncpg
from fastapi import Depends, HTTPException, Request
from imaging_common import audit
from imaging_common.auth import Principal, require_roles
from imaging_common.service import Ctx as ServiceCtx
from imaging_common.service import ServiceContext, request_context

from reporting.domain import exams, reports, signing
from reporting.domain.states import InvalidTransition
from reporting.domain.workflow import NotPermitted, grades_of
from reporting.settings import Settings

__all__ = ["Admin", "Ctx", "Ops", "Reader", "Reporter", "Senior", "Stepper", "request_context"]

Reporter = Annotated[Principal, Depends(require_roles("radiologist", "senior-radiologist"))]
Reader = Annotated[Principal, Depends(require_roles("radiologist", "senior-radiologist", "admin"))]
Stepper = Annotated[Principal, Depends(require_roles("radiologist", "senior-radiologist", "admin", "clinician"))]
Senior = Annotated[Principal, Depends(require_roles("senior-radiologist", "admin"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
Ops = Annotated[Principal, Depends(require_roles("admin", "it-ops"))]
# The service context, its settings typed as reporting's own.
Ctx: TypeAlias = ServiceCtx[Settings]


def settings_of(ctx: ServiceContext[Settings]) -> Settings:
    return ctx.settings


async def actor(conn: asyncpg.Connection, user: Principal, request: Request) -> reports.Actor:
    kind = await reports.reporter_kind(conn, user.username)
    return reports.Actor(user.user_id, user.username, user.display_name, grades_of(user.roles, kind),
                         audit.client_ip(request))


def domain_error(exc: Exception) -> HTTPException:
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


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


async def report_or_404(conn: asyncpg.Connection, report_id: str) -> asyncpg.Record:
    try:
        return await reports.report_by_id(conn, report_id)
    except reports.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


async def audit_read(conn: asyncpg.Connection, user: Principal, request: Request, report: asyncpg.Record,
                     what: str) -> None:
    patient_id = await exams.patient_of(conn, report["accession_number"])
    await audit.record_read(conn, actor=user.username, entity="report", entity_id=report["id"],
                            patient_id=patient_id, source_ip=audit.client_ip(request), detail={"what": what})


async def status_set(ctx: ServiceContext[Settings], request: Request, user: Principal, *, entity: str,
                     entity_id: str, change: Callable[[asyncpg.Connection], Awaitable[bool]], status: str,
                     missing: str) -> None:
    """Move one record (a signing key, a delivery) to `status`, audited in the same transaction; 404 with
    `missing` when `change` finds none in the state it moves from."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await change(conn):
            raise HTTPException(404, missing)
        await audit.record(conn, actor=user.username, action="update", entity=entity, entity_id=entity_id,
                           source_ip=audit.client_ip(request), detail={"status": status})
