"""Screens over WebSocket: token, snapshot, masked live updates, announcements, several replicas
in step through Redis, changes from event handlers, central configuration pushed to screens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from imaging_common.events import CloudEvent, dispatch
from imaging_common.events.types import ExamStarted
from imaging_testing import http_server
from queue_calling.adapters import events as handlers
from queue_calling.app import create_app
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from .conftest import Service, World
from .test_http import setup_room


async def make_screen(api: httpx.AsyncClient, service: Service, world: World, rooms: list[str], *,
                      kind: str = "hall", **extra: Any) -> dict[str, Any]:
    sid = world.id(f"screen-{kind}")
    r = await api.put(f"/screens/{sid}", json={"kind": kind, "title": "候诊大厅", "room_ids": rooms, **extra},
                      headers=service.headers("admin"))
    assert r.status_code == 200, r.text
    return r.json()


def ws_url(base: str, screen: dict[str, Any], token: str | None = None) -> str:
    return base.replace("http://", "ws://") + f"/ui/queue/screens/{screen['screen_id']}/ws?token=" + \
        (token if token is not None else screen["token"])


class Screen:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.raw: list[str] = []
        self.pending: list[dict[str, Any]] = []

    async def next(self, kind: str = "update", timeout: float = 5) -> dict[str, Any]:
        while True:
            if not self.pending:
                text = await asyncio.wait_for(self.ws.recv(), timeout)
                self.raw.append(text)
                msg = json.loads(text)
                self.pending = msg["messages"] if msg["type"] == "batch" else [msg]
            msg = self.pending.pop(0)
            if msg["type"] == kind:
                return msg


async def open_screen(base: str, screen: dict[str, Any]) -> AsyncIterator[Screen]:
    async with connect(ws_url(base, screen)) as ws:
        s = Screen(ws)
        yield s


async def test_screen_needs_its_token(api: httpx.AsyncClient, service: Service, world: World) -> None:
    _, rid = await setup_room(api, service, world)
    screen = await make_screen(api, service, world, [rid])
    with pytest.raises(InvalidStatus) as err:
        async with connect(ws_url(service.url, screen, "wrong-token-wrong-token")):
            pass
    assert err.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        async with connect(service.url.replace("http", "ws") + "/ui/queue/screens/nope/ws?token=x"):
            pass
    page = await api.get(service.url + f"/ui/queue/screens/{screen['screen_id']}")
    assert page.status_code == 200 and "reconnecting" in page.text and "张" not in page.text


async def test_call_updates_screen_with_masked_name_and_announcement(
        api: httpx.AsyncClient, service: Service, world: World) -> None:
    qid, rid = await setup_room(api, service, world)
    screen = await make_screen(api, service, world, [rid], kind="door")
    await world.patient(name="张三丰")
    await world.patient(name="欧阳娜娜", categories=("disabled",))
    async for s in open_screen(service.url, screen):
        snap = await s.next("snapshot")
        assert snap["screen"]["kind"] == "door" and snap["screen"]["title"] == "候诊大厅"
        room = snap["rooms"][0]
        assert room["room_name"] == "CT1室" and room["waiting"] == 2
        assert [p["name"] for p in room["next"]] == ["欧**娜", "张*丰"]  # priority first, flagged
        assert room["next"][0]["flags"] == ["priority"]
        r = await api.post(f"/rooms/{rid}/call-next", headers=service.headers("nurse"))
        assert r.status_code == 200
        update = await s.next()
        view = update["rooms"][0]
        assert view["seq"] > room["seq"] and view["waiting"] == 1
        assert view["current"][0]["name"] == "欧**娜" and view["current"][0]["state"] == "called"
        assert update["announcements"][0]["text"] == f"请 {r.json()['ticket']} 号 欧**娜 到 CT1室 检查"
        await api.post(f"/entries/{r.json()['entry_id']}/recall", headers=service.headers("nurse"))
        again = await s.next()
        assert again["announcements"][0]["recall"] is True
        assert not any(("张三丰" in t or "欧阳娜娜" in t) for t in s.raw), "a full name reached a public screen"
        assert qid


async def test_replicas_stay_in_step_through_redis(api: httpx.AsyncClient, service: Service, world: World,
                                                   settings_for: Any) -> None:
    from queue_calling.settings import Settings

    _, rid = await setup_room(api, service, world)
    screen = await make_screen(api, service, world, [rid])
    await world.patient(name="李四")
    replica = create_app(settings_for(Settings))
    async with http_server(replica) as other_url:
        async for on_other in open_screen(other_url, screen):
            async for on_main in open_screen(service.url, screen):
                await on_other.next("snapshot")
                await on_main.next("snapshot")
                # the call is made on the first replica; the screen on the second follows
                r = await api.post(f"/rooms/{rid}/call-next", headers=service.headers("nurse"))
                assert r.status_code == 200
                a, b = await on_other.next(), await on_main.next()
                assert a["rooms"] == b["rooms"] and a["rooms"][0]["current"][0]["name"] == "李*"


async def test_exam_started_event_moves_the_screen(api: httpx.AsyncClient, service: Service, world: World) -> None:
    _, rid = await setup_room(api, service, world)
    screen = await make_screen(api, service, world, [rid])
    order = await world.exam(name="王五")
    entry = await world.check_in(order)
    await api.post(f"/rooms/{rid}/call-next", headers=service.headers("nurse"))
    async for s in open_screen(service.url, screen):
        snap = await s.next("snapshot")
        assert snap["rooms"][0]["current"][0]["state"] == "called"
        event = CloudEvent.from_data(ExamStarted(
            accession_number=order.accession_number, study_instance_uid="1.2.3", patient=order.patient,
            mpps_uid="1.2.3.4", station_ae_title="CT1", modality="CT", started_at=datetime.now(UTC)),
            source="/imaging/worklist", subject=order.accession_number)
        async with world.pool.acquire() as conn, conn.transaction():
            await dispatch(handlers.HANDLERS, conn, event)
        update = await s.next()
        assert update["rooms"][0]["current"][0]["state"] == "in_exam"
        assert await world.state(entry["entry_id"]) == "in_exam"


async def test_config_change_is_pushed_to_connected_screens(api: httpx.AsyncClient, service: Service,
                                                            world: World) -> None:
    _, rid = await setup_room(api, service, world)
    screen = await make_screen(api, service, world, [rid], layout={"columns": 1})
    async for s in open_screen(service.url, screen):
        first = await s.next("snapshot")
        assert first["screen"]["layout"] == {"columns": 1} and first["screen"]["on_time"] is None
        r = await api.put(f"/screens/{screen['screen_id']}", headers=service.headers("admin"), json={
            "kind": "hall", "room_ids": [rid], "layout": {"columns": 3, "theme": "light"},
            "on_time": "07:30", "off_time": "18:30"})
        assert r.status_code == 200 and r.json()["token"] == screen["token"]  # token kept
        second = await s.next("snapshot")
        for _ in range(3):  # a re-sync the hub began before the change (it lost PostgreSQL or Redis for a
            if second["screen"]["layout"]["columns"] == 3:  # moment) may arrive first: the change follows it
                break
            second = await s.next("snapshot")
        assert second["screen"]["layout"]["columns"] == 3
        assert (second["screen"]["on_time"], second["screen"]["off_time"]) == ("07:30", "18:30")
        assert second["screen"]["utc_offset_minutes"] == 480
        listed = (await api.get("/screens", headers=service.headers("admin"))).json()["data"]
        assert next(x for x in listed if x["screen_id"] == screen["screen_id"])["connected"] == 1
    for _ in range(40):  # the server notices the closed socket a moment later
        listed = (await api.get("/screens", headers=service.headers("admin"))).json()["data"]
        if next(x for x in listed if x["screen_id"] == screen["screen_id"])["connected"] == 0:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("screen still counted as connected")
    bad = await api.put(f"/screens/{world.id('x')}", headers=service.headers("admin"),
                        json={"kind": "door", "room_ids": [rid, rid + "x"]})
    assert bad.status_code == 422


async def test_a_burst_reaches_a_screen_whole(api: httpx.AsyncClient, service: Service, world: World) -> None:
    """Many calls at once: every announcement arrives (batched or not) and the newest view wins."""
    _, rid = await setup_room(api, service, world, door_cap=20)
    screen = await make_screen(api, service, world, [rid])
    for _ in range(8):
        await world.patient()
    async for s in open_screen(service.url, screen):
        await s.next("snapshot")
        calls = await asyncio.gather(*[api.post(f"/rooms/{rid}/call-next", headers=service.headers("nurse"))
                                       for _ in range(8)])
        tickets = {c.json()["ticket"] for c in calls}
        heard: set[str] = set()
        newest = 0
        while heard != tickets:
            update = await s.next()
            heard |= {a["ticket"] for a in update["announcements"]}
            newest = max([newest, *[r["seq"] for r in update["rooms"]]])
        final = await world.pool.fetchval("SELECT view_seq FROM room WHERE room_id = $1", rid)
        assert newest == final
