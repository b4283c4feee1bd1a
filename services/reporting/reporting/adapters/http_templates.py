"""HTTP API `/api/reporting/templates`: report templates, native or imported from IHE MRRT."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from imaging_common import audit
from imaging_common.auth import Principal
from imaging_common.service import ServiceContext

from reporting.adapters import deps, schemas
from reporting.adapters.deps import Ctx, Reader, Senior
from reporting.domain import templates as template_store
from reporting.domain.templates import MRRTError, TemplateCreate, from_mrrt

router = APIRouter(tags=["reporting"])


# ---- templates, phrases, reporters ---------------------------------------------------------------

@router.get("/templates", summary="Templates, optionally for a modality / body part", response_model=schemas.Templates)
async def templates(ctx: Ctx, user: Reader, modality: str | None = None) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await template_store.listing(conn, modality)
    return {"data": [dict(r) for r in rows], "count": len(rows)}


@router.get("/templates/{template_id}", summary="A template with its sections and typed fields",
            response_model=schemas.TemplateView)
async def template_view(template_id: str, ctx: Ctx, user: Reader) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        row = await template_store.stored(conn, template_id)
    if row is None:
        raise HTTPException(404, f"no template {template_id}")
    body = deps.jsonable(dict(row))
    body["definition"] = json.loads(row["definition"]) if isinstance(row["definition"], str) else row["definition"]
    return body


async def _store_template(ctx: ServiceContext, template: TemplateCreate, source: str, user: Principal,
                          request: Request) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            await template_store.store(conn, template, source, user.username)
            await audit.record(conn, actor=user.username, action="update", entity="template", entity_id=template.id,
                               source_ip=audit.client_ip(request), detail={"source": source})
    return template.model_dump()


@router.put("/templates/{template_id}", summary="Create or replace a template", response_model=schemas.TemplateStored)
async def put_template(template_id: str, body: TemplateCreate, ctx: Ctx, request: Request,
                       user: Senior) -> dict[str, Any]:
    if body.id != template_id:
        raise HTTPException(422, "the body's id differs from the URL's")
    return await _store_template(ctx, body, "native", user, request)


@router.post("/templates/mrrt", summary="Import an IHE MRRT (HTML5) template (body: the HTML document)",
             response_model=schemas.TemplateStored)
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
