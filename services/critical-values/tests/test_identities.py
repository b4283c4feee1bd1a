"""Identities kept apart: an acknowledgement is resolved only among the notifications sent to the
receiver that answers (two clinician systems both numbering their Communication/Task ids from 1);
an ACK from a sender that is no configured receiver is refused; times a receiver claims are read
with their offset (none = local time) and kept beside the time we received them, which is the
record the 10-minute statistics use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from critical_values.domain import times
from imaging_common.hl7 import Message, MLLPClient

from .conftest import ClinicianSystem, Service, World, clinician_system_running
from .test_loop import delivered, raise_value

SHANGHAI = ZoneInfo("Asia/Shanghai")


def hl7_ack(sender: str, ref: str, control: str, *, evn6: str = "", facility: str = "WARD") -> str:
    return (f"MSH|^~\\&|{sender}|{facility}|IMAGING-CV|RIS|20240101120000||ACK^R01^ACK|{control}|P|2.5|||||"
            "UNICODE UTF-8\r"
            f"MSA|AA|{ref}\rEVN||{evn6}|||D009^值班医生|{evn6}\rNTE|1||已处理\r")


async def send(port: int, text: str) -> Message:
    async with MLLPClient("127.0.0.1", port, timeout=5) as client:
        return Message.parse((await client.send(text)).decode())


def test_hl7_and_fhir_times_with_and_without_offset() -> None:
    local = times.zone("Asia/Shanghai")
    right = datetime(2026, 12, 7, 1, 55, 41, tzinfo=UTC)
    assert times.hl7_instant("20261207095541+0800", local) == right  # not 09:55:41Z (8 h late)
    assert times.hl7_instant("20261207095541", local) == right  # no offset: local time
    assert times.hl7_instant("20261207015541+0000", local) == right
    assert times.hl7_instant("20261206205541.25-0500", local) == right + timedelta(milliseconds=250)
    assert times.hl7_instant("202612070955", local) == right - timedelta(seconds=41)
    assert times.hl7_instant("2026120709554", local) is None and times.hl7_instant("20261307095541", local) is None
    assert times.fhir_instant("2026-12-07T09:55:41+08:00", local) == right
    assert times.fhir_instant("2026-12-07T09:55:41", local) == right
    assert times.fhir_instant("2026-12-07T01:55:41Z", local) == right
    assert times.fhir_instant("yesterday", local) is None


async def test_two_receivers_numbering_from_1_never_close_each_others_values(
        service: Service, pool: asyncpg.Pool) -> None:
    a_stub, b_stub = ClinicianSystem(sequential_ids=True), ClinicianSystem(sequential_ids=True)
    async with clinician_system_running(a_stub), clinician_system_running(b_stub):
        a_world, b_world = World(pool, a_stub), World(pool, b_stub)
        a = await a_world.receiver(fhir_request="Task", receiver_id=f"HIS-A-{a_world.uid}")
        await b_world.receiver(fhir_request="Task", receiver_id=f"HIS-B-{b_world.uid}",
                                   ack_application=f"EMR-B-{b_world.uid}", ack_facility="ICU",
                                   fhir_client=f"emr-b-{b_world.uid}")
        a_cv = await raise_value(service, await a_world.order())
        b_cv = await raise_value(service, await b_world.order())
        a_notes = {n["channel"]: n for n in await delivered(a_world, a_cv["critical_id"])}
        b_notes = {n["channel"]: n for n in await delivered(b_world, b_cv["critical_id"])}
        # Both systems gave our Communication and Task the id 1.
        assert a_notes["fhir"]["remote_id"] == b_notes["fhir"]["remote_id"] == "1"
        assert a_notes["fhir"]["task_id"] == b_notes["fhir"]["task_id"] == "1"

        async def state(cv: dict) -> str:
            return str(await pool.fetchval("SELECT state FROM critical_value WHERE critical_id = $1",
                                           cv["critical_id"]))

        # HL7: B answering with A's notification id is not A's acknowledgement (AE 204).
        reply = await send(service.mllp_port, hl7_ack(f"EMR-B-{b_world.uid}", a_notes["hl7"]["notification_id"],
                                                      "B1", facility="ICU"))
        assert reply.field("MSA", 1) == "AE" and reply.field("ERR", 3, component=1) == "204"
        # B's application name from another facility is not B; an unknown sender is refused (AR).
        reply = await send(service.mllp_port, hl7_ack(f"EMR-B-{b_world.uid}", b_notes["hl7"]["notification_id"],
                                                      "B2", facility="WARD"))
        assert reply.field("MSA", 1) == "AR"
        reply = await send(service.mllp_port, hl7_ack("NOBODY", a_notes["hl7"]["notification_id"], "X1"))
        assert reply.field("MSA", 1) == "AR"
        assert await pool.fetchval("SELECT count(*) FROM audit.audit_log WHERE actor = 'hl7:NOBODY^WARD' "
                                   "AND outcome = 'failure'") >= 1
        assert await state(a_cv) == "notified" and await state(b_cv) == "notified"

        # FHIR: B acknowledges "Communication/1": B's own value closes, A's stays open.
        b_headers = service.headers("clinician", username=f"emr-b-{b_world.uid}")
        r = await service.client.post("/fhir/R4/Communication", headers=b_headers, json={
            "resourceType": "Communication", "status": "completed", "inResponseTo": [{"reference": "Communication/1"}],
            "sender": {"display": "B院李医生"}})
        assert r.status_code == 201, r.text
        assert await state(b_cv) == "closed" and await state(a_cv) == "notified"
        # B again on Task 1: that is B's Task (already acknowledged), never A's.
        r = await service.client.put("/fhir/R4/Task/1", headers=b_headers, json={
            "resourceType": "Task", "status": "completed", "intent": "order"})
        assert r.status_code == 200 and await state(a_cv) == "notified"
        # An account that is no configured clinician system may not acknowledge at all.
        r = await service.client.put("/fhir/R4/Task/1", json={
            "resourceType": "Task", "status": "completed", "intent": "order"},
            headers=service.headers("clinician", username="his-system"))
        assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"
        assert await state(a_cv) == "notified"

        # A's own Task 1 (A's default identity: its receiver id) closes A's value.
        r = await service.client.put("/fhir/R4/Task/1", json={
            "resourceType": "Task", "status": "completed", "intent": "order", "owner": {"display": "A院王医生"}},
            headers=service.headers("clinician", username=a))
        assert r.status_code == 200, r.text
        row = await a_world.value(a_cv["critical_id"])
        assert row["state"] == "closed" and row["acknowledged_by"] == "A院王医生"
        assert (await b_world.value(b_cv["critical_id"]))["acknowledged_by"] == "B院李医生"


async def test_receiver_limited_to_its_addresses(service: Service, world: World) -> None:
    admin = service.headers("admin")
    rid = await world.receiver(fhir=False)
    body = {"name": "急诊临床系统", "department": world.department, "hl7_host": "127.0.0.1",
            "hl7_port": world.stub.mllp_port, "ack_hosts": ["192.0.2.7"]}
    r = await service.client.put(f"/api/critical-values/receivers/{rid}", json=body, headers=admin)
    assert r.status_code == 200, r.text
    cv = await raise_value(service, await world.order())
    [note] = await delivered(world, cv["critical_id"], 1)
    reply = await send(service.mllp_port, hl7_ack(rid, note["notification_id"], "H1"))
    assert reply.field("MSA", 1) == "AR"  # right name, wrong address
    r = await service.client.put(f"/api/critical-values/receivers/{rid}", json={**body, "ack_hosts": ["127.0.0.1"]},
                                 headers=admin)
    assert r.status_code == 200
    reply = await send(service.mllp_port, hl7_ack(rid, note["notification_id"], "H2"))
    assert reply.field("MSA", 1) == "AA"
    assert (await world.value(cv["critical_id"]))["state"] == "closed"


def hl7_local(at: datetime, *, offset: bool) -> str:
    local = at.astimezone(SHANGHAI)
    return local.strftime("%Y%m%d%H%M%S") + ("+0800" if offset else "")


async def test_claimed_time_kept_beside_the_time_received(service: Service, world: World) -> None:
    rid = await world.receiver(fhir_request=None)
    # The receiver's clock runs an hour ahead: what it claims is kept, what we received is the record.
    claimed = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    acks = []
    for n, how in enumerate(("hl7+0800", "hl7-local", "fhir-local")):
        cv = await raise_value(service, await world.order())
        notes = {x["channel"]: x for x in await delivered(world, cv["critical_id"])}
        before = datetime.now(UTC)
        if how.startswith("hl7"):
            reply = await send(service.mllp_port, hl7_ack(rid, notes["hl7"]["notification_id"], f"T{n}",
                                                          evn6=hl7_local(claimed, offset=how == "hl7+0800")))
            assert reply.field("MSA", 1) == "AA", reply.field("ERR", 8)
        else:
            r = await service.client.post("/fhir/R4/Communication", json={
                "resourceType": "Communication", "status": "completed",
                "inResponseTo": [{"reference": f"Communication/{notes['fhir']['remote_id']}"}],
                "sent": claimed.astimezone(SHANGHAI).replace(tzinfo=None).isoformat()},
                headers=service.headers("clinician", username=rid))
            assert r.status_code == 201, r.text
        row = await world.value(cv["critical_id"])
        assert row["acknowledged_claimed_at"] == claimed, how
        assert before <= row["acknowledged_at"] <= datetime.now(UTC), how  # ours: when it reached us
        assert row["closed_at"] == row["acknowledged_at"]
        acks.append(row)
    # The 10-minute statistics use our time (with the claimed one, none would be within 10 minutes).
    r = await service.client.get("/api/critical-values/stats", params={"group_by": "department"},
                                 headers=service.headers("senior-radiologist"))
    [mine] = [g for g in r.json()["data"] if g["key"] == world.department]
    assert mine["completed_within_window"] == 3 and mine["acknowledged"] == 3
    log = await world.pool.fetchval("SELECT detail->>'claimed_at' FROM action_log WHERE critical_id = $1 "
                                    "AND action = 'acknowledged'", acks[0]["critical_id"])
    assert datetime.fromisoformat(log) == claimed
