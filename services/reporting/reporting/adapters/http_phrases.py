"""HTTP API `/api/reporting/phrases`: the caller's phrases and the department's."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from imaging_common import audit
from pydantic import BaseModel, Field

from reporting.adapters import schemas
from reporting.adapters.deps import Ctx, Reporter, Senior
from reporting.domain import phrases as phrases_store

router = APIRouter(tags=["reporting"])


class PhraseCreate(BaseModel):
    label: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=4000)
    section: Literal["findings", "impression", "recommendation"] = "findings"
    modality: str | None = None
    department: str | None = None  # set: a department phrase (senior/admin); unset: the caller's own


@router.get("/phrases", summary="The caller's phrases and the department's", response_model=schemas.Phrases)
async def phrases(ctx: Ctx, user: Reporter, modality: str | None = None, section: str | None = None) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await phrases_store.visible_to(conn, user.username, modality=modality, section=section)
    return {"data": [dict(r) for r in rows], "count": len(rows)}


@router.post("/phrases", status_code=201, summary="Add a phrase (own, or a department phrase for seniors)",
             response_model=schemas.Phrase)
async def add_phrase(body: PhraseCreate, ctx: Ctx, user: Reporter) -> dict[str, Any]:
    if body.department and "senior-radiologist" not in user.roles:
        raise HTTPException(403, "department phrases are kept by senior radiologists")
    async with ctx.pool.acquire() as conn:
        row = await phrases_store.add(conn, owner=None if body.department else user.username,
                                      department=body.department, modality=body.modality, section=body.section,
                                      label=body.label, text=body.text)
    return dict(row)


@router.delete("/phrases/{phrase_id}", status_code=204, summary="Delete one of the caller's phrases")
async def delete_phrase(phrase_id: int, ctx: Ctx, user: Reporter) -> None:
    async with ctx.pool.acquire() as conn:
        deleted = await phrases_store.delete(conn, phrase_id, user.username,
                                             department_keeper="senior-radiologist" in user.roles)
    if not deleted:
        raise HTTPException(404, f"no phrase {phrase_id} of yours")


# The department's phrases, kept by senior radiologists and by the department admin (the administration page);
# every change audited.
class DepartmentPhraseCreate(PhraseCreate):
    department: str = Field("影像科", min_length=1, max_length=100)


@router.get("/department-phrases", summary="The department's phrases", response_model=schemas.Phrases)
async def department_phrases(ctx: Ctx, user: Senior) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await phrases_store.of_department(conn)
    return {"data": [dict(r) for r in rows], "count": len(rows)}


@router.post("/department-phrases", status_code=201, summary="Add a department phrase", response_model=schemas.Phrase)
async def add_department_phrase(body: DepartmentPhraseCreate, ctx: Ctx, user: Senior,
                                request: Request) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await phrases_store.add(conn, owner=None, department=body.department, modality=body.modality,
                                      section=body.section, label=body.label, text=body.text)
        await audit.record(conn, actor=user.username, action="create", entity="phrase", entity_id=str(row["id"]),
                           source_ip=audit.client_ip(request), detail={"label": body.label})
    return dict(row)


@router.delete("/department-phrases/{phrase_id}", status_code=204, summary="Delete a department phrase")
async def delete_department_phrase(phrase_id: int, ctx: Ctx, user: Senior, request: Request) -> None:
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await phrases_store.delete(conn, phrase_id, None, department_keeper=True):
            raise HTTPException(404, f"no department phrase {phrase_id}")
        await audit.record(conn, actor=user.username, action="delete", entity="phrase", entity_id=str(phrase_id),
                           source_ip=audit.client_ip(request))
