"""Routes for people without a staff login, each with its own check instead of a role.

- Cloud film (/api/print/cloud-film/...): whoever holds a share link answers the identity check
  (last four digits of the phone or ID number) within the link's validity; a short-lived grant in
  Redis then lets them fetch that study's films. Wrong answers count; enough of them lock the link.
- Self-service kiosk (/api/print/kiosk/...): a registered device presents its own key (X-Kiosk-Key);
  the patient scans the token on their slip (issued at the desk, never the accession number); the
  lookup lists their films and changes nothing; the films count as handed over only when the patient
  confirms they were printed and taken (/kiosk/collected). Requests are rate-limited per device and
  per address (Redis). WS/T 597 Appendix B; see domain/kiosk.py.
Public answers show masked names only.
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, Response
from imaging_common import audit
from pydantic import BaseModel, Field

from print_scp.adapters import schemas
from print_scp.adapters.deps import request_context
from print_scp.adapters.http_films import client_ip, runtime
from print_scp.domain import films_store, kiosk, sharing
from print_scp.domain.storage import ObjectNotFound

router = APIRouter(tags=["cloud film and kiosk (public, own checks)"])
GRANT_SECONDS = 900


def _grant_key(request: Request, grant: str) -> str:
    return f"{request_context(request).settings.namespace}:print:share-grant:{grant}"


class Verify(BaseModel):
    token: str = Field(min_length=10, max_length=200)
    answer: str = Field(min_length=1, max_length=20)


@router.post("/cloud-film/verify", response_model=schemas.ShareGrant,
             summary="Open a cloud-film link: identity check, then a 15-minute grant")
async def verify_share(request: Request, body: Verify) -> dict[str, Any]:
    ctx = request_context(request)
    max_attempts = runtime(request).settings.print_share_max_attempts
    async with ctx.pool.acquire() as conn, conn.transaction():
        share = await sharing.by_token(conn, body.token)
        if share is None:
            raise HTTPException(404, "this link is not valid")
        share_id = str(share["id"])
        refusal = None
        if share["revoked_at"] is not None:
            refusal = (410, "this link was withdrawn")
        elif share["expires_at"] <= datetime.now(UTC):
            refusal = (410, "this link has expired")
        elif share["failed_attempts"] >= max_attempts:
            refusal = (423, "too many wrong answers: this link is locked; ask the hospital for a new one")
        elif not sharing.answer_matches(share_id, body.answer, share["check_sha256"]):
            await sharing.count_failure(conn, share_id)
            refusal = (403, "the identity check failed")
        await audit.record_read(conn, actor=f"share:{share_id}", entity="film_share", entity_id=share_id,
                                source_ip=client_ip(request), outcome="failure" if refusal else "success",
                                detail={"identity_check": share["check_kind"],
                                        "refused": refusal[1] if refusal else None})
        if refusal:
            # The failed attempt and its audit row are kept: only the refusal is sent.
            pass
        else:
            films = await films_store.matched_films(conn, share["accession_number"], share["empi_id"])
    if refusal:
        raise HTTPException(refusal[0], refusal[1])
    grant = secrets.token_urlsafe(24)
    await ctx.redis.set(_grant_key(request, grant), share_id, ex=GRANT_SECONDS)
    return {
        "grant": grant, "expires_in": GRANT_SECONDS, "accession_number": share["accession_number"],
        "patient_name": sharing.mask_name(films[0]["patient_name"] if films else ""),
        "films": [{"id": str(f["id"]), "printed_at": f["printed_at"].isoformat(), "film_size": f["film_size"],
                   "display_format": f["display_format"], "png": f"/api/print/cloud-film/films/{f['id']}.png"}
                  for f in films],
    }


@router.get("/cloud-film/films/{film_id}.png", summary="A shared film (needs the grant from /verify)",
            response_class=Response)
async def shared_film(request: Request, film_id: str,
                      x_share_grant: Annotated[str | None, Header()] = None) -> Response:
    ctx = request_context(request)
    share_id = await ctx.redis.get(_grant_key(request, x_share_grant)) if x_share_grant else None
    if not share_id:
        raise HTTPException(401, "open the link and answer the identity check first")
    try:
        uuid.UUID(film_id)
    except ValueError:
        raise HTTPException(404, "no such film") from None
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await sharing.shared_film_image(conn, film_id, share_id)
        if row is None or row["png_key"] is None:
            raise HTTPException(404, "no such film in this share")
        await audit.record_read(conn, actor=f"share:{share_id}", entity="film", entity_id=film_id,
                                patient_id=row["patient_id"], source_ip=client_ip(request),
                                detail={"via": "cloud-film"})
    try:
        data = await runtime(request).store.get(row["png_key"])
    except ObjectNotFound:
        raise HTTPException(404, "the film's image is missing") from None
    return Response(data, media_type="image/png", headers={"cache-control": "no-store"})


class KioskDevice:
    def __init__(self, device_id: str, name: str) -> None:
        self.id, self.name = device_id, name

    @property
    def actor(self) -> str:
        return f"kiosk:{self.id}"


async def _over_limit(request: Request, what: str, limit: int) -> int | None:
    """Count one request against `what` in this minute's window; seconds to wait when over `limit`."""
    ctx = request_context(request)
    window = int(time.time() // 60)
    key = f"{ctx.settings.namespace}:print:kiosk-rate:{what}:{window}"
    async with ctx.redis.pipeline(transaction=True) as pipe:
        count, _ = await pipe.incr(key).expire(key, 120).execute()
    return 60 - int(time.time()) % 60 + 1 if int(count) > limit else None


async def _kiosk(request: Request, key: str | None) -> KioskDevice:
    """The registered, unrevoked device presenting `key`, within the per-address and per-device rates."""
    settings = runtime(request).settings
    ip = client_ip(request) or "?"
    # The address first: wrong keys and wrong slips from one place are throttled before anything is looked up.
    wait = await _over_limit(request, f"address:{ip}", settings.print_kiosk_address_per_minute)
    if wait:
        raise HTTPException(429, "too many kiosk requests from this address", headers={"Retry-After": str(wait)})
    if not key or len(key) > 200:
        raise HTTPException(401, "unknown kiosk")
    async with request_context(request).pool.acquire() as conn:
        row = await kiosk.device_by_key(conn, key)
    if row is None:
        raise HTTPException(401, "unknown kiosk")
    device = KioskDevice(row["id"], row["name"])
    wait = await _over_limit(request, f"device:{device.id}", settings.print_kiosk_device_per_minute)
    if wait:
        raise HTTPException(429, "too many requests from this kiosk", headers={"Retry-After": str(wait)})
    return device


class Slip(BaseModel):
    slip: str = Field(min_length=1, max_length=64, description="the token read from the QR code on the patient's slip")


async def _slip(conn: Any, token: str | None) -> Any:
    """The valid slip for `token` (hash lookup), or 404 in one wording whatever is wrong."""
    row = None
    if token and len(token) <= 64:
        row = await kiosk.valid_slip(conn, token.strip())
    if row is None:
        raise HTTPException(404, "this slip is not valid: please ask at the desk")
    return row


@contextlib.asynccontextmanager
async def _kiosk_and_slip(request: Request, key: str | None, token: str) -> AsyncIterator[tuple[KioskDevice, Any, Any]]:
    """The kiosk presenting `key` (rates first), then, in a transaction, the valid slip it scanned."""
    device = await _kiosk(request, key)
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        yield device, conn, await _slip(conn, token)


@router.post("/kiosk/lookup", response_model=schemas.KioskLookup,
             summary="Self-service: the patient scans their slip; their films are listed "
             "(nothing is recorded as handed over)")
async def kiosk_lookup(request: Request, body: Slip, x_kiosk_key: Annotated[str | None, Header()] = None
                       ) -> dict[str, Any]:
    async with _kiosk_and_slip(request, x_kiosk_key, body.slip) as (device, conn, slip):
        rows = await films_store.matched_films(conn, slip["accession_number"], slip["empi_id"])
        # A read of patient data is audited (standard 10.5); nothing about the films changes.
        await audit.record_read(conn, actor=device.actor, entity="film",
                                patient_id=rows[0]["patient_id"] if rows else None, source_ip=client_ip(request),
                                detail={"kiosk_lookup": str(slip["id"]), "films": [str(r["id"]) for r in rows]})
    if not rows:
        raise HTTPException(404, "no films for this slip yet: please ask at the desk")
    return {"patient_name": sharing.mask_name(rows[0]["patient_name"]),
            "films": [{"id": str(r["id"]), "copies": r["copies"], "film_size": r["film_size"],
                       "collected": r["handed_over_at"] is not None,
                       "png": f"/api/print/kiosk/films/{r['id']}.png"} for r in rows]}


@router.get("/kiosk/films/{film_id}.png", summary="A film of the slip, for the kiosk printer (X-Kiosk-Key, X-Slip)",
            response_class=Response)
async def kiosk_film(request: Request, film_id: str, x_kiosk_key: Annotated[str | None, Header()] = None,
                     x_slip: Annotated[str | None, Header()] = None) -> Response:
    device = await _kiosk(request, x_kiosk_key)
    try:
        uuid.UUID(film_id)
    except ValueError:
        raise HTTPException(404, "no such film") from None
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        slip = await _slip(conn, x_slip)
        row = await films_store.matched_film_image(conn, film_id, slip["accession_number"], slip["empi_id"])
        if row is None or row["png_key"] is None:
            raise HTTPException(404, "no such film on this slip")
        await audit.record_read(conn, actor=device.actor, entity="film", entity_id=film_id,
                                patient_id=row["patient_id"], source_ip=client_ip(request),
                                detail={"kiosk_slip": str(slip["id"])})
    try:
        data = await runtime(request).store.get(row["png_key"])
    except ObjectNotFound:
        raise HTTPException(404, "the film's image is missing") from None
    return Response(data, media_type="image/png", headers={"cache-control": "no-store"})


class Collected(Slip):
    film_ids: list[uuid.UUID] = Field(min_length=1, max_length=64, description="films printed and taken")


@router.post("/kiosk/collected", response_model=schemas.Collected,
             summary="Self-service: the patient confirms their films were printed and taken "
             "(recorded as handed over by this kiosk)")
async def kiosk_collected(request: Request, body: Collected, x_kiosk_key: Annotated[str | None, Header()] = None
                          ) -> dict[str, Any]:
    async with _kiosk_and_slip(request, x_kiosk_key, body.slip) as (device, conn, slip):
        rows = await films_store.hand_over_matched(conn, [str(f) for f in body.film_ids], slip["accession_number"],
                                                   slip["empi_id"], device.actor)
        if len(rows) != len(set(body.film_ids)):
            raise HTTPException(404, "a film given is not on this slip")  # the transaction rolls back
        await audit.record(conn, actor=device.actor, action="update", entity="film", patient_id=rows[0]["patient_id"],
                           source_ip=client_ip(request),
                           detail={"handed_over": True, "kiosk_slip": str(slip["id"]),
                                   "films": [str(r["id"]) for r in rows]})
    return {"films": [{"id": str(r["id"]), "handed_over_at": r["handed_over_at"].isoformat(),
                       "handed_over_by": r["handed_over_by"]} for r in rows]}
