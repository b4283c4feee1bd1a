"""HTTP API `/api/reporting/reporters`: who reports as trainee, AI system or radiologist."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from imaging_common import audit
from pydantic import BaseModel

from reporting.adapters import deps, schemas
from reporting.adapters.deps import Admin, Ctx, Senior
from reporting.domain import reporters

router = APIRouter(tags=["reporting"])


class ReporterPut(BaseModel):
    kind: Literal["trainee", "ai", "radiologist"]
    display_name: str | None = None


@router.put("/reporters/{username}", summary="Register a reporter as trainee, AI system or radiologist",
            response_model=schemas.Reporter)
async def put_reporter(username: str, body: ReporterPut, ctx: Ctx, request: Request, user: Admin) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            await reporters.put(conn, username, kind=body.kind, display_name=body.display_name,
                                updated_by=user.username)
            await audit.record(conn, actor=user.username, action="update", entity="reporter", entity_id=username,
                               source_ip=audit.client_ip(request), detail={"kind": body.kind})
    return {"username": username, **body.model_dump()}


@router.get("/reporters", summary="Registered trainees, AI systems and radiologists", response_model=schemas.Reporters)
async def list_reporters(ctx: Ctx, user: Senior) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await reporters.listing(conn)
    return {"data": [deps.jsonable(dict(r)) for r in rows], "count": len(rows)}
