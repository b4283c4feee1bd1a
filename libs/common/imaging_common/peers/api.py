"""`/api/<prefix>/admin/peers`: the service's known peers, for admin and it-ops (every change audited).

GET    /admin/peers               -> {"data": [peer...], "count": n, "modes": {port: mode}}
GET    /admin/peers/{peer_id}     -> peer
PUT    /admin/peers/{peer_id}     {kind, name, ae_title | hl7_application [+ hl7_facility], addresses,
                                   cert_sha256?, active?} -> peer (created or replaced)
DELETE /admin/peers/{peer_id}     -> 204
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from imaging_common import audit
from imaging_common.peers import DICOM_KINDS, HL7_KINDS, Peer, PeerRegistry, normalize_address
from imaging_common.tls import normalize_fingerprint

PeerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class PeerIn(BaseModel):
    kind: Literal["modality", "printer", "his", "clinician-system"]
    name: str = Field("", max_length=200)
    ae_title: str | None = Field(None, max_length=16)
    hl7_application: str | None = Field(None, max_length=180)
    hl7_facility: str | None = Field(None, max_length=180)
    addresses: list[str] = Field(min_length=1, max_length=256)
    cert_sha256: str | None = Field(None, max_length=100)
    active: bool = True

    @field_validator("name", "hl7_application", "hl7_facility")
    @classmethod
    def _printable(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError("control characters are not allowed")
        if value is not None and info.field_name != "name" and any(c in value for c in "|^~\\&"):
            raise ValueError("HL7 delimiters (| ^ ~ \\ &) are not part of a name or MSH-3/MSH-4 component")
        return value

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        try:
            return sorted({normalize_address(v) for v in value})
        except ValueError as exc:
            raise ValueError(f"addresses are IP addresses or CIDR networks: {exc}") from None

    @field_validator("cert_sha256")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        return normalize_fingerprint(value)

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        if not text or "\\" in text or any(ord(c) < 0x20 or ord(c) > 0x7E for c in text):
            raise ValueError("an AE title is 1-16 printable ASCII characters without backslash")
        return text

    @model_validator(mode="after")
    def _identity(self) -> PeerIn:
        if self.kind in DICOM_KINDS and not self.ae_title:
            raise ValueError(f"a {self.kind} is recognised by its calling AE title: ae_title is required")
        if self.kind in HL7_KINDS and not (self.hl7_application or "").strip():
            raise ValueError(f"a {self.kind} is recognised by its MSH-3: hl7_application is required")
        return self


class PeerOut(BaseModel):
    """A known peer (Peer.public())."""

    peer_id: str
    kind: str
    name: str
    ae_title: str | None
    hl7_application: str | None
    hl7_facility: str | None
    addresses: list[str]
    cert_sha256: str | None
    active: bool


class PeerList(BaseModel):
    data: list[PeerOut]
    count: int
    modes: dict[str, str]  # protocol port -> peer check mode


def peers_router() -> APIRouter:
    """The routes; the listing shows the mode of each of the service's ports (its `Settings.peer_modes()`)."""
    from imaging_common.auth import require_roles

    router = APIRouter(prefix="/admin/peers", tags=["known peers"])
    operator = Depends(require_roles("admin", "it-ops"))

    def ctx_of(request: Request) -> Any:
        ctx = getattr(request.app.state, "ctx", None)
        if ctx is None:
            raise HTTPException(503, "service is starting")
        return ctx

    async def changed(ctx: Any) -> None:
        registry: PeerRegistry | None = ctx.extras.get("peers")
        if registry is not None:
            await registry.refresh()

    @router.get("", summary="List the known peers of this service's protocol ports", dependencies=[operator],
                response_model=PeerList)
    async def list_peers(request: Request) -> dict[str, Any]:
        ctx = ctx_of(request)
        async with ctx.pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM known_peer ORDER BY peer_id")
        return {"data": [Peer.from_row(r).public() for r in rows], "count": len(rows),
                "modes": ctx.settings.peer_modes()}

    @router.get("/{peer_id}", summary="One known peer", dependencies=[operator], response_model=PeerOut)
    async def get_peer(request: Request, peer_id: PeerId) -> dict[str, Any]:
        async with ctx_of(request).pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM known_peer WHERE peer_id = $1", peer_id)
        if row is None:
            raise HTTPException(404, f"no known peer {peer_id}")
        return Peer.from_row(row).public()

    @router.put("/{peer_id}", summary="Register or change a known peer", dependencies=[operator],
                response_model=PeerOut)
    async def put_peer(request: Request, peer_id: PeerId, body: PeerIn) -> dict[str, Any]:
        ctx = ctx_of(request)
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """INSERT INTO known_peer (peer_id, kind, name, ae_title, hl7_application, hl7_facility, addresses,
                       cert_sha256, active)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                   ON CONFLICT (peer_id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name,
                       ae_title = EXCLUDED.ae_title, hl7_application = EXCLUDED.hl7_application,
                       hl7_facility = EXCLUDED.hl7_facility, addresses = EXCLUDED.addresses,
                       cert_sha256 = EXCLUDED.cert_sha256, active = EXCLUDED.active, updated_at = now()
                   RETURNING *""",
                peer_id, body.kind, body.name, body.ae_title if body.kind in DICOM_KINDS else None,
                (body.hl7_application or "").strip() or None if body.kind in HL7_KINDS else None,
                (body.hl7_facility or "").strip() or None if body.kind in HL7_KINDS else None,
                body.addresses, body.cert_sha256, body.active)
            peer = Peer.from_row(row)
            await audit.record(conn, **audit.request_context(request, request.state.principal), action="update",
                               entity="peer", entity_id=peer_id, detail={"peer": peer.public()})
        await changed(ctx)
        return peer.public()

    @router.delete("/{peer_id}", summary="Forget a known peer", status_code=204, dependencies=[operator])
    async def delete_peer(request: Request, peer_id: PeerId) -> Response:
        ctx = ctx_of(request)
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("DELETE FROM known_peer WHERE peer_id = $1 RETURNING *", peer_id)
            if row is None:
                raise HTTPException(404, f"no known peer {peer_id}")
            await audit.record(conn, **audit.request_context(request, request.state.principal), action="delete",
                               entity="peer", entity_id=peer_id, detail={"peer": Peer.from_row(row).public()})
        await changed(ctx)
        return Response(status_code=204)

    return router
