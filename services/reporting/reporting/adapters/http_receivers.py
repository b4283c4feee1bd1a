"""HTTP API `/api/reporting/...`: the HL7 and FHIR receivers of reports and the delivery queue."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from imaging_common import audit
from imaging_common.outbound import AllowList, DestinationRefused
from pydantic import BaseModel, Field

from reporting.adapters import deps, schemas
from reporting.adapters.deps import Ctx, Ops
from reporting.domain import deliveries

router = APIRouter(tags=["reporting"])


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


@router.put("/receivers/{receiver_id}", summary="Configure an HL7 (MLLP) or FHIR receiver",
            response_model=schemas.Receiver)
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


@router.get("/receivers", summary="Configured receivers", response_model=schemas.Receivers)
async def list_receivers(ctx: Ctx, user: Ops) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await deliveries.receivers(conn, enabled_only=False)
    return {"data": [r.__dict__ for r in rows], "count": len(rows)}


@router.get("/deliveries", summary="The delivery queue; status=dead lists what needs a person",
            response_model=schemas.Deliveries)
async def list_deliveries(ctx: Ctx, user: Ops, status: Literal["pending", "sending", "delivered", "dead"] | None = None,
                          report_id: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await deliveries.listing(conn, status=status, report_id=report_id, limit=limit)
        counts = await deliveries.counts_by_status(conn)
    return {"data": [deps.jsonable(r) for r in rows], "count": len(rows), "by_status": counts}


@router.post("/deliveries/{delivery_id}/retry", summary="Put a dead delivery back in line",
             response_model=schemas.DeliveryStatus)
async def retry_delivery(delivery_id: int, ctx: Ctx, request: Request, user: Ops) -> dict[str, Any]:
    await deps.status_set(ctx, request, user, entity="delivery", entity_id=str(delivery_id), status="pending",
                          change=lambda conn: deliveries.requeue(conn, delivery_id),
                          missing=f"no dead delivery {delivery_id}")
    return {"id": delivery_id, "status": "pending"}
