"""Events in (order.created, exam.completed through RabbitMQ build the worklist), critical findings
out at once (critical.raised, even for a draft), priors, statistics, the page, FHIR Observations."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from imaging_common.events import publish
from imaging_common.events.types import ExamCompleted, ExamItem, OrderCancelled, OrderCreated, PatientRef
from imaging_testing.fhir import r4b
from reporting.domain import exams

from .conftest import CONTENT, Service, World
from .peers import wait_for


async def test_order_and_exam_events_through_rabbitmq_fill_the_worklist(service: Service, world: World) -> None:
    svc = service
    acc = f"EV{world.tag}"
    patient = PatientRef(empi_id=f"EE{world.tag}", patient_id=f"PE{world.tag}", name="王五", sex="M")
    order = OrderCreated(order_id=f"OE{world.tag}", accession_number=acc, requested_procedure_id="R1",
                         study_instance_uid=f"1.2.3.{int(world.tag, 16)}", patient=patient,
                         ordering_department="急诊科",
                         items=[ExamItem(code="DX-CHEST", name="胸部正位片", modality="DX", body_part="CHEST")],
                         priority="stat", ordered_at=datetime.now(UTC))
    done = ExamCompleted(accession_number=acc, study_instance_uid=order.study_instance_uid, patient=patient,
                         mpps_uid="1.2.3.4", station_ae_title="DX1", modality="DX", completed_at=datetime.now(UTC))
    # Published through this service's own outbox: relay -> RabbitMQ -> our queue -> handler (inbox).
    async with svc.ctx.pool.acquire() as conn:
        async with conn.transaction():
            await publish(conn, order, source="/imaging/registration", subject=acc)
        async with conn.transaction():
            await publish(conn, done, source="/imaging/worklist", subject=acc)
    rad = svc.auth("radiologist", username=f"rad-{world.tag}")

    async def listed() -> bool:
        body = (await svc.client.get("/api/reporting/worklist?modality=DX", headers=rad)).json()
        return any(row["accession_number"] == acc for row in body["data"])

    await wait_for(listed, timeout=20)
    body = (await svc.client.get("/api/reporting/worklist?modality=DX", headers=rad)).json()
    row = next(r for r in body["data"] if r["accession_number"] == acc)
    assert row["report_state"] == "none" and row["priority"] == "stat" and row["exam_name"] == "胸部正位片"
    assert (await svc.client.get("/api/reporting/worklist", headers=svc.auth("clerk"))).status_code == 403
    async with svc.ctx.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id IN "
                                   "(SELECT event_id FROM outbox WHERE envelope->>'subject' = $1)", acc) == 2
        audited = await conn.fetchval("SELECT count(*) FROM audit.audit_log WHERE actor = $1 AND entity = 'worklist'",
                                      f"rad-{world.tag}")
    assert audited >= 1

    # The order cancelled (over RabbitMQ too): the exam leaves the worklist and a late exam.completed
    # does not bring it back; a cancel that comes before its order wins as well.
    async with svc.ctx.pool.acquire() as conn, conn.transaction():
        await publish(conn, OrderCancelled(order_id=order.order_id, accession_number=acc, reason="重复开单"),
                      source="/imaging/registration", subject=acc)

    async def gone() -> bool:
        body = (await svc.client.get("/api/reporting/worklist?modality=DX", headers=rad)).json()
        return not any(row["accession_number"] == acc for row in body["data"])

    await wait_for(gone, timeout=20)
    early = f"EW{world.tag}"
    async with svc.ctx.pool.acquire() as conn, conn.transaction():
        await exams.apply_order_cancelled(conn, OrderCancelled(order_id="O-early", accession_number=early))
        await exams.apply_order_created(conn, order.model_copy(update={"accession_number": early}))
        await exams.apply_exam_completed(conn, done.model_copy(update={"accession_number": early}))
        await exams.apply_exam_completed(conn, done)
        assert await conn.fetchval("SELECT status FROM exam WHERE accession_number = $1", early) == "cancelled"
        assert await conn.fetchval("SELECT status FROM exam WHERE accession_number = $1", acc) == "cancelled"


async def test_critical_finding_raised_at_once_on_a_draft(service: Service, world: World) -> None:
    svc = service
    ai_name = f"ai-{world.tag}"
    await svc.client.put(f"/api/reporting/reporters/{ai_name}", headers=svc.auth("admin"), json={"kind": "ai"})
    ai = svc.auth("radiologist", username=ai_name)
    acc = await world.exam()
    content = {"findings": "右侧见张力性气胸，纵隔左移。", "impression": "右侧张力性气胸。"}
    saved = await world.step(acc, "save", ai, content=content)
    assert saved["state"] == "draft" and saved["critical_raised"] == ["张力性气胸"]
    again = await world.step(acc, "save", ai, content=content)
    assert again["critical_raised"] == []  # one finding, raised once
    rad = svc.auth("radiologist", username=f"rad-{world.tag}")
    marked = await world.step(acc, "save", rad, content={**content, "fields": {}}, expect=200)
    assert marked["critical_raised"] == []
    negated = await world.exam(2)
    assert (await world.step(negated, "save", rad, content={"findings": "未见肺栓塞征象。", "impression": "阴性"}
                             ))["critical_raised"] == []

    async def relayed() -> list[dict]:
        async with svc.ctx.pool.acquire() as conn:
            rows = await conn.fetch("SELECT envelope, published_at FROM outbox WHERE type = 'critical.raised' "
                                    "AND envelope->>'subject' = $1", acc)
        return [r for r in rows if r["published_at"] is not None]

    await wait_for(relayed, timeout=10)  # confirmed by RabbitMQ
    envelope = json.loads((await relayed())[0]["envelope"])
    assert envelope["data"]["finding"] == "张力性气胸" and envelope["data"]["source"] == "dictionary"
    assert envelope["data"]["raised_by"] == f"ai:{ai_name}" and envelope["data"]["item_code"] == "CV-PTX"
    body = (await svc.client.get(f"/api/reporting/reports/{saved['report_id']}", headers=rad)).json()
    assert body["critical"] is True and body["critical_findings"][0]["finding"] == "张力性气胸"


async def test_priors_statistics_page_and_observations(service: Service, world: World) -> None:
    svc = service
    rad = svc.auth("radiologist", username=f"rad-{world.tag}")
    senior = svc.auth("senior-radiologist", username=f"senior-{world.tag}")
    empi = f"EP{uuid.uuid4().hex[:6]}"
    old = await world.exam(1, empi=empi)
    await world.step(old, "preliminary", rad, content=CONTENT)
    await world.step(old, "final", senior)
    new = await world.exam(2, empi=empi)
    view = (await svc.client.get(f"/api/reporting/exams/{new}", headers=rad)).json()
    assert [p["accession_number"] for p in view["priors"]] == [old]
    assert view["priors"][0]["impression"] == CONTENT["impression"]
    assert view["allowed_actions"] == ["preliminary", "save"]

    content = {**CONTENT, "positive": False,
               "fields": {"size": {"value": 7, "unit": "mm"}, "kind": {"value": "solid", "critical": True}}}
    rid = (await world.step(new, "preliminary", rad, content=content))["report_id"]
    await world.step(new, "final", senior)
    r = await svc.client.get(f"/fhir/R4/Observation/{rid}-size", headers=svc.auth("clinician"))
    assert r4b(r, resource_type="Observation")["valueQuantity"] == {
        "value": 7, "unit": "mm", "system": "http://unitsofmeasure.org", "code": "mm"}
    r = await svc.client.get(f"/fhir/R4/Observation/{rid}-kind", headers=svc.auth("clinician"))
    assert r4b(r, resource_type="Observation")["interpretation"][0]["coding"][0]["code"] == "AA"
    r4b(await svc.client.get(f"/fhir/R4/Observation/{rid}-none", headers=svc.auth("clinician")), status=404)
    r = await svc.client.get(f"/fhir/R4/DiagnosticReport/{rid}", headers=svc.auth("clerk"))
    assert r4b(r, status=403)["issue"][0]["code"] == "forbidden"
    report = r4b(await svc.client.get(f"/fhir/R4/DiagnosticReport/{rid}", headers=svc.auth("clinician")),
                 resource_type="DiagnosticReport")
    assert {f"Observation/{rid}-size", f"Observation/{rid}-kind"} <= {o["reference"] for o in report["result"]}

    third = await world.exam(3, empi=empi)
    await world.step(third, "preliminary", rad, content=CONTENT)
    await world.step(third, "final", senior, content=None)
    await world.step(await world.exam(4, empi=empi), "preliminary", rad, content=CONTENT)
    changed = await world.exam(5, empi=empi)
    await world.step(changed, "preliminary", rad, content=CONTENT)
    await world.step(changed, "save", senior, content={**CONTENT, "impression": "右肺上叶结节，考虑肺癌。"})
    await world.step(changed, "final", senior)

    stats = await svc.client.get("/api/reporting/statistics", headers=senior)
    assert stats.status_code == 200
    body = stats.json()
    ct = next(t for t in body["turnaround"] if t["modality"] == "CT")
    assert ct["reports"] >= 4 and ct["exam_to_final_p50_s"] >= 0
    doctor = next(d for d in body["positive_rate_by_doctor"] if d["doctor"] == f"rad-{world.tag}")
    assert doctor["judged"] == 4 and doctor["positive"] == 3 and doctor["positive_rate"] == 75.0
    assert body["amendments"]["final_reports"] >= 2
    agreement = next(d for d in body["review_agreement_by_doctor"] if d["doctor"] == f"rad-{world.tag}")
    assert agreement == {"doctor": f"rad-{world.tag}", "reviewed": 4, "kept": 3, "agreement_rate": 75.0}
    assert (await svc.client.get("/api/reporting/statistics", headers=rad)).status_code == 403

    # the page, its script calling the API, and the shared shell sending the bearer token
    page = await svc.client.get("/ui/reporting/")
    assert page.status_code == 200 and "/ui/reporting/static/reporting.js" in page.text
    script = await svc.client.get("/ui/reporting/static/reporting.js")
    shell = await svc.client.get("/ui/reporting/common/shell.js")
    assert script.status_code == 200 and "/api/reporting" in script.text
    assert shell.status_code == 200 and "Bearer" in shell.text


async def test_template_option_marks_a_critical_finding(service: Service, world: World) -> None:
    svc = service
    senior = svc.auth("senior-radiologist", username=f"senior-{world.tag}")
    tid = f"HEAD-{world.tag}"
    template = {"id": tid, "name": "头颅CT", "modality": "CT", "body_part": "HEAD", "definition": {"fields": [
        {"id": "bleed", "label": "颅内出血", "type": "choice", "options": ["无", "少量", "大量"],
         "critical_values": ["大量"]}]}}
    assert (await svc.client.put(f"/api/reporting/templates/{tid}", headers=svc.auth("radiologist"),
                                 json=template)).status_code == 403
    r = await svc.client.put(f"/api/reporting/templates/{tid}", headers=senior, json=template)
    assert r.status_code == 200, r.text
    bad = {**template, "definition": {"fields": [{"id": "x", "label": "x", "type": "choice", "options": ["a", "a"]}]}}
    assert (await svc.client.put(f"/api/reporting/templates/{tid}", headers=senior, json=bad)).status_code == 422
    rad = svc.auth("radiologist", username=f"rad-{world.tag}")
    acc = await world.exam(modality="CT", body_part="HEAD")
    calm = await world.step(acc, "save", rad, template_id=tid,
                            content={"findings": "脑实质未见异常密度。", "impression": "未见异常。",
                                     "fields": {"bleed": {"value": "无"}}})
    assert calm["critical_raised"] == []
    await world.step(acc, "save", rad, content={"findings": "左侧基底节区见高密度影。",
                                                "impression": "左侧基底节区出血。",
                                                "fields": {"bleed": {"value": "大量"}}})
    body = (await svc.client.get(f"/api/reporting/reports/{calm['report_id']}", headers=rad)).json()
    assert [c["finding"] for c in body["critical_findings"]] == ["颅内出血: 大量"]
    assert body["critical_findings"][0]["source"] == "radiologist"
