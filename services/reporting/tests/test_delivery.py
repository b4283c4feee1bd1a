"""Delivery end to end: a report signed, then amended, arrives at a real MLLP receiver as ORU^R01
(OBR-25 P, F, then C; W when withdrawn) and at a real FHIR server as DiagnosticReport
(preliminary, final, then corrected / amended; entered-in-error), Chinese intact; a receiver that
refuses is retried until it acknowledges; one that never does ends dead, visibly, and can be retried."""

from __future__ import annotations

import base64
import json

import asyncpg
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from imaging_common.hl7 import Message
from imaging_testing.fhir import r4b

from .conftest import CONTENT, Service, World
from .peers import hl7_receiver, wait_for


def statuses(svc: Service, acc: str) -> list[str]:
    return [m.field("OBR", 25) for m in svc.hl7.for_accession(acc)]


async def test_sign_then_amend_reaches_hl7_and_fhir(service: Service, world: World) -> None:
    svc = service
    rad = svc.auth("radiologist", username=f"rad-{world.tag}")
    senior = svc.auth("senior-radiologist", username=f"senior-{world.tag}")
    clinician = svc.auth("clinician", username=f"clin-{world.tag}")
    acc = await world.exam(sex="F")
    content = {**CONTENT, "fields": {}}
    prelim = await world.step(acc, "preliminary", rad, content=content)
    report_id = prelim["report_id"]
    await world.step(acc, "final", senior)
    await wait_for(lambda: statuses(svc, acc) == ["P", "F"])
    await wait_for(lambda: len([h for h in svc.fhir.history if h["id"] == report_id]) == 2)

    oru = svc.hl7.for_accession(acc)[-1]
    assert oru.type == ("ORU", "R01", "ORU_R01") and oru.version == "2.5.1"
    assert oru.field("PID", 5, component=1) == "张三" and oru.field("PID", 8) == "F"
    assert oru.field("OBX", 5) == CONTENT["findings"] and oru.field("OBX", 11) == "F"
    assert oru.field("OBR", 32).endswith(f"senior-{world.tag}")
    fhir_final = svc.fhir.resources[f"DiagnosticReport/{report_id}"]
    assert fhir_final["status"] == "final" and fhir_final["conclusion"] == CONTENT["impression"]
    assert "影像表现" in base64.b64decode(fhir_final["presentedForm"][0]["data"]).decode()

    # Amendment with a reason; the corrected version replaces the final one everywhere.
    r = await svc.client.post(f"/api/reporting/reports/{report_id}/amendments", headers=clinician,
                              json={"kind": "corrected", "reason": "侧别错误：应为左肺"})
    assert r.status_code == 200, r.text
    r = await svc.client.post(f"/api/reporting/reports/{report_id}/amendments/review", headers=senior,
                              json={"approve": True, "note": "同意更正"})
    corrected = {**content, "findings": "左肺上叶见一结节，大小约12mm，边界清楚。",
                 "impression": "左肺上叶结节，建议随访。"}
    await world.step(acc, "save", senior, content=corrected)
    signed = await world.step(acc, "sign-amended", senior)
    assert signed["deliveries"] == 2
    await wait_for(lambda: statuses(svc, acc) == ["P", "F", "C"])
    await wait_for(lambda: svc.fhir.resources[f"DiagnosticReport/{report_id}"]["status"] == "corrected")
    oru_c = svc.hl7.for_accession(acc)[-1]
    assert oru_c.field("OBX", 5) == corrected["findings"] and oru_c.field("OBX", 11) == "C"
    fhir_c = svc.fhir.resources[f"DiagnosticReport/{report_id}"]
    assert fhir_c["conclusion"] == corrected["impression"]
    assert any(e.get("valueString") == "侧别错误：应为左肺" for e in fhir_c.get("extension", []))

    # Our FHIR read API shows the same, and the history keeps the reason.
    r = await svc.client.get(f"/fhir/R4/DiagnosticReport/{report_id}", headers=clinician)
    assert r4b(r, resource_type="DiagnosticReport")["status"] == "corrected"
    r = await svc.client.get(f"/fhir/R4/DiagnosticReport?identifier={acc}", headers=clinician)
    found = r4b(r, resource_type="Bundle")
    assert found["total"] == 1 and found["entry"][0]["fullUrl"].endswith(f"/fhir/R4/DiagnosticReport/{report_id}")
    r = await svc.client.get(f"/fhir/R4/DiagnosticReport?patient=Patient/{fhir_c['subject']['identifier']['value']}",
                             headers=clinician)
    assert report_id in [e["resource"]["id"] for e in r4b(r, resource_type="Bundle")["entry"]]
    # Errors are OperationOutcomes; the former base redirects.
    r4b(await svc.client.get(f"/fhir/R4/DiagnosticReport/{report_id}"), status=401)
    r4b(await svc.client.get("/fhir/R4/DiagnosticReport", headers=clinician), status=400)
    moved = await svc.client.get(f"/api/reporting/fhir/DiagnosticReport?identifier={acc}", headers=clinician)
    assert moved.status_code == 308 and moved.headers["location"] == f"/fhir/R4/DiagnosticReport?identifier={acc}"
    history = (await svc.client.get(f"/api/reporting/reports/{report_id}/amendments", headers=senior)).json()
    assert history["data"][0]["reason"] == "侧别错误：应为左肺" and history["data"][0]["status"] == "completed"

    # report.signed and report.amended went out through the outbox.
    async with svc.ctx.pool.acquire() as conn:
        types = [r["type"] for r in await conn.fetch(
            "SELECT type FROM outbox WHERE envelope->>'subject' = $1 ORDER BY seq", acc)]
    assert types == ["report.signed", "report.amended"]
    # For the department's statistics (dashboard): the positive call, the preliminary and its agreement.
    signed_data = json.loads(await svc.ctx.pool.fetchval(
        "SELECT envelope->>'data' FROM outbox WHERE envelope->>'subject' = $1 AND type = 'report.signed'", acc))
    assert signed_data["positive"] is True and signed_data["preliminary_by"] == f"rad-{world.tag}"
    assert signed_data["preliminary_at"] and signed_data["preliminary_kept"] is True

    # Withdrawn: W to the HIS, entered-in-error at the FHIR endpoint.
    await world.step(acc, "withdraw", senior, note="检查号错误")
    await wait_for(lambda: statuses(svc, acc) == ["P", "F", "C", "W"])
    await wait_for(lambda: svc.fhir.resources[f"DiagnosticReport/{report_id}"]["status"] == "entered-in-error")
    # Every Bundle pushed (preliminary, final, corrected, withdrawn) parsed with the R4B models.
    assert not svc.fhir.refused, svc.fhir.refused
    assert len([h for h in svc.fhir.history if h["id"] == report_id]) == 4


async def test_oru_is_valid_hl7_v251(service: Service, world: World) -> None:
    """hl7apy's strict v2.5.1 parser accepts the ORU we build fast (it is too slow for the hot path)."""
    svc = service
    rad = svc.auth("radiologist", username=f"rad-{world.tag}")
    acc = await world.exam()
    prelim = await world.step(acc, "preliminary", rad, content=CONTENT)
    r = await svc.client.get(f"/api/reporting/reports/{prelim['report_id']}/oru?validate=true", headers=rad)
    assert r.status_code == 200, r.text
    er7 = r.text.replace("\n", "\r")
    parsed = parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert parsed.msh.msh_9.to_er7() == "ORU^R01^ORU_R01"
    assert Message.parse(er7).field("OBR", 25) == "P"


async def test_gb18030_receiver_and_retry_until_ack(service: Service, world: World) -> None:
    svc = service
    admin = svc.auth("admin", username="admin")
    async with hl7_receiver(default_charset="gb18030") as gb:
        gb.reject_next = 2  # answers AE twice: retried with backoff until AA
        r = await svc.client.put(f"/api/reporting/receivers/gb-{world.tag}", headers=admin, json={
            "kind": "hl7", "name": "GB HIS", "host": "127.0.0.1", "port": gb.port, "charset": "gb18030"})
        assert r.status_code == 200
        try:
            acc = await world.exam(name="欧阳娜娜")
            rad = svc.auth("radiologist", username=f"rad-{world.tag}")
            await world.step(acc, "preliminary", rad, content=CONTENT)
            await wait_for(lambda: gb.for_accession(acc))
            raw = gb.raw[-1]
            assert b"GB 18030-2000" in raw and "欧阳娜娜".encode("gb18030") in raw
            assert "欧阳娜娜".encode() not in raw  # not UTF-8 on this wire
            assert gb.for_accession(acc)[0].field("PID", 5, component=1) == "欧阳娜娜"

            async def delivered() -> asyncpg.Record | None:  # the ACK is recorded just after the handler ran
                async with svc.ctx.pool.acquire() as conn:
                    return await conn.fetchrow("SELECT status, attempts FROM delivery WHERE receiver_id = $1 "
                                               "AND status = 'delivered'", f"gb-{world.tag}")

            await wait_for(delivered)
            assert (await delivered())["attempts"] == 3  # type: ignore[index]
        finally:
            await svc.client.put(f"/api/reporting/receivers/gb-{world.tag}", headers=admin, json={
                "kind": "hl7", "name": "GB HIS", "host": "127.0.0.1", "port": gb.port, "enabled": False})


async def test_unreachable_receiver_goes_dead_and_can_be_retried(service: Service, world: World) -> None:
    svc = service
    ops = svc.auth("it-ops", username="ops")
    from imaging_testing import free_port

    port = free_port()  # nobody listens here (yet)
    receiver_id = f"down-{world.tag}"
    r = await svc.client.put(f"/api/reporting/receivers/{receiver_id}", headers=ops, json={
        "kind": "hl7", "name": "Down HIS", "host": "127.0.0.1", "port": port})
    assert r.status_code == 200
    try:
        acc = await world.exam()
        await world.step(acc, "preliminary", svc.auth("radiologist", username=f"rad-{world.tag}"), content=CONTENT)

        async def dead() -> list[dict]:
            body = (await svc.client.get("/api/reporting/deliveries?status=dead", headers=ops)).json()
            return [d for d in body["data"] if d["receiver_id"] == receiver_id]

        await wait_for(dead, timeout=20)
        row = (await dead())[0]
        assert row["attempts"] == svc.settings.reporting_delivery_max_attempts and "Connect" in row["last_error"]
        assert (await svc.client.get("/api/reporting/deliveries", headers=svc.auth("radiologist"))).status_code == 403
        # The HIS comes back; an operator re-queues the dead delivery and it is acknowledged.
        from imaging_common.hl7 import MessageService, MLLPServer

        from .peers import HL7Receiver

        back = HL7Receiver()
        async with MLLPServer(MessageService(back.handle), "127.0.0.1", port):
            r = await svc.client.post(f"/api/reporting/deliveries/{row['id']}/retry", headers=ops)
            assert r.status_code == 200
            await wait_for(lambda: back.for_accession(acc))
        r = await svc.client.post(f"/api/reporting/deliveries/{row['id']}/retry", headers=ops)
        assert r.status_code == 404  # not dead any more
    finally:
        await svc.client.put(f"/api/reporting/receivers/{receiver_id}", headers=ops, json={
            "kind": "hl7", "name": "Down HIS", "host": "127.0.0.1", "port": port, "enabled": False})


async def test_fhir_endpoint_errors_retry_or_dead(service: Service, world: World) -> None:
    """503 is retried until accepted; a 4xx (here: no such endpoint) is dead at once — retrying cannot fix it."""
    svc = service
    ops = svc.auth("it-ops", username="ops")
    r = await svc.client.put(f"/api/reporting/receivers/bad-{world.tag}", headers=ops,
                             json={"kind": "hl7", "name": "x"})
    assert r.status_code == 422 and r.json()["code"] == "receiver-hl7-address", r.text
    r = await svc.client.put(f"/api/reporting/receivers/bad-{world.tag}", headers=ops,
                             json={"kind": "fhir", "name": "x", "url": "ftp://nope"})
    assert r.status_code == 422
    receiver_id = f"lost-{world.tag}"
    r = await svc.client.put(f"/api/reporting/receivers/{receiver_id}", headers=ops,
                             json={"kind": "fhir", "name": "Wrong path", "url": svc.fhir.url + "/no-such-base"})
    assert r.status_code == 200
    try:
        svc.fhir.fail_next = 1
        acc = await world.exam()
        prelim = await world.step(acc, "preliminary", svc.auth("radiologist", username=f"rad-{world.tag}"),
                                  content=CONTENT)
        await wait_for(lambda: f"DiagnosticReport/{prelim['report_id']}" in svc.fhir.resources)

        async def rows() -> dict[str, dict]:
            body = (await svc.client.get(f"/api/reporting/deliveries?report_id={prelim['report_id']}",
                                         headers=ops)).json()
            return {d["receiver_id"]: d for d in body["data"]}

        await wait_for(lambda: _settled(rows))
        found = await rows()
        assert found["test-emr"]["status"] == "delivered" and found["test-emr"]["attempts"] == 2
        assert found[receiver_id]["status"] == "dead" and found[receiver_id]["attempts"] == 1
        assert "HTTP 404" in found[receiver_id]["last_error"]
    finally:
        await svc.client.put(f"/api/reporting/receivers/{receiver_id}", headers=ops, json={
            "kind": "fhir", "name": "Wrong path", "url": svc.fhir.url + "/no-such-base", "enabled": False})


async def _settled(rows) -> bool:  # type: ignore[no-untyped-def]
    found = await rows()
    return all(d["status"] in ("delivered", "dead") for d in found.values()) and len(found) >= 3
