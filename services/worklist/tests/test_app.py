"""The whole service: HTTP API (roles, import, search, audit), the page, events through RabbitMQ,
and the DICOM listener started by the app's lifespan."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from imaging_common.events import publish
from imaging_common.events.types import AppointmentBooked, AppointmentInfo, ExamItem, OrderCreated, PatientRef
from imaging_testing import asgi_client, free_port
from imaging_testing.auth import issue_test_token
from pydicom.uid import generate_uid
from worklist.app import create_app
from worklist.settings import Settings

from .conftest import TZ
from .scu import find, mwl_query, n_create, n_set
from .test_mpps import create_attrs, final_attrs


@pytest.fixture(scope="module")
async def service(test_env: dict[str, str]) -> AsyncIterator[tuple[httpx.AsyncClient, Any, Settings]]:
    settings = Settings(worklist_port=free_port(), worklist_host="127.0.0.1")
    app = create_app(settings)
    async with asgi_client(app) as client:
        yield client, app.state.ctx, settings


def auth(settings: Settings, *roles: str, username: str = "tech1") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_test_token(settings, roles=list(roles), username=username)}"}


def item(tag: str, n: int, **fields: Any) -> dict[str, Any]:
    body = {
        "accession_number": f"H{tag}{n}", "protocol_code": "MR-HEAD", "patient_id": f"HP{tag}{n}",
        "patient_name": "张三", "patient_name_latin": "ZHANG^SAN", "sex": "M", "birth_date": "1980-02-03",
        "modality": "MR", "station_ae_title": f"MR{tag}", "location": "MR-1", "room_id": f"room-{tag}",
        "start": datetime.now(TZ).replace(hour=15, minute=n, second=0, microsecond=0).isoformat(),
        "description": "头颅MR平扫",
    }
    body.update(fields)
    return body


async def test_routes_require_a_token_and_the_right_role(service) -> None:  # type: ignore[no-untyped-def]
    client, _, settings = service
    assert (await client.get("/api/worklist/items")).status_code == 401
    assert (await client.get("/api/worklist/items", headers=auth(settings, "clinician"))).status_code == 403
    assert (await client.post("/api/worklist/items", json={"items": []},
                               headers=auth(settings, "technologist"))).status_code == 403
    assert (await client.get("/api/worklist/items", headers=auth(settings, "technologist"))).status_code == 200
    assert (await client.get("/api/worklist/rooms", headers=auth(settings, "nurse"))).status_code == 200


async def test_import_search_cancel_and_audit(service) -> None:  # type: ignore[no-untyped-def]
    client, ctx, settings = service
    tag = uuid.uuid4().hex[:6].upper()
    clerk, tech = auth(settings, "clerk", username="clerk1"), auth(settings, "technologist", username=f"t{tag}")
    r = await client.post("/api/worklist/items", json={"items": [item(tag, 1), item(tag, 2)]}, headers=clerk)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2
    r = await client.post("/api/worklist/items", json={"items": [item(tag, 1, description="头颅MR增强")]},
                          headers=clerk)
    assert r.json()["updated"] == 1

    today = datetime.now(TZ).date().isoformat()
    r = await client.get("/api/worklist/items", params={"date": today, "room_id": f"room-{tag}"}, headers=tech)
    data = r.json()["data"]
    assert [d["patient_name"] for d in data] == ["ZHANG^SAN=张三"] * 2
    assert data[0]["description"] == "头颅MR增强" and data[0]["sps_status"] == "SCHEDULED"
    r = await client.get("/api/worklist/items", params={"patient_name": "张*", "station_ae_title": f"MR{tag}"},
                         headers=tech)
    assert r.json()["count"] == 2
    rooms = (await client.get("/api/worklist/rooms", params={"date": today}, headers=tech)).json()
    assert any(room["room_id"] == f"room-{tag}" and room["scheduled"] == 2 for room in rooms)

    first = data[0]["id"]
    assert (await client.get(f"/api/worklist/items/{first}", headers=tech)).json()["accession_number"] == f"H{tag}1"
    assert (await client.post(f"/api/worklist/items/{first}/cancel", headers=tech)).json()["status"] == "cancelled"
    r = await client.post(f"/api/worklist/items/{first}/cancel", headers=tech)
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/api/worklist/items/999999999", headers=tech)).status_code == 404

    audited = await ctx.pool.fetch("SELECT action, entity FROM audit.audit_log WHERE actor = $1", f"t{tag}")
    assert {("read", "worklist"), ("read", "worklist-item"), ("update", "worklist-item")} <= {
        (a["action"], a["entity"]) for a in audited}


async def test_bad_imports_are_refused_and_store_nothing(service) -> None:  # type: ignore[no-untyped-def]
    client, ctx, settings = service
    tag = uuid.uuid4().hex[:6].upper()
    clerk = auth(settings, "clerk")
    for bad in (
        {"items": [item(tag, 1), item(tag, 2, study_instance_uid="not-a-uid")]},
        {"items": [item(tag, 1), item(tag, 2, station_ae_title="A\\B")]},
        {"items": [item(tag, 1), item(tag, 1)]},
        {"items": [item(tag, 1, accession_number="X" * 17)]},
        {"items": []},
        {"nothing": 1},
    ):
        r = await client.post("/api/worklist/items", json=bad, headers=clerk)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    stored = await ctx.pool.fetchval("SELECT count(*) FROM scheduled_procedure_steps WHERE accession_number LIKE $1",
                                     f"H{tag}%")
    assert stored == 0


async def test_page_is_served_and_loads_through_the_api(service) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = service
    r = await client.get("/ui/worklist/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    # its script calls the API; the shared shell sends the bearer token
    assert "/ui/worklist/static/worklist.js" in r.text
    script = await client.get("/ui/worklist/static/worklist.js")
    shell = await client.get("/ui/worklist/common/shell.js")
    assert script.status_code == 200 and "/api/worklist" in script.text
    assert shell.status_code == 200 and "Bearer" in shell.text


async def wait_for(check: Any, seconds: float = 20.0) -> Any:
    async with asyncio.timeout(seconds):
        while not (value := await check()):  # noqa: ASYNC110 - polling another system, no event to wait on
            await asyncio.sleep(0.1)
    return value


async def test_order_and_appointment_events_through_rabbitmq_reach_the_modality(service) -> None:  # type: ignore[no-untyped-def]
    client, ctx, settings = service
    tag = uuid.uuid4().hex[:6].upper()
    station = f"EV{tag}"
    patient = PatientRef(empi_id=f"E{tag}", patient_id=f"EP{tag}", name="赵六", name_latin="ZHAO^LIU", sex="F")
    start = datetime.now(TZ).replace(hour=10, minute=0, second=0, microsecond=0)
    order = OrderCreated(order_id=f"O{tag}", accession_number=f"EA{tag}", requested_procedure_id=f"ER{tag}",
                         study_instance_uid=f"1.2.3.{int(tag, 16)}", patient=patient,
                         items=[ExamItem(code="DX-CHEST", name="胸部正位片", modality="DX")],
                         ordered_at=datetime.now(UTC))
    booked = AppointmentBooked(appointment=AppointmentInfo(
        appointment_id=f"AP{tag}", order_id=f"O{tag}", accession_number=f"EA{tag}", patient=patient,
        exam_code="DX-CHEST", exam_name="胸部正位片", modality="DX", room_id=f"R{tag}", room_name="DR室",
        station_ae_title=station, start=start, end=start + timedelta(minutes=10)))
    # Published like registration and scheduling do: into an outbox, relayed to the broker,
    # consumed from the worklist's queue.
    async with ctx.pool.acquire() as conn, conn.transaction():
        await publish(conn, order, source="/imaging/registration", subject=order.accession_number)
        await publish(conn, booked, source="/imaging/scheduling", subject=order.accession_number)

    scp = ctx.extras["worklist_scp"]

    async def on_worklist() -> Any:
        [responses] = await find(scp.port, mwl_query(station=station, date=start.strftime("%Y%m%d")))
        return [r[2] for r in responses if r[0] == 0xFF00]

    [reply] = await wait_for(on_worklist)
    assert str(reply.PatientName) == "ZHAO^LIU=赵六" and reply.AccessionNumber == f"EA{tag}"
    assert reply.ScheduledProcedureStepSequence[0].ScheduledProcedureStepLocation == "DR室"

    # MPPS through the app's listener; exam.completed leaves through the relay to RabbitMQ
    world = _FakeWorld(tag)
    uid = generate_uid()
    attrs = create_attrs(world)  # type: ignore[arg-type]
    attrs.ScheduledStepAttributesSequence[0].AccessionNumber = f"EA{tag}"
    attrs.PerformedStationAETitle = station
    assert (await n_create(scp.port, uid, attrs))[0] == 0x0000
    assert (await n_set(scp.port, uid, final_attrs()))[0] == 0x0000

    async def published() -> Any:
        rows = await ctx.pool.fetch(
            "SELECT type FROM outbox WHERE envelope->>'subject' = $1 AND published_at IS NOT NULL "
            "AND type LIKE 'exam.%' ORDER BY seq", f"EA{tag}")
        return [r["type"] for r in rows] if len(rows) == 2 else None

    assert await wait_for(published) == ["exam.started", "exam.completed"]
    r = await client.get("/api/worklist/items", params={"accession_number": f"EA{tag}", "status": "completed"},
                         headers=auth(settings, "radiologist"))
    assert r.json()["data"][0]["mpps_uid"] == uid


class _FakeWorld:
    """Just what create_attrs reads (tag, id, station) for a step made by events."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.station = f"EV{tag}"

    def id(self, name: str) -> str:
        return f"{name}{self.tag}"
