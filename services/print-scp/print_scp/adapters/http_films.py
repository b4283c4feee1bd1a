"""Films API for staff (/api/print/...): find films, fetch their image, review, hand over, share.

Every route declares its roles; every read or change of a patient's film is audited.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import qrcode
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from imaging_common import audit
from imaging_common.auth import Principal, require_roles
from pydantic import BaseModel, Field

from print_scp.adapters import film_decisions, schemas
from print_scp.adapters.deps import request_context
from print_scp.adapters.listener import PrintRuntime
from print_scp.domain import films_store, sharing
from print_scp.domain.matching import KnownStudy, MatchDecision
from print_scp.domain.storage import ObjectNotFound

router = APIRouter(tags=["films"])

Viewer = Annotated[Principal, Depends(require_roles("clerk", "technologist", "nurse", "radiologist",
                                                    "senior-radiologist", "clinician", "admin"))]
Matcher = Annotated[Principal, Depends(require_roles("technologist", "clerk", "admin"))]
Desk = Annotated[Principal, Depends(require_roles("clerk", "technologist", "nurse", "admin"))]
Sharer = Annotated[Principal, Depends(require_roles("clerk", "technologist", "radiologist", "senior-radiologist",
                                                    "clinician", "admin"))]


def runtime(request: Request) -> PrintRuntime:
    rt: PrintRuntime = request_context(request).extras["print"]
    return rt


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def film_public(row: Any) -> dict[str, Any]:
    out = {k: row[k] for k in row.keys() if k not in ("dicom_key", "png_key")}
    out["id"] = str(row["id"])
    out["session_id"] = str(row["session_id"]) if row["session_id"] else None
    if isinstance(out.get("match_detail"), str):
        out["match_detail"] = json.loads(out["match_detail"])
    base = f"/api/print/films/{out['id']}"
    out["links"] = {"png": f"{base}/image.png", "dicom": f"{base}/film.dcm"}
    return out


async def _film_or_404(conn: Any, film_id: str) -> Any:
    try:
        uuid.UUID(film_id)
    except ValueError:
        raise HTTPException(404, f"no film {film_id}") from None
    row = await films_store.film(conn, film_id)
    if row is None:
        raise HTTPException(404, f"no film {film_id}")
    return row


@router.get("/films", response_model=schemas.FilmList, summary="Films by patient, accession or study (newest first)")
async def list_films(
    request: Request, user: Viewer, patient_id: str | None = None, accession_number: str | None = None,
    study_instance_uid: str | None = None, match_status: Literal["matched", "review", "pending"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    if not (patient_id or accession_number or study_instance_uid or match_status):
        raise HTTPException(400, "give patient_id, accession_number, study_instance_uid or match_status")
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        rows, count = await films_store.films_where(conn, patient_id=patient_id, accession=accession_number,
                                                 study_uid=study_instance_uid, match_status=match_status,
                                                 limit=limit, offset=offset)
        await audit.record_read(conn, actor=user.username, entity="film", patient_id=patient_id,
                                source_ip=client_ip(request),
                                detail={"query": {"patient_id": patient_id, "accession_number": accession_number,
                                                  "study_instance_uid": study_instance_uid,
                                                  "match_status": match_status}, "count": len(rows)})
    return {"data": [film_public(r) for r in rows], "count": count}


@router.get("/films/{film_id}", response_model=schemas.Film, summary="One film with its print facts and match")
async def get_film(request: Request, film_id: str, user: Viewer) -> dict[str, Any]:
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        row = await _film_or_404(conn, film_id)
        await audit.record_read(conn, actor=user.username, entity="film", entity_id=film_id,
                                patient_id=row["patient_id"], source_ip=client_ip(request))
    return film_public(row)


async def _film_object(request: Request, film_id: str, user: Principal, kind: str) -> bytes:
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        row = await _film_or_404(conn, film_id)
        key = row["png_key"] if kind == "png" else row["dicom_key"]
        if key is None:
            raise HTTPException(409, "the film is still being rendered")
        if kind == "dicom" and await films_store.dicom_stale(conn, film_id):
            raise HTTPException(409, "the film was matched anew; its DICOM is being rewritten with that identity")
        await audit.record_read(conn, actor=user.username, entity="film", entity_id=film_id,
                                patient_id=row["patient_id"], source_ip=client_ip(request), detail={"format": kind})
    try:
        return await runtime(request).store.get(key)
    except ObjectNotFound:
        raise HTTPException(404, "the film's image is missing from the store") from None


@router.get("/films/{film_id}/image.png", summary="The film as a PNG preview", response_class=Response)
async def film_png(request: Request, film_id: str, user: Viewer) -> Response:
    data = await _film_object(request, film_id, user, "png")
    return Response(data, media_type="image/png", headers={"cache-control": "private, max-age=300"})


@router.get("/films/{film_id}/film.dcm", summary="The film as DICOM (Secondary Capture)", response_class=Response)
async def film_dicom(request: Request, film_id: str, user: Viewer) -> Response:
    data = await _film_object(request, film_id, user, "dicom")
    return Response(data, media_type="application/dicom",
                    headers={"content-disposition": f'attachment; filename="{film_id}.dcm"'})


class ManualMatch(BaseModel):
    accession_number: str = Field(min_length=1, max_length=64)
    note: str | None = Field(None, max_length=500)


@router.post("/films/{film_id}/match", response_model=schemas.Film,
             summary="Attach a film from the review list to a study by hand")
async def match_film(request: Request, film_id: str, body: ManualMatch, user: Matcher) -> dict[str, Any]:
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        row = await _film_or_404(conn, film_id)
        await films_store.lock_film(conn, film_id)
        study = await films_store.study_by_accession(conn, body.accession_number)
        if study is None:
            raise HTTPException(422, f"no study with accession number {body.accession_number}")
        if study["status"] == "cancelled":
            raise HTTPException(422, f"order {body.accession_number} was cancelled: no film can be attached to it")
        if row["match_status"] == "matched" and row["accession_number"] == body.accession_number:
            return film_public(row)
        known = KnownStudy(study["study_instance_uid"], study["accession_number"], study["patient_id"],
                           study["empi_id"], study["patient_name"])
        detail = {"rule": "manual", "note": body.note, "evidence_at_review": film_decisions.evidence(row),
                  "previous": {"status": row["match_status"], "accession_number": row["accession_number"]}}
        await film_decisions.apply(conn, film_id, MatchDecision("matched", "manual", known, 1.0, detail),
                                   matched_by=user.username)
        await audit.record(conn, actor=user.username, action="update", entity="film", entity_id=film_id,
                           patient_id=known.patient_id, source_ip=client_ip(request),
                           detail={"match": "manual", "accession_number": known.accession_number,
                                   "previous": detail["previous"]})
        row = await films_store.film(conn, film_id)
    runtime(request).pipeline.wake()  # rewrite its DICOM with that identity now
    return film_public(row)


@router.post("/films/{film_id}/handover", response_model=schemas.Film,
             summary="Mark a film printed and handed to the patient")
async def hand_over(request: Request, film_id: str, user: Desk) -> dict[str, Any]:
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        row = await _film_or_404(conn, film_id)
        if row["match_status"] != "matched":
            raise HTTPException(409, "only a matched film can be handed over")
        await films_store.hand_over(conn, film_id, user.username)
        await audit.record(conn, actor=user.username, action="update", entity="film", entity_id=film_id,
                           patient_id=row["patient_id"], source_ip=client_ip(request), detail={"handed_over": True})
        row = await films_store.film(conn, film_id)
    return film_public(row)


class ShareRequest(BaseModel):
    accession_number: str = Field(min_length=1, max_length=64)
    valid_days: int = Field(7, ge=1, le=365)
    check: Literal["phone-last4", "id-last4"] = "phone-last4"


@router.post("/shares", status_code=201, response_model=schemas.Share,
             summary="A cloud-film link (and QR code) with a validity period")
async def create_share(request: Request, body: ShareRequest, user: Sharer) -> dict[str, Any]:
    rt = runtime(request)
    if body.valid_days > rt.settings.print_share_max_days:
        raise HTTPException(422, f"valid_days at most {rt.settings.print_share_max_days}")
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        study = await films_store.study_by_accession(conn, body.accession_number)
        if study is None:
            raise HTTPException(404, f"no study with accession number {body.accession_number}")
        films = await films_store.matched_film_count(conn, body.accession_number)
        if not films:
            raise HTTPException(409, "the study has no matched film to share yet")
        patient = json.loads(study["patient"]) if isinstance(study["patient"], str) else dict(study["patient"])
        answer = sharing.expected_answer(body.check, patient)
        if answer is None:
            raise HTTPException(422, f"no {body.check.split('-')[0]} on record for this patient: choose another check")
        token, share_id = sharing.new_token(), str(uuid.uuid4())
        expires = datetime.now(UTC) + timedelta(days=body.valid_days)
        await sharing.create(conn, share_id=share_id, token=token, accession=body.accession_number,
                             empi_id=study["empi_id"], check_kind=body.check, answer=answer, expires_at=expires,
                             created_by=user.username)
        await audit.record(conn, actor=user.username, action="create", entity="film_share", entity_id=share_id,
                           patient_id=study["patient_id"], source_ip=client_ip(request),
                           detail={"accession_number": body.accession_number, "valid_days": body.valid_days,
                                   "check": body.check})
    url = f"{rt.settings.print_public_base_url.rstrip('/')}/ui/print/cloud-film#{token}"
    qr = qrcode.make(url)
    buf = io.BytesIO()
    qr.save(buf, format="PNG")
    return {"id": share_id, "url": url, "token": token, "expires_at": expires.isoformat(), "check": body.check,
            "qr_png_base64": base64.b64encode(buf.getvalue()).decode()}


@router.delete("/shares/{share_id}", status_code=204, summary="Revoke a cloud-film link")
async def revoke_share(request: Request, share_id: str, user: Sharer) -> Response:
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        try:
            uuid.UUID(share_id)
        except ValueError:
            raise HTTPException(404, "no such share") from None
        if not await sharing.revoke(conn, share_id):
            raise HTTPException(404, "no such share")
        await audit.record(conn, actor=user.username, action="update", entity="film_share", entity_id=share_id,
                           source_ip=client_ip(request), detail={"revoked": True})
    return Response(status_code=204)
