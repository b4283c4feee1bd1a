"""Order status updates to the HIS (docs/hl7-interface.md), end to end: the HIS orders over real MLLP,
scheduling and the worklist publish appointment.booked / exam.started / exam.completed through their
own outboxes and RabbitMQ, registration's consumer records the exam's status, and its worker sends
ORM^O01 ORC-1 SC (ORC-5 SC, IP, CM, DC) or OC to a stub HIS listening on MLLP, in order per order,
retrying an AE, never retrying an AR; the FHIR ServiceRequest follows, read over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentInfo,
    AppointmentRescheduled,
    EventData,
    ExamCompleted,
    ExamStarted,
    PatientRef,
)
from imaging_common.hl7 import Message
from imaging_common.hl7.ack import build_ack
from imaging_common.hl7.mllp import MLLPClient, MLLPServer
from imaging_testing import asgi_client, event_producer, eventually, free_port
from imaging_testing.fhir import r4b
from registration.app import create_app
from registration.settings import Settings
from regtest_helpers import auth, rid, uname

SCHEDULING = f"his_status_scheduling_{uuid.uuid4().hex[:6]}"
WORKLIST = f"his_status_worklist_{uuid.uuid4().hex[:6]}"


class StubHis:
    """The HIS's MLLP listener for status updates: records every ORM it receives (resends too) and
    answers AA, or what `answers[placer]` says next (e.g. ["AE"] once, ["AR"])."""

    def __init__(self) -> None:
        self.received: dict[str, list[Message]] = defaultdict(list)  # placer number -> messages, in order
        self.answers: dict[str, list[str]] = {}

    async def __call__(self, payload: bytes, _peer: tuple[str, int]) -> bytes:
        message = Message.parse(payload.decode("utf-8"))
        placer = message.field("ORC", 2, component=1)
        self.received[placer].append(message)
        script = self.answers.get(placer) or []
        code = script.pop(0) if script else "AA"
        return build_ack(message, code, sending_app="HIS", sending_facility="HOSP",
                         text="" if code == "AA" else f"stub says {code}").to_er7().encode()

    def statuses(self, placer: str) -> list[tuple[str, str]]:
        return [(m.field("ORC", 1), m.field("ORC", 5)) for m in self.received[placer]]


@pytest.fixture(scope="module")
async def his(settings_for, test_env):
    stub = StubHis()
    async with MLLPServer(stub, "127.0.0.1", 0) as server:
        settings = settings_for(Settings, mllp_enabled=True, mllp_host="127.0.0.1", mllp_port=free_port(),
                                his_status_host="127.0.0.1", his_status_port=server.port,
                                his_status_application="HIS", his_status_facility="HOSP",
                                his_status_retry_base=0.3, his_status_retry_max=1.0, his_status_poll=0.5)
        app = create_app(settings)
        async with asgi_client(app) as client, \
                event_producer(test_env["DATABASE_URL"], service="scheduling", schema=SCHEDULING) as book, \
                event_producer(test_env["DATABASE_URL"], service="worklist", schema=WORKLIST) as perform:
            ctx = app.state.ctx
            async with MLLPClient("127.0.0.1", ctx.extras["mllp_port"], timeout=20) as feed:
                yield {"stub": stub, "server": server, "client": client, "pool": ctx.pool, "settings": settings,
                       "feed": feed, "book": book, "perform": perform}


async def _emit(h: dict[str, Any], producer: str, data: EventData, subject: str) -> None:
    """Publish through that service's outbox and RabbitMQ; wait until registration's consumer took it."""
    schema = SCHEDULING if producer == "book" else WORKLIST
    await h[producer](data, subject)
    pool = h["pool"]
    event_id = await pool.fetchval(f'SELECT event_id FROM "{schema}".outbox ORDER BY seq DESC LIMIT 1')
    await eventually(lambda: pool.fetchval("SELECT 1 FROM inbox WHERE event_id = $1", event_id),
                     f"registration consuming {data.type}")


async def _his_orders(h: dict[str, Any], placer: str, his_id: str, control: str = "NW",
                     name: str | None = None) -> Message:
    """The HIS's ORM^O01 over MLLP (a patient of a rare random name unless told: tests share one EMPI)."""
    if name is None:
        random_name = uname()
        name = f"{random_name[0]}^{random_name[1:]}"
    text = "\r".join([
        f"MSH|^~\\&|HIS|HOSP|RIS|IMG|20261207083000||ORM^O01^ORM_O01|{uuid.uuid4().hex[:12]}|P|2.5||||||UNICODE UTF-8",
        f"PID|1||{his_id}^^^HIS^PI~{rid(born='19800101')}^^^CHN^NNCHN||{name}||19800101|F", "PV1|1|I|呼吸科^301^12",
        f"ORC|{control}|{placer}", "OBR|1|||CT-CHEST^胸部CT平扫" + "|" * 20 + "CT"]) + "\r"
    reply = Message.parse((await h["feed"].send(text.encode())).decode())
    assert reply.field("MSA", 1) == "AA", reply.to_er7()
    return reply


def _patient(empi_id: str) -> PatientRef:
    return PatientRef(empi_id=empi_id, patient_id=f"P{empi_id[-6:]}", name="欧阳霁翀", sex="F")


def _booked(order: dict[str, Any], start: datetime, version: int, kind: type = AppointmentBooked,
            **extra: Any) -> EventData:
    appointment = AppointmentInfo(
        appointment_id=f"APT-{order['order_id']}", order_id=order["order_id"],
        accession_number=order["accession_number"], patient=_patient(order["empi_id"]), exam_code="CT-CHEST",
        exam_name="胸部CT平扫", modality="CT", room_id="CT1", room_name="CT一室", start=start,
        end=start + timedelta(minutes=15), version=version)
    return kind(appointment=appointment, **extra)


def _started(order: dict[str, Any]) -> ExamStarted:
    return ExamStarted(accession_number=order["accession_number"], study_instance_uid=order["study_instance_uid"],
                       patient=_patient(order["empi_id"]), mpps_uid=f"1.2.3.{uuid.uuid4().int}",
                       station_ae_title="CT1", modality="CT", started_at=datetime.now(UTC))


def _completed(order: dict[str, Any], status: str = "completed") -> ExamCompleted:
    return ExamCompleted(accession_number=order["accession_number"], study_instance_uid=order["study_instance_uid"],
                         patient=_patient(order["empi_id"]), mpps_uid=f"1.2.3.{uuid.uuid4().int}",
                         station_ae_title="CT1", modality="CT", status=status,  # type: ignore[arg-type]
                         completed_at=datetime.now(UTC), order_id=order["order_id"])


async def _order(h: dict[str, Any], placer: str) -> dict[str, Any]:
    row = await h["pool"].fetchrow("SELECT * FROM exam_order WHERE placer_order_number = $1", placer)
    return {**dict(row), "order_id": str(row["order_id"])}


async def _fhir_status(h: dict[str, Any], order: dict[str, Any]) -> str:
    r = await h["client"].get(f"/fhir/R4/ServiceRequest/{order['order_id']}",
                              headers=auth(h["settings"], "clinician", username="dr-his-status"))
    return str(r4b(r, resource_type="ServiceRequest")["status"])


async def _queue(h: dict[str, Any], order: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    rows = await h["pool"].fetch("SELECT order_control, order_status, status, attempts FROM his_status_message "
                                 "WHERE order_id = $1::uuid ORDER BY id", order["order_id"])
    return [(r["order_control"], r["order_status"], r["status"], r["attempts"]) for r in rows]


async def test_status_updates_reach_the_his_in_order_and_never_go_back(his) -> None:
    stub, placer, his_id = his["stub"], f"ORD{uuid.uuid4().hex[:8]}", f"H{uuid.uuid4().hex[:8]}"
    name = uname()
    await _his_orders(his, placer, his_id, name=f"{name[0]}^{name[1:]}")
    order = await _order(his, placer)
    assert await _fhir_status(his, order) == "active"
    start = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)  # 09:30 in Beijing
    await _emit(his, "book", _booked(order, start, 1), order["accession_number"])
    await eventually(lambda: stub.statuses(placer) == [("SC", "SC")], "SC scheduled at the HIS")
    sc = stub.received[placer][0]
    assert sc.type == ("ORM", "O01", "ORM_O01") and sc.version == "2.5"
    assert (sc.field("MSH", 3), sc.field("MSH", 5), sc.field("MSH", 6)) == ("IMAGING", "HIS", "HOSP")
    assert sc.field("ORC", 3, component=1) == order["accession_number"] == sc.field("OBR", 3, component=1)
    assert sc.field("OBR", 2) == placer and sc.field("OBR", 4, component=1) == "CT-CHEST"
    assert sc.field("OBR", 36) == "20261208093000+0800" and sc.field("ORC", 7, component=4) == "20261208093000+0800"
    assert sc.field("PID", 3, component=1) == his_id and sc.field("PID", 3, component=5) == "PI"
    assert sc.field("PID", 5) == name and sc.field("PV1", 2) == "I"
    assert await _fhir_status(his, order) == "active"

    await _emit(his, "perform", _started(order), order["accession_number"])
    await eventually(lambda: stub.statuses(placer)[-1:] == [("SC", "IP")], "IP at the HIS")
    # Late and repeated news changes nothing: a second exam.started, a reschedule arriving after the exam began.
    await _emit(his, "perform", _started(order), order["accession_number"])
    await _emit(his, "book", _booked(order, start + timedelta(hours=1), 2, AppointmentRescheduled,
                                     previous_start=start, previous_room_id="CT1"), order["accession_number"])
    await _emit(his, "perform", _completed(order), order["accession_number"])
    await eventually(lambda: stub.statuses(placer)[-1:] == [("SC", "CM")], "CM at the HIS")
    # ...and after completion, a discontinued MPPS or a late start are older news still.
    await _emit(his, "perform", _completed(order, "discontinued"), order["accession_number"])
    await _emit(his, "perform", _started(order), order["accession_number"])
    assert await _fhir_status(his, order) == "completed"
    await eventually(lambda: _all_sent(his, order), "every update acknowledged")
    assert stub.statuses(placer) == [("SC", "SC"), ("SC", "IP"), ("SC", "CM")]
    assert await _queue(his, order) == [("SC", "SC", "sent", 1), ("SC", "IP", "sent", 1), ("SC", "CM", "sent", 1)]
    assert len({m.control_id for m in stub.received[placer]}) == 3
    # The HIS asking again (a resent NW) hears what the order is now: ORC-5 CM.
    reply = await _his_orders(his, placer, his_id, name=f"{name[0]}^{name[1:]}")
    assert reply.field("ORC", 1) == "OK" and reply.field("ORC", 5) == "CM"


async def _all_sent(h: dict[str, Any], order: dict[str, Any]) -> bool:
    return all(status == "sent" for _, _, status, _ in await _queue(h, order))


async def test_a_reschedule_is_news_while_scheduled(his) -> None:
    stub, placer = his["stub"], f"ORD{uuid.uuid4().hex[:8]}"
    await _his_orders(his, placer, f"H{uuid.uuid4().hex[:8]}")
    order = await _order(his, placer)
    start = datetime(2026, 12, 9, 2, 0, tzinfo=UTC)
    await _emit(his, "book", _booked(order, start, 1), order["accession_number"])
    moved = _booked(order, start + timedelta(days=1), 2, AppointmentRescheduled, previous_start=start,
                    previous_room_id="CT1")
    await _emit(his, "book", moved, order["accession_number"])
    await eventually(lambda: len(stub.received[placer]) == 2, "both appointment times at the HIS")
    assert [m.field("OBR", 36) for m in stub.received[placer]] == ["20261209100000+0800", "20261210100000+0800"]
    # The booking again (same version: stale for the consumer) and a discontinued exam: DC.
    await _emit(his, "book", _booked(order, start, 1), order["accession_number"])
    await _emit(his, "perform", _completed(order, "discontinued"), order["accession_number"])
    await eventually(lambda: stub.statuses(placer) == [("SC", "SC"), ("SC", "SC"), ("SC", "DC")], "DC at the HIS")
    assert await _fhir_status(his, order) == "revoked"


async def test_ae_is_retried_with_the_same_message_and_ar_is_never_retried(his) -> None:
    stub = his["stub"]
    retried, refused = f"ORD{uuid.uuid4().hex[:8]}", f"ORD{uuid.uuid4().hex[:8]}"
    stub.answers[retried] = ["AE"]
    stub.answers[refused] = ["AR"]
    for placer in (retried, refused):
        await _his_orders(his, placer, f"H{uuid.uuid4().hex[:8]}")
    first, second = await _order(his, retried), await _order(his, refused)
    start = datetime(2026, 12, 10, 1, 0, tzinfo=UTC)
    for order in (first, second):
        await _emit(his, "book", _booked(order, start, 1), order["accession_number"])
        await _emit(his, "perform", _started(order), order["accession_number"])
    # AE: the same message (same MSH-10) again after the backoff, and IP only after SC was taken.
    await eventually(lambda: stub.statuses(retried) == [("SC", "SC"), ("SC", "SC"), ("SC", "IP")],
                     "SC retried after AE, then IP")
    sent = stub.received[retried]
    assert sent[0].control_id == sent[1].control_id != sent[2].control_id
    await eventually(lambda: _all_sent(his, first), "retried update acknowledged")
    rows = await his["pool"].fetch("SELECT order_status, attempts, ack_code, last_error FROM his_status_message "
                                   "WHERE order_id = $1::uuid ORDER BY id", first["order_id"])
    assert [(r["order_status"], r["attempts"], r["ack_code"]) for r in rows] == [("SC", 2, "AA"), ("IP", 1, "AA")]
    # AR: refused for good, kept with the HIS's answer; the order's next update still goes.
    await eventually(lambda: stub.statuses(refused) == [("SC", "SC"), ("SC", "IP")], "AR once, then IP")
    row = await his["pool"].fetchrow("SELECT status, attempts, ack_code, last_error, ack FROM his_status_message "
                                     "WHERE order_id = $1::uuid AND order_status = 'SC'", second["order_id"])
    assert (row["status"], row["attempts"], row["ack_code"]) == ("refused", 1, "AR")
    assert "stub says AR" in row["last_error"] and "MSA|AR" in row["ack"]
    await asyncio.sleep(his["settings"].his_status_retry_max * 2)  # several retry periods: no second AR attempt
    assert stub.statuses(refused) == [("SC", "SC"), ("SC", "IP")]


async def test_a_his_away_is_waited_for_and_then_told_everything_in_order(his) -> None:
    stub, server, placer = his["stub"], his["server"], f"ORD{uuid.uuid4().hex[:8]}"
    await _his_orders(his, placer, f"H{uuid.uuid4().hex[:8]}")
    order = await _order(his, placer)
    await server.stop()  # the HIS's listener is down
    try:
        await _emit(his, "book", _booked(order, datetime(2026, 12, 13, 1, 0, tzinfo=UTC), 1), order["accession_number"])
        await _emit(his, "perform", _started(order), order["accession_number"])

        async def tried_twice() -> bool:
            row = await his["pool"].fetchrow("SELECT attempts, last_error, status FROM his_status_message "
                                             "WHERE order_id = $1::uuid ORDER BY id LIMIT 1", order["order_id"])
            return bool(row and row["attempts"] >= 2 and row["status"] == "pending" and row["last_error"])

        await eventually(tried_twice, "the SC retried while the HIS is away")
        assert stub.received[placer] == []
        assert [q[:3] for q in await _queue(his, order)] == [("SC", "SC", "pending"), ("SC", "IP", "pending")]
    finally:
        await server.start()  # back, on the same port
    await eventually(lambda: stub.statuses(placer) == [("SC", "SC"), ("SC", "IP")], "SC then IP once the HIS is back")
    await eventually(lambda: _all_sent(his, order), "both acknowledged")


async def test_desk_cancel_tells_the_his_oc_and_nothing_follows(his) -> None:
    stub, client, settings = his["stub"], his["client"], his["settings"]
    placer, his_cancels = f"ORD{uuid.uuid4().hex[:8]}", f"ORD{uuid.uuid4().hex[:8]}"
    await _his_orders(his, placer, f"H{uuid.uuid4().hex[:8]}")
    order = await _order(his, placer)
    await _emit(his, "book", _booked(order, datetime(2026, 12, 11, 1, 0, tzinfo=UTC), 1), order["accession_number"])
    r = await client.post(f"/api/registration/orders/{order['accession_number']}/cancel",
                          json={"reason": "患者取消检查"}, headers=auth(settings))
    assert r.status_code == 200, r.text
    await eventually(lambda: stub.statuses(placer) == [("SC", "SC"), ("OC", "CA")], "OC at the HIS")
    oc = stub.received[placer][1]
    assert oc.field("ORC", 16, component=2) == "患者取消检查" and oc.field("ORC", 3, component=1) == \
        order["accession_number"]
    # A cancelled order's exam news is kept, not sent; FHIR says revoked.
    await _emit(his, "perform", _completed(order), order["accession_number"])
    assert await _fhir_status(his, order) == "revoked"
    assert [q[:2] for q in await _queue(his, order)] == [("SC", "SC"), ("OC", "CA")]
    # The HIS's own cancel is answered (ORR CR), never echoed as OC.
    await _his_orders(his, his_cancels, f"H{uuid.uuid4().hex[:8]}")
    reply = await _his_orders(his, his_cancels, "", control="CA")
    assert reply.field("ORC", 1) == "CR"
    assert await _queue(his, await _order(his, his_cancels)) == []
    assert stub.received[his_cancels] == []


async def test_desk_orders_are_not_the_his_s_to_hear_about(his) -> None:
    client, settings = his["client"], his["settings"]
    h = auth(settings)
    p = (await client.post("/api/registration/patients", headers=h, json={
        "name": uname(), "identifiers": [{"value": rid()}], "verified": True})).json()["patient"]
    r = await client.post("/api/registration/orders", headers=h, json={
        "empi_id": p["empi_id"], "items": [{"code": "DX-CHEST", "name": "胸部正位", "modality": "DX"}]})
    assert r.status_code == 201, r.text
    order = {**r.json(), "empi_id": p["empi_id"]}
    await _emit(his, "book", _booked(order, datetime(2026, 12, 12, 1, 0, tzinfo=UTC), 1), order["accession_number"])
    await _emit(his, "perform", _completed(order), order["accession_number"])
    assert await _fhir_status(his, order) == "completed"  # recorded and shown...
    assert await _queue(his, order) == []  # ...but never sent: the HIS did not place it
    assert await his["pool"].fetchval("SELECT exam_status FROM exam_order WHERE order_id = $1::uuid",
                                      order["order_id"]) == "completed"
