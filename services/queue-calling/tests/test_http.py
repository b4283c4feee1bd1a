"""The HTTP API: roles, configuration, check-in by every identifier, calling, errors as problem+json."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
from queue_calling.domain.exams import id_number_digest

from .conftest import Service, World, now

NURSE = ("nurse",)
ADMIN = ("admin",)


async def setup_room(api: httpx.AsyncClient, service: Service, world: World, *, door_cap: int = 3) -> tuple[str, str]:
    qid, rid = world.id("ct"), world.id("CT1")
    h = service.headers(*ADMIN)
    r = await api.put(f"/queues/{qid}", json={"name": "CT", "ticket_prefix": "CT"}, headers=h)
    assert r.status_code == 200, r.text
    r = await api.put(f"/rooms/{rid}", json={"name": "CT1室", "door_cap": door_cap, "queue_ids": [qid]}, headers=h)
    assert r.status_code == 200, r.text
    r = await api.post("/placement-rules", json={"queue_id": qid, "exam_code_prefix": f"{qid}:"}, headers=h)
    assert r.status_code == 201, r.text
    world.default_queue = qid
    return qid, rid


async def test_every_route_needs_a_token_and_the_right_role(api: httpx.AsyncClient, service: Service) -> None:
    assert (await api.post("/rooms/x/call-next")).status_code == 401
    r = await api.post("/rooms/x/call-next", headers=service.headers("radiologist"))
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    r = await api.put("/queues/q", json={"name": "x", "ticket_prefix": "X"}, headers=service.headers(*NURSE))
    assert r.status_code == 403
    assert (await api.post("/check-ins", json={"kind": "barcode", "value": "x"},
                           headers=service.headers("technologist"))).status_code == 403
    assert (await api.get("/stats")).status_code == 401


async def test_check_in_by_every_identifier_and_patient_arrived(api: httpx.AsyncClient, service: Service,
                                                                world: World) -> None:
    qid, rid = await setup_room(api, service, world)
    h = service.headers("clerk", username="desk1", terminal="desk-1")
    by_barcode = await world.exam()
    by_order = await world.exam()
    await world.exam(card=f"CARD-{world.uid}")
    await world.exam(id_hash=id_number_digest(f"11010119800101{world.uid[:4]}"))
    by_appt = await world.exam()
    await world.book(by_appt, start=now() + timedelta(minutes=5))
    cases = [("barcode", by_barcode.accession_number), ("barcode", by_order.order_id),
             ("card", f"CARD-{world.uid}"), ("id_number", f"11010119800101{world.uid[:4]}"),
             ("appointment", f"AP-{by_appt.order_id}")]
    tickets = []
    for kind, value in cases:
        r = await api.post("/check-ins", json={"kind": kind, "value": value}, headers=h)
        assert r.status_code == 201, (kind, r.text)
        body = r.json()
        assert body["count"] == 1 and body["data"][0]["queue_id"] == qid
        tickets.append(body["data"][0]["ticket"])
        # walk-ins queue by arrival; the on-time appointment goes before them all
        assert body["data"][0]["number_ahead"] == (0 if kind == "appointment" else len(tickets) - 1)
    assert len(set(tickets)) == 5 and all(t.startswith("CT") for t in tickets)
    # the on-time appointment goes before the walk-ins
    view = (await api.get(f"/rooms/{rid}/terminal", headers=service.headers(*NURSE))).json()
    waiting = view["queues"][0]["waiting"]
    assert waiting[0]["accession_number"] == by_appt.accession_number and waiting[0]["on_time"] is True
    # patient.arrived went to the outbox in the same transaction
    async with world.pool.acquire() as conn:
        rows = await conn.fetch("SELECT envelope FROM outbox WHERE type = 'patient.arrived' "
                                "AND envelope->>'subject' = $1", by_barcode.accession_number)
    assert len(rows) == 1
    data = json.loads(rows[0]["envelope"])["data"]
    assert data["queue_id"] == qid and data["queue_number"] == tickets[0]
    # second check-in of the same exam is refused, nothing duplicated
    r = await api.post("/check-ins", json={"kind": "barcode", "value": by_barcode.accession_number}, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "check-in-duplicate", r.text


async def test_check_in_refusals_are_problem_documents(api: httpx.AsyncClient, service: Service, world: World) -> None:
    await setup_room(api, service, world)
    h = service.headers("clerk")
    r = await api.post("/check-ins", json={"kind": "barcode", "value": "NO-SUCH"}, headers=h)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = await api.post("/check-ins", json={"kind": "fingerprint", "value": "x"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"]
    r = await api.post("/check-ins", content=b"{not json", headers={**h, "content-type": "application/json"})
    assert r.status_code == 422
    r = await api.post("/check-ins", headers=h, json={"kind": "barcode", "value": "x",
                                                      "notify": [{"channel": "webhook", "target": "file:///etc/passwd"}]})
    assert r.status_code == 422
    early = await world.exam()
    await world.book(early, start=now() + timedelta(hours=3))
    r = await api.post("/check-ins", json={"kind": "barcode", "value": early.accession_number}, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "check-in-too-early", r.text
    unplaced = await world.exam(code="NOWHERE-XR", modality="XR")
    r = await api.post("/check-ins", json={"kind": "barcode", "value": unplaced.accession_number}, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "check-in-no-queue", r.text


async def test_calling_through_the_api_with_operation_log(api: httpx.AsyncClient, service: Service,
                                                          world: World) -> None:
    qid, rid = await setup_room(api, service, world)
    a = await world.patient()
    b = await world.patient()
    h = service.headers("technologist", username="tech7", terminal="CT1-tech")
    r = await api.post(f"/rooms/{rid}/call-next", headers=h)
    assert r.status_code == 200 and r.json()["entry_id"] == str(a["entry_id"])
    r = await api.post(f"/entries/{a['entry_id']}/recall", headers=h)
    assert r.json()["call_count"] == 2
    r = await api.post(f"/entries/{a['entry_id']}/skip", headers=h)
    assert r.json()["state"] == "skipped"
    r = await api.post(f"/entries/{b['entry_id']}/select-call", json={"room_id": rid}, headers=h)
    assert r.json()["state"] == "called"
    r = await api.post(f"/entries/{b['entry_id']}/start", json={}, headers=h)
    assert r.json()["state"] == "in_exam"
    r = await api.post(f"/entries/{b['entry_id']}/finish", headers=h)
    assert r.json()["state"] == "done"
    r = await api.post(f"/entries/{b['entry_id']}/recall", headers=h)
    assert r.status_code == 409 and r.json()["state"] == "done"
    r = await api.post(f"/entries/{a['entry_id']}/cancel", json={"reason": ""}, headers=h)
    assert r.status_code == 422
    r = await api.post(f"/entries/{a['entry_id']}/dance", headers=h)
    assert r.status_code == 422
    r = await api.post("/entries/not-a-uuid/recall", headers=h)
    assert r.status_code == 422
    log = (await api.get(f"/entries/{a['entry_id']}/log", headers=h)).json()["data"]
    assert [(e["action"], e["actor"], e["terminal"]) for e in log] == [
        ("check_in", "clerk1", None), ("call", "tech7", "CT1-tech"), ("recall", "tech7", "CT1-tech"),
        ("skip", "tech7", "CT1-tech")]
    stats = (await api.get("/stats", params={"group": "room"}, headers=h)).json()["data"]
    mine = next(s for s in stats if s["room_id"] == rid)
    assert mine["done"] == 1 and mine["service_avg_min"] is not None and mine["wait_avg_min"] is not None
    async with world.pool.acquire() as conn:
        audited = await conn.fetchval("SELECT count(*) FROM audit.audit_log WHERE entity = 'queue_entry' "
                                      "AND entity_id = $1 AND actor = 'tech7'", str(a["entry_id"]))
    assert audited >= 3


async def test_two_terminals_racing_over_http(api: httpx.AsyncClient, service: Service, world: World) -> None:
    qid, rid = await setup_room(api, service, world, door_cap=20)
    rid2 = world.id("CT2")
    await api.put(f"/rooms/{rid2}", json={"name": "CT2室", "door_cap": 20, "queue_ids": [qid]},
                  headers=service.headers(*ADMIN))
    only = await world.patient()
    h1 = service.headers("nurse", username="n1", terminal="T1")
    h2 = service.headers("nurse", username="n2", terminal="T2")
    results = await asyncio.gather(*[
        api.post(f"/entries/{only['entry_id']}/select-call", json={"room_id": r}, headers=h)
        for r, h in [(rid, h1), (rid2, h2)] * 3])
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409, 409, 409, 409, 409], [r.text for r in results]
    others = [await world.patient() for _ in range(6)]
    results = await asyncio.gather(*[api.post(f"/rooms/{r}/call-next", headers=h)
                                     for r, h in [(rid, h1), (rid2, h2)] * 3])
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    assert sorted(r.json()["entry_id"] for r in results) == sorted(str(o["entry_id"]) for o in others)


async def test_pause_resume_and_transfer_over_http(api: httpx.AsyncClient, service: Service, world: World) -> None:
    qid, rid = await setup_room(api, service, world)
    q2 = world.id("mr")
    h = service.headers(*ADMIN)
    await api.put(f"/queues/{q2}", json={"name": "MR", "ticket_prefix": "MR"}, headers=h)
    await api.put(f"/rooms/{world.id('MR1')}", json={"name": "MR1", "queue_ids": [q2]}, headers=h)
    a = await world.patient()
    assert (await api.post(f"/queues/{qid}/pause", headers=h)).json()["paused"] is True
    r = await api.post(f"/rooms/{rid}/call-next", headers=h)
    assert r.status_code == 409 and r.json()["detail"] == "此检查室的队列中没有候诊患者（部分队列已暂停）", r.text
    await api.post(f"/queues/{qid}/resume", headers=h)
    r = await api.post(f"/entries/{a['entry_id']}/transfer", json={"queue_id": q2, "reason": "改MR"}, headers=h)
    assert r.status_code == 200 and r.json()["queue_id"] == q2
    r = await api.post(f"/entries/{a['entry_id']}/transfer", json={"queue_id": "nope"}, headers=h)
    assert r.status_code == 404
