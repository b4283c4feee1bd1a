"""Events delivered shuffled, duplicated and late, to two replicas of every consumer, end where in-order
delivery would: every service's copy of orders and patients agrees with registration's (issue 17).

Registration runs alone first and produces a day's changes through its API: patients registered and
corrected, orders created, changed (items, priority, wanted time) and cancelled, one patient merged
into another, one merge undone. The consumers' queues fill meanwhile. The test then takes every
message off each queue and puts them back shuffled, a third of them twice, and starts two processes
of each consumer on the same queue; a part of the stream is held back and delivered after they are
busy. In-order delivery would leave every copy equal to registration's records, so the consistency
check (imaging_common.consistency) finding 0 drifts is the same state.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
from imaging_common.consistency import check_settled, connector
from imaging_common.events.topology import dead_letter_queue_name, queue_name, retry_queue_name, subscriptions
from imaging_testing import eventually
from imaging_testing.auth import issue_test_token

from e2e.cluster import Cluster
from e2e.journey import CHEST_CT, resident_id, unique_name

HEAD_CT = {"code": "CT-HEAD", "name": "头颅CT平扫", "modality": "CT", "body_part": "HEAD"}
CONSUMERS = {"scheduling": "scheduling", "worklist": "worklist", "queue_calling": "queue-calling",
             "print_scp": "print-scp", "reporting": "reporting", "critical_values": "critical-values",
             "patient_portal": "patient-portal", "dashboard": "dashboard"}
SINGLE = {"patient-portal", "dashboard"}


async def _produce(api: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    """A day's changes at the desk; returns what the assertions need."""
    people = []
    for n in range(6):
        r = await api.post("/api/registration/patients", headers=headers, json={
            "name": unique_name(), "phone": f"1391234{n:04d}", "sex": "F" if n % 2 else "M",
            "birth_date": f"19{60 + n}-0{1 + n}-1{n}", "force_new": True, "verified": True,
            "identifiers": [{"type": "resident-id", "value": resident_id()}]})
        assert r.status_code == 201, r.text
        people.append(r.json()["patient"]["empi_id"])
    orders: dict[str, list[str]] = {}
    for empi in people:
        for item in (CHEST_CT, HEAD_CT):
            r = await api.post("/api/registration/orders", headers=headers, json={
                "empi_id": empi, "ordering_department": "呼吸内科", "items": [item]})
            assert r.status_code == 201, r.text
            orders.setdefault(empi, []).append(r.json()["accession_number"])
    for empi in people[:3]:  # changes: another item, urgent, wanted tomorrow morning
        r = await api.post(f"/api/registration/orders/{orders[empi][0]}/change", headers=headers, json={
            "reason": "临床更改", "items": [HEAD_CT, CHEST_CT], "priority": "urgent",
            "requested_at": "2026-12-08T01:00:00+00:00"})
        assert r.status_code == 200 and r.json()["changed"], r.text
    cancelled = [orders[people[0]][1], orders[people[3]][0]]
    for acc in cancelled:
        r = await api.post(f"/api/registration/orders/{acc}/cancel", headers=headers, json={"reason": "患者取消"})
        assert r.status_code == 200, r.text
    r = await api.put(f"/api/registration/patients/{people[1]}", headers=headers, json={
        "name": "改名" + unique_name()[2:], "phone": "13700000001", "birth_date": "1961-02-11"})
    assert r.status_code == 200, r.text
    merges = [(people[4], people[5]), (people[1], people[2])]
    for survivor, merged in merges:
        r = await api.post("/api/registration/patients/merge", headers=headers,
                           json={"survivor": survivor, "merged": merged, "reason": "同一人"})
        assert r.status_code == 200, r.text
    r = await api.post(f"/api/registration/patients/{people[2]}/unmerge", headers=headers, json={"reason": "误合并"})
    assert r.status_code == 200, r.text
    r = await api.post(f"/api/registration/orders/{orders[people[5]][0]}/change", headers=headers,
                       json={"reason": "加急", "priority": "stat"})  # an order of the merged patient, after the merge
    assert r.status_code == 200, r.text
    return {"people": people, "orders": orders, "cancelled": cancelled}


async def _take_all(channel: aio_pika.abc.AbstractChannel, name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    queue = await channel.declare_queue(name, passive=True)  # declared by the services (quorum arguments)
    got = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        got.append(message)
    return got


async def _put(channel: aio_pika.abc.AbstractChannel, name: str,
               messages: list[aio_pika.abc.AbstractIncomingMessage]) -> None:
    for m in messages:
        await channel.default_exchange.publish(aio_pika.Message(
            m.body, message_id=m.message_id, type=m.type, content_type=m.content_type, app_id=m.app_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=name)


async def test_a_shuffled_duplicated_late_stream_converges_on_two_replicas(test_env: dict[str, str],
                                                                           tmp_path: Path) -> None:
    rng = random.Random(uuid.uuid4().int)
    # Fifteen processes on one PostgreSQL: two connections a pool is plenty for this stream.
    cluster = Cluster.prepare(test_env, tmp_path, {"IMAGING_EVENT_RETRY_DELAY_MS": "300", "IMAGING_DB_POOL_MAX": "2"})
    ns, db_url = cluster.env["IMAGING_NAMESPACE"], cluster.direct_database_url
    await cluster.create_database()
    try:
        await cluster.start("registration")
        headers = {"Authorization": "Bearer " + issue_test_token(cluster.settings, roles=["admin", "clerk"],
                                                                 username="conv")}
        async with httpx.AsyncClient(transport=cluster.transport(), base_url="http://platform", timeout=30) as api:
            made = await _produce(api, headers)

        async def all_relayed() -> bool:
            conn = await asyncpg.connect(db_url)
            try:
                return await conn.fetchval("SELECT count(*) FROM registration.outbox WHERE published_at IS NULL") == 0
            finally:
                await conn.close()

        await eventually(all_relayed, "registration's outbox relayed")

        # Every consumer's backlog, taken off its queue: shuffled, a third twice, a quarter held back.
        connection = await aio_pika.connect(cluster.settings.amqp_url)
        try:
            channel = await connection.channel()
            late: dict[str, list[Any]] = {}
            for service in CONSUMERS:
                name = queue_name(ns, service)
                stream = await _take_all(channel, name)
                assert stream or not subscriptions()[service], f"{service} received nothing"
                stream += rng.sample(stream, len(stream) // 3)
                rng.shuffle(stream)
                cut = len(stream) * 3 // 4
                await _put(channel, name, stream[:cut])
                late[name] = stream[cut:]

            # two replicas of each, but one of the newest consumers (connections: see the pools above)
            names = [n for service in CONSUMERS.values()
                     for n in ((service, cluster.add_replica(service)) if service not in SINGLE else (service,))]
            await cluster.start(*names)
            await asyncio.sleep(1.0)  # both replicas busy with the backlog: now the late ones
            for name, messages in late.items():
                await _put(channel, name, messages)

            async def queues_empty() -> bool:
                for service in CONSUMERS:
                    for q in (queue_name(ns, service), retry_queue_name(ns, service)):
                        declared = await channel.declare_queue(q, durable=True, passive=True)
                        if declared.declaration_result.message_count:
                            return False
                return True

            await eventually(queues_empty, "every queue drained", within=120)
            for service in CONSUMERS:  # nothing failed for good
                dlq = await channel.declare_queue(dead_letter_queue_name(ns, service), passive=True)
                assert dlq.declaration_result.message_count == 0, f"{service} dead-lettered events"
        finally:
            await connection.close()
        # Everything applied: the services stop before the check reads, giving back their connections
        # (fifteen processes beside the suite's own pools come near PostgreSQL's 100).
        await cluster.stop()

        report = await check_settled(connector(db_url), settle=3.0)
        assert report.ok, "\n".join(f"{d.service} {d.subject} {d.field}: registration {d.registration!r}, "
                                    f"copy {d.value!r} ({d.kind}, {d.record})" for d in report.drifts) + \
            "\n".join(report.errors)
        assert report.checked["worklist"] and report.checked["queue_calling"] and report.checked["reporting"]

        # What a modality sees, spelled out: cancelled orders are off, the merged patient's steps show the
        # survivor's PatientID, the unmerged one's their own again, changed orders their new items.
        conn = await asyncpg.connect(db_url)
        try:
            people, orders = made["people"], made["orders"]
            pid = {e: await conn.fetchval("SELECT patient_id FROM registration.empi_person WHERE empi_id = $1", e)
                   for e in people}
            steps = {(r["accession_number"], r["protocol_code"]): r for r in await conn.fetch(
                "SELECT accession_number, protocol_code, status, patient_id FROM worklist.scheduled_procedure_steps")}
            for acc in made["cancelled"]:  # cancelled, or never made when the cancel came first
                assert {s["status"] for k, s in steps.items() if k[0] == acc} <= {"cancelled"}
            assert {s["patient_id"] for k, s in steps.items() if k[0] in orders[people[5]]} == {pid[people[4]]}
            assert {s["patient_id"] for k, s in steps.items() if k[0] in orders[people[2]]} == {pid[people[2]]}
            changed = orders[people[1]][0]
            assert {k[1] for k, s in steps.items() if k[0] == changed and s["status"] == "scheduled"} == \
                {"CT-HEAD", "CT-CHEST"}
        finally:
            await conn.close()
    finally:
        await cluster.stop()
        if not os.environ.get("CONVERGENCE_KEEP_DB"):  # to look at a failure
            await cluster.drop_database()
