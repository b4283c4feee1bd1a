"""Timers live in the database: the service stops before a deadline, stays down past it, and a new
instance on the same database fires the missed escalation at once on start (catch-up); a message
re-sent after a crash carries the same identifier, so the receiver drops it. critical.raised and
order.created arrive through RabbitMQ."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from critical_values.app import create_app
from imaging_common.events.types import CriticalRaised, ExamItem, OrderCreated, PatientRef
from imaging_testing import asgi_client, event_producer

from .conftest import ClinicianSystem, Service, World, eventually, fast_settings
from .test_escalation import timeline

PRODUCER_SCHEMA = "critical_values_test_producer"


async def test_restart_in_the_middle_does_not_lose_a_timer(world: World, clinician_system: ClinicianSystem) -> None:
    settings = fast_settings()
    app = create_app(settings)
    async with asgi_client(app) as client:
        svc = Service(client, settings, app)
        r = await client.put("/api/critical-values/escalation-chain", json={"steps": [
            {"action": "repeat", "after_minutes": 0.05}, {"action": "phone-task", "after_minutes": 0.05}]},
            headers=svc.headers("admin"))
        assert r.status_code == 200
        from .test_escalation import short_item
        code = await short_item(svc, world, ack_minutes=0.05)  # 3 s
        await world.receiver(fhir=False)
        order = await world.order()
        r = await client.post("/api/critical-values/critical-values", json={
            "accession_number": order["accession_number"], "finding": "急症", "item_code": code},
            headers=svc.headers("radiologist"))
        cid = r.json()["critical_id"]
        await eventually(lambda: world.pool.fetchval(
            "SELECT first_notified_at FROM critical_value WHERE critical_id = $1", cid))
    # Down: nothing runs while the deadline passes.
    due = await world.pool.fetchval("SELECT ack_due_at FROM critical_value WHERE critical_id = $1", cid)
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 1.5)
    assert "escalated" not in await world.actions(cid)

    app2 = create_app(fast_settings())
    started = datetime.now(UTC)
    async with asgi_client(app2):
        async def escalated() -> bool:
            return "escalated" in await world.actions(cid)
        await eventually(escalated, within=10)
        [step] = [e for e in await timeline(world, cid) if e["action"] == "escalated"]
        assert step["detail"]["step"] == "repeat" and step["detail"]["lateness_s"] >= 1.5  # late: we were down
        assert (step["at"] - started).total_seconds() < 2  # caught up at once on start

        async def repeated() -> bool:
            return any("step=1;" in m.field("NTE", 3) for m in clinician_system.messages_for(cid))
        await eventually(repeated)
        # A crash after sending but before recording: the row is pending again and is re-sent with
        # the same identifier; the receiver recognises and drops the duplicate.
        before = clinician_system.duplicates
        await world.pool.execute("UPDATE notification SET status = 'pending', next_attempt_at = now() "
                                 "WHERE critical_id = $1 AND step = 0", cid)
        app2.state.ctx.extras["engine"].wake()
        await eventually(lambda: world.pool.fetchval(
            "SELECT status = 'accepted' FROM notification WHERE critical_id = $1 AND step = 0", cid))
        assert clinician_system.duplicates == before + 1
        assert len([m for m in clinician_system.messages_for(cid) if "step=0;" in m.field("NTE", 3)]) == 1


@pytest.fixture(scope="module")
async def producer(test_env: dict[str, str]) -> AsyncIterator[Any]:
    """Another service's outbox and relay (reporting), publishing onto the session's exchange."""
    async with event_producer(test_env["DATABASE_URL"], service="reporting", schema=PRODUCER_SCHEMA) as emit:
        yield emit


async def test_order_and_critical_raised_through_rabbitmq(producer: Any, world: World,
                                                          clinician_system: ClinicianSystem) -> None:
    app = create_app(fast_settings())
    async with asgi_client(app):
        await world.receiver(fhir=False)
        acc = f"ACC-MQ-{world.uid}"
        patient = PatientRef(empi_id=f"E{world.uid}", patient_id=f"P{world.uid}", name="李四", sex="F")
        await producer(OrderCreated(
            order_id=f"O{world.uid}", accession_number=acc, requested_procedure_id="RP1", study_instance_uid="1.2.3",
            patient=patient, patient_class="inpatient", ward="心内一病区", ordering_doctor="陈医生",
            ordering_doctor_id="D777", ordering_department=world.department,
            items=[ExamItem(code="CT-CHEST", name="胸部CT", modality="CT")], ordered_at=datetime.now(UTC)), acc)
        await eventually(lambda: world.pool.fetchval("SELECT 1 FROM order_info WHERE accession_number = $1", acc))
        cid = f"CR-{world.uid}"
        raised = CriticalRaised(critical_id=cid, accession_number=acc, patient=patient, finding="肺栓塞",
                                item_code="CV-PE", modality="CT", report_id="R1", raised_by="dr.li",
                                raised_at=datetime.now(UTC), confirmed_by_senior=True)
        t0 = time.monotonic()
        await producer(raised, acc)
        await producer(raised, acc)  # a duplicate event changes nothing

        async def sent() -> bool:
            return bool(clinician_system.messages_for(cid))
        await eventually(sent)
        row = await world.value(cid)
        assert row["item_code"] == "PE" and row["recipient_name"] == "陈医生" and row["ward"] == "心内一病区"
        assert row["state"] in ("notifying", "notified")
        assert time.monotonic() - t0 < 10
        assert await world.pool.fetchval("SELECT count(*) FROM critical_value WHERE critical_id = $1", cid) == 1
        # A code we do not know, from another system: judged by the text, never dropped.
        other = raised.model_copy(update={"critical_id": f"CR2-{world.uid}", "item_code": "VENDOR-X",
                                          "finding": "主动脉夹层", "confirmed_by_senior": False})
        await producer(other, acc)
        row = await eventually(lambda: world.value(f"CR2-{world.uid}"))
        assert row["item_code"] == "AOD" and row["state"] == "awaiting-confirmation"
