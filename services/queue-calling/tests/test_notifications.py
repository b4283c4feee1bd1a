"""Patient notifications: a webhook received by a real HTTP server carries the number ahead and the
estimated wait, again when it changes, and "called" with the room; failed deliveries are retried."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from imaging_testing import http_server

from .conftest import Service, World
from .test_http import setup_room


def receiver(fail_first: int = 0) -> tuple[FastAPI, list[dict[str, Any]]]:
    app = FastAPI()
    got: list[dict[str, Any]] = []
    failures = {"left": fail_first}

    @app.post("/hook/{patient}")
    async def hook(patient: str, request: Request) -> Response:
        if failures["left"] > 0:
            failures["left"] -= 1
            return Response(status_code=503)
        got.append({"patient": patient, **(await request.json())})
        return Response(status_code=204)

    return app, got


async def wait_for(predicate: Any, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_webhook_carries_number_ahead_and_estimated_wait(api: httpx.AsyncClient, service: Service,
                                                                world: World) -> None:
    qid, rid = await setup_room(api, service, world)
    await api.put(f"/queues/{qid}", json={"name": "CT", "ticket_prefix": "CT", "avg_service_minutes": 8},
                  headers=service.headers("admin"))
    app, got = receiver()
    clerk = service.headers("clerk")
    async with http_server(app) as hook_url:
        checked = []
        for i in range(3):
            order = await world.exam()
            r = await api.post("/check-ins", headers=clerk, json={
                "kind": "barcode", "value": order.accession_number,
                "notify": [{"channel": "webhook", "target": f"{hook_url}/hook/p{i}"}]})
            assert r.status_code == 201, r.text
            checked.append(r.json()["data"][0])
        assert checked[2]["number_ahead"] == 2 and checked[2]["estimated_wait_minutes"] == 16.0
        await wait_for(lambda: any(g["patient"] == "p2" for g in got))
        first = [g for g in got if g["patient"] == "p2"][0]
        assert first["event"] == "position" and first["number_ahead"] == 2
        assert first["estimated_wait_minutes"] == 16.0 and first["ticket"] == checked[2]["ticket"]

        await api.post(f"/rooms/{rid}/call-next", headers=service.headers("nurse"))
        await wait_for(lambda: any(g["patient"] == "p2" and g["number_ahead"] == 1 for g in got))
        await wait_for(lambda: any(g["patient"] == "p0" and g["event"] == "called" for g in got))
        called = next(g for g in got if g["patient"] == "p0" and g["event"] == "called")
        assert called["room_name"] == "CT1室" and called["number_ahead"] == 0
        # nothing is sent when nothing changed for a patient: p2 heard "2" once, then "1" once
        assert [g["number_ahead"] for g in got if g["patient"] == "p2"] == [2, 1]


async def test_failed_webhook_is_retried(api: httpx.AsyncClient, service: Service, world: World) -> None:
    await setup_room(api, service, world)
    app, got = receiver(fail_first=1)
    async with http_server(app) as hook_url:
        order = await world.exam()
        r = await api.post("/check-ins", headers=service.headers("clerk"), json={
            "kind": "barcode", "value": order.accession_number,
            "notify": [{"channel": "webhook", "target": f"{hook_url}/hook/retry"}]})
        entry_id = r.json()["data"][0]["entry_id"]
        await wait_for(lambda: len(got) == 1, timeout=15)
        # the sender marks the row sent in its own transaction right after the receiver answered
        row = None
        for _ in range(100):
            row = await world.pool.fetchrow(
                "SELECT attempts, sent_at, last_error FROM notification WHERE entry_id = $1", uuid.UUID(entry_id))
            if row["sent_at"] is not None:
                break
            await asyncio.sleep(0.05)
        assert row is not None
        assert row["attempts"] == 2 and row["sent_at"] is not None and "503" in row["last_error"]


async def test_unplugged_channel_waits_and_plugged_channel_delivers(api: httpx.AsyncClient, service: Service,
                                                                   world: World) -> None:
    await setup_room(api, service, world)
    sent: list[tuple[str, dict[str, Any]]] = []

    async def sms(target: str, payload: dict[str, Any]) -> None:
        sent.append((target, payload))

    order = await world.exam()
    r = await api.post("/check-ins", headers=service.headers("clerk"), json={
        "kind": "barcode", "value": order.accession_number,
        "notify": [{"channel": "sms", "target": "13800000000"}]})
    assert r.status_code == 201
    service.ctx.extras["sender"].register("sms", sms)
    try:
        # the row was pushed back a minute when no channel existed; bring it due again
        await world.pool.execute("UPDATE notification SET next_attempt_at = now() WHERE target = '13800000000' "
                                 "AND sent_at IS NULL")
        service.ctx.extras["sender"].kick()
        await wait_for(lambda: any(t == "13800000000" for t, _ in sent))
        assert sent[0][1]["number_ahead"] == 0
    finally:
        service.ctx.extras["sender"].channels.pop("sms", None)


async def test_central_webhook_gets_every_patient(service: Service, world: World, settings_for: Any) -> None:
    """IMAGING_QUEUE_WEBHOOK_URL: a hospital message gateway hears about every patient, no per-patient target."""
    from imaging_testing import asgi_client
    from queue_calling.app import create_app
    from queue_calling.settings import Settings

    app, got = receiver()
    async with http_server(app) as hook_url:
        other = create_app(settings_for(Settings, queue_webhook_url=f"{hook_url}/hook/gateway"))
        async with asgi_client(other) as client:
            await world.queue("ct")
            order = await world.exam()
            r = await client.post("/api/queue/check-ins", json={"kind": "barcode", "value": order.accession_number},
                                  headers=service.headers("clerk"))
            assert r.status_code == 201, r.text
            ticket = r.json()["data"][0]["ticket"]
            await wait_for(lambda: any(g.get("ticket") == ticket for g in got))
    assert next(g for g in got if g["ticket"] == ticket)["patient"] == "gateway"
