"""Modality status (/devices): the registered modalities and printers with their state, and their
maintenance records; registering a device and recording maintenance are audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Path
from imaging_common import audit
from imaging_common.json_out import listing

from dashboard.adapters.deps import ClientIp, Ctx, DeviceKeeper, DeviceViewer
from dashboard.adapters.echo_worker import EchoPoller
from dashboard.adapters.schemas import Device, DeviceIn, Devices, Maintenance, MaintenanceIn, MaintenanceList
from dashboard.domain import devices

router = APIRouter(tags=["devices"])
DeviceId = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")


@router.get("/devices", response_model=Devices, summary="Every modality and printer: state, last seen, today's exams")
async def board(user: DeviceViewer, ctx: Ctx) -> Any:
    now, s = datetime.now(UTC), ctx.settings
    async with ctx.pool.acquire() as conn:
        rows = await devices.board(conn, now=now, timezone=s.dashboard_timezone, idle_minutes=s.dashboard_idle_minutes)
    return {"now": now, **listing(rows)}


@router.put("/devices/{device_id}", response_model=Device, summary="Register or change a modality or printer")
async def put_device(body: DeviceIn, user: DeviceKeeper, ctx: Ctx, ip: ClientIp,
                     device_id: str = DeviceId) -> Any:
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await devices.put_device(conn, device_id, body.model_dump())
        await audit.record(conn, actor=user.username, action="update", entity="device", entity_id=device_id,
                           source_ip=ip, service="dashboard", detail=body.model_dump(mode="json"))
    poller: EchoPoller | None = ctx.extras.get("echo")
    if poller is not None:
        poller.wake()
    return row


@router.get("/devices/{device_id}/maintenance", response_model=MaintenanceList, summary="A device's maintenance")
async def maintenance(user: DeviceViewer, ctx: Ctx, device_id: str = DeviceId) -> Any:
    async with ctx.pool.acquire() as conn:
        return listing(await devices.maintenance_of(conn, device_id))


@router.post("/devices/{device_id}/maintenance", response_model=Maintenance, status_code=201,
             summary="Record maintenance (preventive, repair, calibration, inspection)")
async def add_maintenance(body: MaintenanceIn, user: DeviceKeeper, ctx: Ctx, ip: ClientIp,
                          device_id: str = DeviceId) -> Any:
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await devices.add_maintenance(conn, device_id, kind=body.kind, started_at=body.started_at,
                                            ended_at=body.ended_at, note=body.note, recorded_by=user.username)
        await audit.record(conn, actor=user.username, action="create", entity="maintenance",
                           entity_id=str(row["maintenance_id"]), source_ip=ip, service="dashboard",
                           detail={"device_id": device_id, "kind": body.kind})
    return row
