"""`/api/<prefix>/admin/starter`: the service's part of the starter configuration, for admins.

GET  /admin/starter  -> {"service", "department", "parts": {part: {created, kept, ...}}}: what a load would
                        add (created) and what is configured already (kept); nothing changes
POST /admin/starter  -> the same after loading it (audited as a configuration change by the caller)
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from imaging_common import audit, starter


class PartOut(BaseModel):
    created: int
    kept: int
    created_keys: list[str]
    kept_keys: list[str]


class StarterOut(BaseModel):
    service: str
    department: str
    loaded: bool  # false: a preview
    parts: dict[str, PartOut]


def starter_router(service: str, loader: starter.Loader) -> APIRouter:
    from imaging_common.auth import require_roles

    router = APIRouter(prefix="/admin/starter", tags=["starter configuration"])
    admin = Depends(require_roles("admin"))

    def pool_of(request: Request) -> Any:
        ctx = getattr(request.app.state, "ctx", None)
        if ctx is None:
            raise HTTPException(503, "service is starting")
        return ctx.pool

    def answer(report: starter.Report, loaded: bool) -> dict[str, Any]:
        return {"service": service, "department": starter.department().name, "loaded": loaded,
                "parts": starter.summary(report)}

    @router.get("", summary="What the starter configuration would add here, and what is configured already",
                dependencies=[admin], response_model=StarterOut)
    async def preview(request: Request) -> dict[str, Any]:
        async with pool_of(request).acquire() as conn:
            return answer(await starter.preview(conn, loader, service=service), loaded=False)

    @router.post("", summary="Load the starter configuration (adds what is missing, keeps what is configured)",
                 dependencies=[admin], response_model=StarterOut)
    async def load(request: Request) -> dict[str, Any]:
        async with pool_of(request).acquire() as conn:
            report = await starter.load(conn, loader, service=service,
                                        **audit.request_context(request, request.state.principal))
        return answer(report, loaded=True)

    return router
