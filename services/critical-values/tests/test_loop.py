"""The closed loop against a clinician-system stub speaking real MLLP and FHIR REST: raise,
notify (ORU^R01 + Communication + Task), acknowledge by FHIR, by Task, by HL7 application ACK and
on the clinician's page; senior confirmation; roles; malformed input."""

from __future__ import annotations

import asyncio

from imaging_common.hl7 import Message, MLLPClient
from imaging_testing.fhir import r4b, r4b_resource

from .conftest import IDENT, ClinicianSystem, Service, World, eventually


async def raise_value(service: Service, order: dict, finding: str = "右侧张力性气胸", **extra: object) -> dict:
    r = await service.client.post("/api/critical-values/critical-values", json={
        "accession_number": order["accession_number"], "finding": finding, **extra},
        headers=service.headers("radiologist", username="li.radiologist"))
    assert r.status_code == 201, r.text
    return r.json()


async def delivered(world: World, cid: str, count: int = 2) -> list:
    async def check() -> list:
        rows = await world.pool.fetch("SELECT * FROM notification WHERE critical_id = $1 AND status = 'accepted'", cid)
        return list(rows) if len(rows) >= count else []
    return await eventually(check)


async def test_notified_over_hl7_and_fhir_then_acknowledged_by_fhir_communication(
        service: Service, world: World, clinician_system: ClinicianSystem) -> None:
    rid = await world.receiver(fhir_request="Task")
    order = await world.order()
    cv = await raise_value(service, order)
    assert cv["item_code"] == "TPTX" and cv["dictionary_version"] >= 1 and cv["state"] == "notifying"
    assert cv["recipient_name"] == "王医生" and cv["department"] == world.department
    notes = await delivered(world, cv["critical_id"])
    hl7_note = next(n for n in notes if n["channel"] == "hl7")
    fhir_note = next(n for n in notes if n["channel"] == "fhir")

    [msg] = clinician_system.messages_for(cv["critical_id"])
    assert msg.type == ("ORU", "R01", "ORU_R01")
    assert msg.control_id == hl7_note["notification_id"]
    assert msg.field("OBX", 8) == "AA" and msg.field("OBX", 5).startswith("危急值")
    assert msg.field("OBX", 3, component=2) == "右侧张力性气胸"
    assert msg.field("PID", 3, component=1) == order["patient"]["patient_id"]
    assert msg.field("PID", 5) == "张三丰" and msg.field("MSH", 18) == "UNICODE UTF-8"

    [comm] = clinician_system.resources_for(cv["critical_id"])
    assert {"system": IDENT, "value": fhir_note["notification_id"]} in comm["identifier"]
    assert comm["status"] == "completed" and comm["priority"] == "stat"
    assert comm["recipient"][0]["identifier"]["value"] == "D001"
    assert fhir_note["remote_id"] == comm["id"] and fhir_note["task_id"]
    task = r4b_resource(clinician_system.fhir[fhir_note["task_id"]], "Task")
    assert task["focus"]["reference"] == f"Communication/{comm['id']}"
    r4b_resource(comm, "Communication")
    assert not clinician_system.fhir_refused, clinician_system.fhir_refused  # the stub parsed each with R4B

    row = await world.value(cv["critical_id"])
    assert row["state"] == "notified" and row["first_notified_at"] is not None

    # The clinician system answers with a completed Communication in response to ours.
    ack = {"resourceType": "Communication", "status": "completed",
           "inResponseTo": [{"reference": f"Communication/{comm['id']}"}],
           "sender": {"identifier": {"value": "D001"}, "display": "王医生"},
           "payload": [{"contentString": "已安排胸腔闭式引流"}]}
    clin = service.headers("clinician", username=rid)  # the receiver's own service account
    r = await service.client.post("/fhir/R4/Communication", json=ack, headers=clin)
    stored = r4b(r, status=201, resource_type="Communication")
    assert r.headers["location"] == f"Communication/{stored['id']}" and stored["received"]
    assert stored["inResponseTo"] == ack["inResponseTo"] and stored["payload"] == ack["payload"]
    assert stored["sender"] == {"display": "王医生", "identifier": {"value": "D001"}}
    row = await world.value(cv["critical_id"])
    assert row["state"] == "closed" and row["outcome"] == "acknowledged"
    assert row["acknowledged_by"] == "王医生" and row["ack_channel"] == "fhir"
    assert row["action_taken"] == "已安排胸腔闭式引流"
    # Again: idempotent, 200 not 201.
    r = await service.client.post("/fhir/R4/Communication", json=ack, headers=clin)
    assert r4b(r, resource_type="Communication")["id"] == stored["id"]
    # The former base answers 308 (the method and body go along to the new one).
    moved = await service.client.post("/api/critical-values/fhir/Communication", json=ack, headers=clin)
    assert moved.status_code == 308 and moved.headers["location"] == "/fhir/R4/Communication"
    types = await world.outbox(cv["critical_id"])
    assert types.count("critical.notified") == 2  # one per channel
    assert "critical.acknowledged" in types and types[-1] == "critical.closed"
    # Timers were cancelled: nothing escalates later.
    assert not await world.pool.fetchval(
        "SELECT count(*) FROM timer WHERE critical_id = $1 AND fired_at IS NULL AND NOT cancelled", cv["critical_id"])
    # Audit kept the change with the patient id.
    audited = await world.pool.fetchval(
        "SELECT count(*) FROM audit.audit_log WHERE entity = 'critical_value' AND entity_id = $1 AND action = 'update'",
        cv["critical_id"])
    assert audited >= 1


async def test_communication_request_sent_is_valid_r4(service: Service, world: World) -> None:
    """A receiver that wants a CommunicationRequest to work on gets one, valid R4B, about our Communication."""
    await world.receiver(hl7=False, fhir_request="CommunicationRequest")
    cv = await raise_value(service, await world.order())
    [note] = await delivered(world, cv["critical_id"], 1)
    request = r4b_resource(world.stub.fhir[note["task_id"]], "CommunicationRequest")
    assert request["about"] == [{"reference": f"Communication/{note['remote_id']}"}]
    assert request["status"] == "active" and request["priority"] == "stat" and request["payload"][0]["contentString"]
    assert not world.stub.fhir_refused, world.stub.fhir_refused


async def test_fhir_task_update_acknowledges(service: Service, world: World) -> None:
    rid = await world.receiver(hl7=False, fhir_request="Task")
    order = await world.order()
    cv = await raise_value(service, order, finding="颅内出血，左侧基底节区")
    assert cv["item_code"] == "ICH"
    [note] = await delivered(world, cv["critical_id"], 1)
    clin = service.headers("clinician", username=rid)
    r = await service.client.put(f"/fhir/R4/Task/{note['task_id']}", json={
        "resourceType": "Task", "status": "completed", "intent": "order", "owner": {"display": "赵医生"},
        "note": [{"text": "已请神经外科会诊"}]}, headers=clin)
    task = r4b(r, resource_type="Task")
    assert task["id"] == note["task_id"] and task["status"] == "completed" and task["owner"]["display"] == "赵医生"
    row = await world.value(cv["critical_id"])
    assert row["acknowledged_by"] == "赵医生" and row["action_taken"] == "已请神经外科会诊"
    # Malformed FHIR: OperationOutcome, nothing changes.
    for body, status in (({"resourceType": "Patient"}, 400), ({"resourceType": "Task", "status": "draft"}, 422)):
        r4b(await service.client.put(f"/fhir/R4/Task/{note['task_id']}", json=body, headers=clin), status=status)
    r = await service.client.post("/fhir/R4/Communication", json={
        "resourceType": "Communication", "status": "completed",
        "inResponseTo": [{"reference": "Communication/nope"}]}, headers=clin)
    r4b(r, status=404)
    r = await service.client.post("/fhir/R4/Communication", content=b"{not json",
                                  headers={**clin, "Content-Type": "application/fhir+json"})
    r4b(r, status=400)
    # No token, a role that may not acknowledge: OperationOutcome too.
    assert r4b(await service.client.put(f"/fhir/R4/Task/{note['task_id']}", json=body), status=401)["issue"][0][
        "code"] == "login"
    r4b(await service.client.put(f"/fhir/R4/Task/{note['task_id']}", json=body,
                                 headers=service.headers("technologist")), status=403)


async def test_hl7_application_ack_over_mllp(service: Service, world: World) -> None:
    rid = await world.receiver(fhir=False)
    order = await world.order()
    cv = await raise_value(service, order)
    [note] = await delivered(world, cv["critical_id"], 1)
    ack = (f"MSH|^~\\&|{rid}|WARD|IMAGING-CV|RIS|20240101120000||ACK^R01^ACK|APP1|P|2.5|||||UNICODE UTF-8\r"
           f"MSA|AA|{note['notification_id']}\rEVN||20240101120000|||D001^王医生\rNTE|1||已处理\r")
    async with MLLPClient("127.0.0.1", service.mllp_port, timeout=5) as client:
        reply = Message.parse((await client.send(ack)).decode())
        assert reply.field("MSA", 1) == "AA" and reply.field("MSA", 2) == "APP1"
        row = await world.value(cv["critical_id"])
        assert row["ack_channel"] == "hl7" and row["acknowledged_by"] == "王医生" and row["action_taken"] == "已处理"
        # An identifier we never sent: AE with ERR 204.
        bad = ack.replace(note["notification_id"], "CVNOSUCHID").replace("APP1", "APP2")
        reply = Message.parse((await client.send(bad)).decode())
        assert reply.field("MSA", 1) == "AE" and reply.field("ERR", 3, component=1) == "204"
        # Not an ACK: AR 200.
        oru = "MSH|^~\\&|HIS|WARD|IMAGING-CV|RIS|20240101120000||ORU^R01|APP3|P|2.5\rPID|1\r"
        reply = Message.parse((await client.send(oru)).decode())
        assert reply.field("MSA", 1) == "AR" and reply.field("ERR", 3, component=1) == "200"
        # Not HL7 at all: AR.
        reply = Message.parse((await client.send(b"hello")).decode())
        assert reply.field("MSA", 1) == "AR"


async def test_clinician_page_and_board(service: Service, world: World) -> None:
    await world.receiver()
    order = await world.order()
    cv = await raise_value(service, order)
    r = await service.client.get("/api/critical-values/board", headers=service.headers("nurse"))
    assert r.status_code == 200
    item = next(i for i in r.json()["data"] if i["critical_id"] == cv["critical_id"])
    assert item["patient_name"] == "张*丰" and item["urgency"] in ("ok", "urgent") and item["seconds_left"] > 0
    page = await service.client.get("/ui/critical-values/")
    assert page.status_code == 200 and "危急值看板" in page.text
    page = await service.client.get(f"/ui/critical-values/ack/{cv['critical_id']}")
    assert page.status_code == 200
    r = await service.client.post(f"/api/critical-values/critical-values/{cv['critical_id']}/acknowledge",
                                  json={"action_taken": "已查看"},
                                  headers=service.headers("clinician", username="zhao.clinician"))
    assert r.status_code == 200, r.text
    assert r.json()["ack_channel"] == "page" and r.json()["acknowledged_by"] == "zhao.clinician"
    detail = (await service.client.get(f"/api/critical-values/critical-values/{cv['critical_id']}",
                                       headers=service.headers("radiologist"))).json()
    assert [e["action"] for e in detail["timeline"]][0] == "raised"
    assert "acknowledged" in [e["action"] for e in detail["timeline"]]
    r = await service.client.get("/api/critical-values/board", headers=service.headers("nurse"))
    assert cv["critical_id"] not in [i["critical_id"] for i in r.json()["data"]]


async def test_senior_confirmation_and_ai_findings(service: Service, world: World,
                                                  clinician_system: ClinicianSystem) -> None:
    await world.receiver()
    order = await world.order()
    cv = await raise_value(service, order, finding="主动脉夹层 Stanford A型", item_code="AOD")
    assert cv["state"] == "awaiting-confirmation" and cv["requires_confirmation"]
    await asyncio.sleep(0.4)
    assert not clinician_system.messages_for(cv["critical_id"])  # nothing leaves before confirmation
    url = f"/api/critical-values/critical-values/{cv['critical_id']}/confirm"
    r = await service.client.post(url, headers=service.headers("radiologist", username="other.radiologist"))
    assert r.status_code == 409 and r.json()["code"] == "senior-confirmation-required", r.text
    r = await service.client.post(url, headers=service.headers("senior-radiologist", username="chief"))
    assert r.status_code == 200 and r.json()["state"] == "notifying" and r.json()["confirmed_by"] == "chief"
    await delivered(world, cv["critical_id"])
    r = await service.client.post(url, headers=service.headers("senior-radiologist", username="chief"))
    assert r.status_code == 409

    # An AI result waits for a radiologist; a senior doctor may reject it.
    r = await service.client.post("/api/critical-values/ai-findings", json={
        "accession_number": order["accession_number"], "finding": "疑似肺栓塞", "item_code": "PE",
        "model": "ctpa-pe-v2", "score": 0.93}, headers=service.headers("radiologist", username="ai-platform"))
    assert r.status_code == 201, r.text
    ai = r.json()
    assert ai["source"] == "ai" and ai["state"] == "awaiting-confirmation" and ai["raised_by"] == "ai:ctpa-pe-v2"
    r = await service.client.post(f"/api/critical-values/critical-values/{ai['critical_id']}/reject",
                                  json={"reason": "充盈缺损为伪影"}, headers=service.headers("senior-radiologist"))
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    assert (await world.outbox(ai["critical_id"])) == ["critical.closed"]


async def test_roles_and_bad_input(service: Service, world: World) -> None:
    order = await world.order()
    url = "/api/critical-values/critical-values"
    body = {"accession_number": order["accession_number"], "finding": "气胸"}
    assert (await service.client.post(url, json=body)).status_code == 401
    assert (await service.client.post(url, json=body, headers=service.headers("clinician"))).status_code == 403
    assert (await service.client.get("/api/critical-values/stats", headers=service.headers("nurse"))).status_code == 403
    r = await service.client.post("/api/critical-values/dictionary/versions", json={"items": []},
                                  headers=service.headers("radiologist"))
    assert r.status_code == 403
    r = await service.client.post(url, json={"accession_number": "UNKNOWN-ACC", "finding": "x"},
                                  headers=service.headers("radiologist"))
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = await service.client.post(url, json={**body, "item_code": "NOPE"}, headers=service.headers("radiologist"))
    assert r.status_code == 422 and "NOPE" in r.json()["detail"]
    r = await service.client.post(url, json={"finding": ""}, headers=service.headers("radiologist"))
    assert r.status_code == 422
    r = await service.client.get(f"{url}/CV-none", headers=service.headers("radiologist"))
    assert r.status_code == 404


async def test_dictionary_versions(service: Service, world: World) -> None:
    admin = service.headers("admin")
    current = (await service.client.get("/api/critical-values/dictionary", headers=admin)).json()
    items = [{k: i[k] for k in ("code", "name", "name_en", "modalities", "category", "notify_minutes", "ack_minutes",
                                "requires_senior_confirmation", "active")} for i in current["items"]]
    items.append({"code": f"T{world.uid}", "name": f"测试危急值{world.uid}", "modalities": ["MR"], "category": 2,
                  "notify_minutes": 30, "ack_minutes": 60})
    r = await service.client.post("/api/critical-values/dictionary/versions", json={"items": items, "note": "add"},
                                  headers=admin)
    assert r.status_code == 201, r.text
    version = r.json()["version"]
    assert version == current["version"] + 1
    await world.receiver()
    order = await world.order(modality="MR")
    cv = await raise_value(service, order, finding=f"测试危急值{world.uid}")
    assert cv["item_code"] == f"T{world.uid}" and cv["dictionary_version"] == version and cv["category"] == 2
    old = (await service.client.get(f"/api/critical-values/dictionary?version={current['version']}",
                                    headers=admin)).json()
    assert f"T{world.uid}" not in [i["code"] for i in old["items"]]
    dup = items + [items[0]]
    r = await service.client.post("/api/critical-values/dictionary/versions", json={"items": dup}, headers=admin)
    assert r.status_code == 422
    r = await service.client.post("/api/critical-values/dictionary/versions", json={"items": [
        {**items[0], "category": 4}]}, headers=admin)
    assert r.status_code == 422


async def test_acknowledgement_while_a_message_is_in_flight(service: Service, world: World,
                                                            clinician_system: ClinicianSystem) -> None:
    """The page acknowledges while the sender holds a notification mid-send: no deadlock, no wait
    for the slow receiver; the in-flight message is still recorded as delivered afterwards."""
    await world.receiver(hl7=False, fhir_request=None)
    order = await world.order()
    clinician_system.fhir_delay = 1.5
    try:
        cv = await raise_value(service, order)

        async def in_flight() -> bool:  # being sent: marked, with no transaction holding it
            return bool(await world.pool.fetchval(
                "SELECT count(*) FROM notification n WHERE critical_id = $1 AND status = 'pending' AND "
                "sending_until > now()", cv["critical_id"]))
        await eventually(in_flight, interval=0.01)
        t0 = asyncio.get_running_loop().time()
        r = await service.client.post(f"/api/critical-values/critical-values/{cv['critical_id']}/acknowledge",
                                      json={}, headers=service.headers("clinician"))
        assert r.status_code == 200, r.text
        assert asyncio.get_running_loop().time() - t0 < 1.0
        [note] = await delivered(world, cv["critical_id"], 1)
        assert note["status"] == "accepted"
        row = await world.value(cv["critical_id"])
        assert row["state"] == "closed" and row["ack_channel"] == "page"
    finally:
        clinician_system.fhir_delay = 0.0


async def test_same_critical_id_twice_at_once_is_one_value(service: Service, world: World) -> None:
    await world.receiver(hl7=False, fhir_request=None)
    order = await world.order()
    cid = f"CV-dup-{world.uid}"
    body = {"accession_number": order["accession_number"], "finding": "张力性气胸", "critical_id": cid}
    rs = await asyncio.gather(*[service.client.post("/api/critical-values/critical-values", json=body,
                                                    headers=service.headers("radiologist")) for _ in range(4)])
    assert {r.status_code for r in rs} == {201} and {r.json()["critical_id"] for r in rs} == {cid}
    assert await world.pool.fetchval("SELECT count(*) FROM action_log WHERE critical_id = $1 AND action = 'raised'",
                                     cid) == 1
