"""Deadlines and escalation with small deadlines: a missed acknowledgement walks the chain
(repeat -> backup clinician -> phone task -> department head), each step timed, logged and
announced; a phone call's outcome closes the loop; failed delivery falls back to a phone task;
manual back-entry links a phone record; the 10-minute rate is computed correctly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from critical_values.domain import escalation, fallback, lifecycle
from critical_values.domain.lifecycle import Defaults, NewCritical

from .conftest import ClinicianSystem, Service, World, eventually, free_port

SHORT = 0.03  # minutes (1.8 s)


async def short_item(service: Service, world: World, *, ack_minutes: float = SHORT) -> str:
    admin = service.headers("admin")
    current = (await service.client.get("/api/critical-values/dictionary", headers=admin)).json()
    items = [{k: i[k] for k in ("code", "name", "name_en", "modalities", "category", "notify_minutes", "ack_minutes",
                                "requires_senior_confirmation", "active")} for i in current["items"]]
    code = f"FAST{world.uid}"
    items.append({"code": code, "name": f"快速测试{world.uid}", "category": 1, "notify_minutes": ack_minutes,
                  "ack_minutes": ack_minutes})
    r = await service.client.post("/api/critical-values/dictionary/versions", json={"items": items}, headers=admin)
    assert r.status_code == 201
    return code


async def test_missed_deadline_escalates_through_the_chain(service: Service, world: World,
                                                           clinician_system: ClinicianSystem) -> None:
    admin = service.headers("admin")
    r = await service.client.put("/api/critical-values/escalation-chain", json={"steps": [
        {"action": "repeat", "after_minutes": SHORT}, {"action": "backup-clinician", "after_minutes": SHORT},
        {"action": "phone-task", "after_minutes": SHORT}, {"action": "department-head", "after_minutes": SHORT}]},
        headers=admin)
    assert r.status_code == 200
    code = await short_item(service, world)
    await world.receiver(fhir_request=None)
    await world.roster("backup", "D002", "备班李医生")
    await world.roster("head", "D009", "主任周医生", phone="13900000009")
    order = await world.order()
    r = await service.client.post("/api/critical-values/critical-values", json={
        "accession_number": order["accession_number"], "finding": "急症", "item_code": code},
        headers=service.headers("radiologist"))
    cid = r.json()["critical_id"]

    async def head_notified() -> bool:
        return "department-head" in [e["detail"].get("step") for e in await timeline(world, cid)
                                     if e["action"] == "escalated"]
    await eventually(head_notified, within=20)
    log = await timeline(world, cid)
    steps = [(e["detail"]["step"], e["recipient"]) for e in log if e["action"] == "escalated"]
    assert steps == [("repeat", "王医生"), ("backup-clinician", "备班李医生"), ("phone-task", "王医生"),
                     ("department-head", "主任周医生")]
    # Each step timed: about SHORT minutes apart, never early.
    times = [e["at"] for e in log if e["action"] == "escalated"]
    for a, b in zip(times, times[1:], strict=False):
        assert (b - a).total_seconds() >= SHORT * 60 - 0.05
    assert all(e["detail"]["lateness_s"] < 2 for e in log if e["action"] == "escalated")

    def recipients_of(step: int) -> set[str]:
        return {m.field("PV1", 7, component=2) for m in clinician_system.messages_for(cid)
                if f"step={step};" in m.field("NTE", 3)}

    async def all_sent() -> bool:
        return bool(recipients_of(4))
    await eventually(all_sent)
    assert recipients_of(0) == {"王医生"} and recipients_of(1) == {"王医生"}
    assert recipients_of(2) == {"备班李医生"} and recipients_of(4) == {"主任周医生"}
    ids = [m.control_id for m in clinician_system.messages_for(cid)]
    assert len(ids) == len(set(ids))  # every message has its own stable identifier
    types = await world.outbox(cid)
    assert types.count("critical.escalated") == 4

    # The phone task: a human phones, reaches the doctor, who acknowledges.
    r = await service.client.get("/api/critical-values/phone-tasks", headers=service.headers("nurse"))
    [task] = [t for t in r.json()["data"] if t["critical_id"] == cid]
    assert task["reason"] == "not acknowledged in time" and task["call_whom"] == "王医生"
    r = await service.client.post(f"/api/critical-values/phone-tasks/{task['task_id']}/outcome", json={
        "outcome": "reached", "called_person": "王医生", "action_taken": "已处理"}, headers=service.headers("nurse"))
    assert r.status_code == 200 and r.json()["acknowledged"]
    row = await world.value(cid)
    assert row["ack_channel"] == "phone" and row["state"] == "closed" and row["escalation_level"] == 4
    r = await service.client.post(f"/api/critical-values/phone-tasks/{task['task_id']}/outcome", json={
        "outcome": "reached", "called_person": "王医生"}, headers=service.headers("nurse"))
    assert r.status_code == 409


async def timeline(world: World, cid: str) -> list[dict[str, Any]]:
    async with world.pool.acquire() as conn:
        return await lifecycle.timeline(conn, cid)


async def test_failed_delivery_falls_back_to_a_phone_task(service: Service, world: World) -> None:
    await world.receiver(fhir=False, hl7_port=free_port())  # nothing listens there
    order = await world.order()
    r = await service.client.post("/api/critical-values/critical-values", json={
        "accession_number": order["accession_number"], "finding": "消化道穿孔"}, headers=service.headers("radiologist"))
    cid = r.json()["critical_id"]

    async def task_created() -> Any:
        return await world.pool.fetchrow("SELECT * FROM phone_task WHERE critical_id = $1", cid)
    task = await eventually(task_created)
    assert "failed" in task["reason"]
    acts = await world.actions(cid)
    assert acts.count("delivery-retry") == 2 and "delivery-failed" in acts
    # Not given up: it stays queued on the slow schedule (IMAGING_CRITICAL_SLOW_RETRY_SECONDS).
    note = await world.pool.fetchrow("SELECT * FROM notification WHERE critical_id = $1", cid)
    assert note["status"] == "pending" and note["attempts"] >= 3


async def test_manual_back_entry_links_a_phone_record(service: Service, world: World) -> None:
    order = await world.order()
    called = datetime.now(UTC) - timedelta(minutes=3)
    nurse = service.headers("nurse", username="nurse.wu")
    # The system was down: staff phoned the ward and wrote it down; entered later.
    r = await service.client.post("/api/critical-values/manual-records", json={
        "accession_number": order["accession_number"], "finding": "张力性气胸", "called_person": "王医生",
        "called_at": called.isoformat(), "read_back": True, "action_taken": "胸穿减压"}, headers=nurse)
    assert r.status_code == 201
    record_id = r.json()["record_id"]
    # The critical value itself is back-entered with the time it was found.
    r = await service.client.post("/api/critical-values/critical-values", json={
        "accession_number": order["accession_number"], "finding": "张力性气胸",
        "raised_at": (called - timedelta(minutes=2)).isoformat()}, headers=service.headers("radiologist"))
    cid = r.json()["critical_id"]
    r = await service.client.get(f"/api/critical-values/manual-records?accession_number={order['accession_number']}",
                                 headers=nurse)
    [rec] = r.json()["data"]
    assert rec["candidates"] == [cid]
    other = await world.order()
    r = await service.client.post("/api/critical-values/critical-values", json={
        "accession_number": other["accession_number"], "finding": "气胸"}, headers=service.headers("radiologist"))
    r = await service.client.post(f"/api/critical-values/manual-records/{record_id}/link",
                                  json={"critical_id": r.json()["critical_id"]}, headers=nurse)
    assert r.status_code == 409  # a record about another exam is never linked
    r = await service.client.post(f"/api/critical-values/manual-records/{record_id}/link", json={"critical_id": cid},
                                  headers=nurse)
    assert r.status_code == 200 and r.json()["acknowledged"]
    row = await world.value(cid)
    assert row["ack_channel"] == "phone" and row["acknowledged_by"] == "王医生"
    # Recorded when it reached the system (deadlines, statistics); the call's own time kept as its claim.
    assert abs((row["acknowledged_claimed_at"] - called).total_seconds()) < 0.01
    assert row["acknowledged_claim_invalid"] is None  # after the (claimed) discovery, not in the future
    assert (datetime.now(UTC) - row["acknowledged_at"]).total_seconds() < 30
    assert abs((row["raised_claimed_at"] - (called - timedelta(minutes=2))).total_seconds()) < 0.01
    assert row["action_taken"] == "胸穿减压"
    assert "back-entry-linked" in await world.actions(cid)


async def test_ten_minute_rate(service: Service, world: World) -> None:
    """Six values of one department: 2 acknowledged within 10 min, 1 after 15 min, 1 still open after
    20 min, 1 raised 2 min ago (not counted yet), 1 rejected (not a critical value): rate 2/4."""
    now = datetime.now(UTC)
    defaults = Defaults()
    cases = [(-60, 4), (-50, 10), (-40, 15), (-20, None), (-2, None), (-30, "reject")]
    async with world.pool.acquire() as conn:
        for n, (raised_min, ack_after) in enumerate(cases):
            order = await world.order(doctor=f"医生{n % 2}")
            raised = now + timedelta(minutes=raised_min)
            async with conn.transaction():
                new = NewCritical(critical_id=f"STAT-{world.uid}-{n}", accession_number=order["accession_number"],
                                  patient=order["patient"], finding="气胸", raised_by="r1", raised_at=raised,
                                  source="ai" if ack_after == "reject" else "radiologist", modality="DX")
                await lifecycle.raise_critical(conn, new, defaults=defaults, at=raised)
                if ack_after == "reject":
                    await lifecycle.reject(conn, new.critical_id, by="chief", reason="伪影", at=raised)
                elif ack_after is not None:
                    await lifecycle.acknowledge(conn, new.critical_id, by="王医生", channel="fhir",
                                                at=raised + timedelta(minutes=ack_after))
    qc = service.headers("senior-radiologist")
    window = {"start": (now - timedelta(hours=2)).isoformat(), "end": (now + timedelta(minutes=1)).isoformat()}
    r = await service.client.get("/api/critical-values/stats", params={**window, "group_by": "department"},
                                 headers=qc)
    assert r.status_code == 200, r.text
    [row] = [x for x in r.json()["data"] if x["key"] == world.department]
    assert row["total"] == 5 and row["eligible"] == 4 and row["completed_within_window"] == 2
    assert row["rate_within_window"] == 0.5 and row["acknowledged"] == 3 and row["open"] == 2
    assert row["median_ack_seconds"] == 600.0
    r = await service.client.get("/api/critical-values/stats", params={**window, "group_by": "doctor", "format": "csv"},
                                 headers=qc)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0].startswith("key,total,eligible,completed_within_window,rate_within_window")
    assert any(line.startswith("医生0,") for line in lines)
    r = await service.client.get("/api/critical-values/stats", params={"group_by": "planet"}, headers=qc)
    assert r.status_code == 422


async def test_chain_validation(service: Service, world: World) -> None:
    r = await service.client.put("/api/critical-values/escalation-chain", json={"steps": [
        {"action": "pray", "after_minutes": 1}]}, headers=service.headers("admin"))
    assert r.status_code == 422
    async with world.pool.acquire() as conn:
        assert [s["action"] for s in await escalation.chain(conn)]
    assert fallback.OUTCOMES


async def test_on_call_recipient_and_missed_notification_deadline(service: Service, world: World) -> None:
    """No ordering doctor: the department's on-call doctor is the recipient. No clinician system
    serves the department: a phone task at once, and when the notification deadline passes
    undelivered, it is logged, escalated (phone) and announced."""
    code = await short_item(service, world)
    await world.roster("on-call", "D050", "值班孙医生", phone="13700000050")
    order = await world.order(doctor=None, doctor_id=None)
    r = await service.client.post("/api/critical-values/critical-values", json={
        "accession_number": order["accession_number"], "finding": "急症", "item_code": code},
        headers=service.headers("radiologist"))
    cv = r.json()
    assert cv["recipient_id"] == "D050" and cv["recipient_name"] == "值班孙医生"

    async def missed() -> bool:
        return "notify-deadline-missed" in await world.actions(cv["critical_id"])
    await eventually(missed, within=10)
    tasks = await world.pool.fetch("SELECT * FROM phone_task WHERE critical_id = $1 ORDER BY task_id",
                                   cv["critical_id"])
    assert [t["reason"] for t in tasks][:2] == ["no clinician system configured for the department",
                                               "not delivered to a clinician system in time"]
    assert tasks[0]["phone"] == "13700000050" and tasks[0]["call_whom"] == "值班孙医生"
    assert "critical.escalated" in await world.outbox(cv["critical_id"])


async def test_receiver_answering_ae_is_retried_then_phoned(service: Service, world: World,
                                                            clinician_system: ClinicianSystem) -> None:
    await world.receiver(fhir=False)
    order = await world.order()
    clinician_system.hl7_answer = "AE"
    try:
        r = await service.client.post("/api/critical-values/critical-values", json={
            "accession_number": order["accession_number"], "finding": "颅内出血"},
            headers=service.headers("radiologist"))
        cid = r.json()["critical_id"]

        async def budget_spent() -> Any:
            return await world.pool.fetchrow("SELECT * FROM notification WHERE critical_id = $1 AND attempts >= 3",
                                             cid)
        note = await eventually(budget_spent)
        assert note["status"] == "pending"
        assert "receiver answered AE" in note["last_error"] and "ward system busy" in note["last_error"]
        assert await world.pool.fetchval("SELECT count(*) FROM phone_task WHERE critical_id = $1", cid) == 1
    finally:
        clinician_system.hl7_answer = "AA"


async def test_report_amended_noted_on_the_timeline(service: Service, world: World) -> None:
    from critical_values.adapters.events import HANDLERS
    from imaging_common.events import CloudEvent, dispatch
    from imaging_common.events.types import PatientRef, ReportAmended

    order = await world.order()
    r = await service.client.post("/api/critical-values/critical-values", json={
        "accession_number": order["accession_number"], "finding": "气胸", "report_id": f"RPT-{world.uid}"},
        headers=service.headers("radiologist"))
    cid = r.json()["critical_id"]
    event = CloudEvent.from_data(ReportAmended(
        report_id=f"RPT-{world.uid}", version=2, previous_version=1, accession_number=order["accession_number"],
        patient=PatientRef(empi_id="E", patient_id=order["patient"]["patient_id"], name="张三丰"), kind="corrected",
        reason="左右侧笔误", signed_by="chief", signed_at=datetime.now(UTC)), source="/imaging/reporting")
    async with world.pool.acquire() as conn, conn.transaction():
        await dispatch(HANDLERS, conn, event)
    assert "report-amended" in await world.actions(cid)
