"""Orders and patients change, over RabbitMQ: order.changed applied alone, an older snapshot after a
newer one changes nothing, a change of exam frees the booked slot with a reason, a cancel frees the
slot and stays (tombstone), a merge re-points appointments, a partial or unversioned patient never
blanks what is known, and scheduling's appointment events carry increasing versions."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import aio_pika
import pytest
from imaging_common.events import CloudEvent
from imaging_common.events.topology import exchange_name
from imaging_common.events.types import (
    ExamItem,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    PatientMerged,
    PatientRef,
    PatientUpdated,
)

from .conftest import API, at, day_after
from .test_api import eventually, send, setup_room_and_exam


@pytest.fixture
def pool(client):
    return client._transport.app.state.ctx.pool  # type: ignore[attr-defined]


@pytest.fixture
async def watch(settings):
    """What scheduling announces on the bus (appointment.*), read in order."""
    connection = await aio_pika.connect_robust(settings.amqp_url)
    channel = await connection.channel()
    queue = await channel.declare_queue("", exclusive=True)
    await queue.bind(exchange_name(settings.namespace), routing_key="appointment.*")
    seen: list[dict[str, Any]] = []

    async def announced(appointment_id: str, *types: str) -> list[dict[str, Any]]:
        async def check():
            while (message := await queue.get(fail=False, timeout=1)) is not None:
                await message.ack()
                seen.append(json.loads(message.body))
            mine = [e for e in seen if e["subject"] == appointment_id]
            return mine if [e["type"] for e in mine] == list(types) else None

        return await eventually(check, timeout=20)

    yield announced
    await connection.close()


def patient(tag: str, **fields: Any) -> PatientRef:
    return PatientRef(**{"empi_id": f"E{tag}", "patient_id": f"P{tag}", "name": "李四", "sex": "F", **fields})


def order(tag: str, code: str, modality: str, model: type[OrderCreated] = OrderCreated, **fields: Any) -> OrderCreated:
    values: dict[str, Any] = {
        "order_id": f"ORD-{tag}",
        "accession_number": f"ACC{tag}",
        "requested_procedure_id": f"RP{tag}",
        "study_instance_uid": f"1.2.826.0.1.{int(tag, 16)}",
        "ordered_at": datetime.now().astimezone(),
        "patient": patient(tag),
        "items": [ExamItem(code=code, name="胸部CT平扫", modality=modality)],
        **fields,
    }
    return model(**values)


async def deliver(settings, pool, model: Any) -> None:
    """Publish as registration's relay would and wait until scheduling has taken it (applied or stale)."""
    event = CloudEvent.from_data(model, source="/imaging/registration")
    await send(settings, event)

    async def taken():
        return await pool.fetchval("SELECT true FROM inbox WHERE event_id = $1", event.id)

    await eventually(taken)


async def book(client, clerk, order_id: str, code: str, room: str, start: datetime) -> dict[str, Any]:
    """The order's exam booked in `room` at `start` by the clerk, through the API: the appointment."""
    r = await client.post(f"{API}/appointments", headers=clerk, json={
        "order_id": order_id, "exam_code": code, "room_id": room, "start": start.isoformat()})
    assert r.status_code == 201, r.text
    return r.json()


async def request_row(pool, order_id: str, code: str) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM exam_request WHERE order_id = $1 AND exam_code = $2", order_id, code)
    assert row is not None
    out = dict(row)
    out["patient"] = json.loads(out["patient"])
    return out


async def test_order_changed_alone_then_an_older_snapshot_changes_nothing(client, settings, admin, pool) -> None:
    tag = uuid.uuid4().hex[:8]
    _, code, modality = await setup_room_and_exam(client, admin, tag)
    changed = order(
        tag, code, modality, OrderChanged, version=3, priority="urgent", ward="W7", patient_class="inpatient",
        patient=patient(tag, phone="13800000000", version=5), changed=["priority"], reason="病情加重",
    )
    await deliver(settings, pool, changed)  # no order.created before it
    req = await request_row(pool, changed.order_id, code)
    assert (req["status"], req["priority"], req["ward"], req["patient_class"]) == ("open", "urgent", "W7", "inpatient")
    assert req["patient"]["phone"] == "13800000000"

    late = order(tag, code, modality, version=1, priority="routine", ward=None,
                 patient=patient(tag, name="李斯", phone=None, version=4))
    await deliver(settings, pool, late)  # the creation, late: older than what was applied
    again = await request_row(pool, changed.order_id, code)
    assert (again["priority"], again["ward"], again["patient"]["name"]) == ("urgent", "W7", "李四")
    assert again["patient"]["phone"] == "13800000000"


async def test_a_change_of_exam_frees_the_booked_slot_and_says_why(client, settings, admin, clerk, pool,
                                                                    watch) -> None:
    tag = uuid.uuid4().hex[:8]
    room, code, modality = await setup_room_and_exam(client, admin, tag)
    enhanced = f"CT-CHEST-ENH-{tag}"
    r = await client.put(f"{API}/exam-types/{enhanced}", headers=admin,
                         json={"code": enhanced, "name": "胸部CT增强", "modality": modality, "duration_minutes": 20})
    assert r.status_code == 200, r.text
    created = order(tag, code, modality, version=1)
    await deliver(settings, pool, created)
    start = at(day_after(2), 9)
    appointment_id = (await book(client, clerk, created.order_id, code, room, start))["id"]

    changed = order(tag, enhanced, modality, OrderChanged, version=2, changed=["items"], reason="临床改为增强",
                    items=[ExamItem(code=enhanced, name="胸部CT增强", modality=modality, contrast=True)])
    await deliver(settings, pool, changed)
    a = (await client.get(f"{API}/appointments/{appointment_id}", headers=clerk)).json()
    assert a["status"] == "cancelled"
    assert a["reason"].startswith(f"order changed: exam {code} is no longer requested (now {enhanced})")
    assert "临床改为增强" in a["reason"]
    old, new = await request_row(pool, created.order_id, code), await request_row(pool, created.order_id, enhanced)
    assert (old["status"], old["cancel_reason"]) == ("cancelled", "removed from the order (临床改为增强)")
    assert new["status"] == "open" and new["exam_name"] == "胸部CT增强"
    events = await watch(appointment_id, "appointment.booked", "appointment.cancelled")
    assert events[1]["data"]["reason"] == a["reason"]
    assert [events[0]["data"]["appointment"]["version"], events[1]["data"]["version"]] == [1, 2]

    # the slot is free again: the new exam takes it
    rebooked = (await book(client, clerk, created.order_id, enhanced, room, start))["id"]

    # a priority change keeps the booking
    urgent = order(tag, enhanced, modality, OrderChanged, version=3, priority="urgent", changed=["priority"],
                   items=changed.items)
    await deliver(settings, pool, urgent)
    a = (await client.get(f"{API}/appointments/{rebooked}", headers=clerk)).json()
    assert (a["status"], a["priority"]) == ("booked", "urgent")


async def test_appointment_events_carry_increasing_versions(client, settings, admin, clerk, pool, watch) -> None:
    tag = uuid.uuid4().hex[:8]
    room, code, modality = await setup_room_and_exam(client, admin, tag)
    created = order(tag, code, modality, version=1)
    await deliver(settings, pool, created)
    day = day_after(3)
    appointment_id = (await book(client, clerk, created.order_id, code, room, at(day, 9)))["id"]
    r = await client.post(f"{API}/appointments/{appointment_id}/reschedule", headers=clerk,
                          json={"room_id": room, "start": at(day, 10).isoformat(), "reason": "患者要求"})
    assert r.status_code == 200, r.text
    r = await client.post(f"{API}/appointments/{appointment_id}/reschedule", headers=clerk,
                          json={"room_id": room, "start": at(day, 11).isoformat()})
    assert r.status_code == 200, r.text
    r = await client.post(f"{API}/appointments/{appointment_id}/cancel", headers=clerk, json={"reason": "患者取消"})
    assert r.status_code == 200, r.text
    events = await watch(appointment_id, "appointment.booked", "appointment.rescheduled", "appointment.rescheduled",
                         "appointment.cancelled")
    got = [e["data"].get("version") or e["data"]["appointment"]["version"] for e in events]
    assert got == [1, 2, 3, 4]


async def test_order_cancelled_frees_the_slot_and_nothing_reopens_it(client, settings, admin, clerk, pool) -> None:
    tag = uuid.uuid4().hex[:8]
    room, code, modality = await setup_room_and_exam(client, admin, tag)
    created = order(tag, code, modality, version=1)
    await deliver(settings, pool, created)
    start = at(day_after(2), 10)
    booked = await book(client, clerk, created.order_id, code, room, start)
    await deliver(settings, pool, OrderCancelled(order_id=created.order_id, accession_number=created.accession_number,
                                                 reason="重复开单", version=2))
    a = (await client.get(f"{API}/appointments/{booked['id']}", headers=clerk)).json()
    assert (a["status"], a["reason"]) == ("cancelled", "order cancelled: 重复开单")
    other = order(uuid.uuid4().hex[:8], code, modality, version=1)
    await deliver(settings, pool, other)
    await book(client, clerk, other.order_id, code, room, start)  # the slot was freed

    # a snapshot that comes late (older, or from a producer without versions) does not reopen the order
    await deliver(settings, pool, order(tag, code, modality, OrderChanged, version=2, priority="stat"))
    await deliver(settings, pool, order(tag, code, modality, priority="stat"))
    req = await request_row(pool, created.order_id, code)
    assert (req["status"], req["priority"]) == ("cancelled", "routine")

    # a cancel that comes first wins over the creation that follows
    first = order(uuid.uuid4().hex[:8], code, modality, version=1)
    await deliver(settings, pool, OrderCancelled(order_id=first.order_id, accession_number=first.accession_number,
                                                 reason="撤销", version=2))
    await deliver(settings, pool, first)
    await deliver(settings, pool, first.model_copy(update={"version": None}))
    req = await request_row(pool, first.order_id, code)
    assert (req["status"], req["cancel_reason"]) == ("cancelled", "order cancelled: 撤销")


async def test_merge_re_points_appointments_and_requests_to_the_survivor(client, settings, admin, clerk,
                                                                         pool) -> None:
    tag, gold = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    room, code, modality = await setup_room_and_exam(client, admin, tag)
    created = order(tag, code, modality, version=1, patient=patient(tag, name="张子寒", phone="13900000000", version=1))
    await deliver(settings, pool, created)
    appointment_id = (await book(client, clerk, created.order_id, code, room, at(day_after(2), 11)))["id"]
    survivor = patient(gold, name="张子涵", phone=None, version=7)
    await deliver(settings, pool, PatientMerged(surviving=survivor, merged_empi_ids=[f"E{tag}"],
                                                merged_patient_ids=[f"P{tag}"], merged_versions={f"E{tag}": 2}))
    a = (await client.get(f"{API}/appointments/{appointment_id}", headers=clerk)).json()
    assert a["empi_id"] == f"E{gold}" and a["patient"]["name"] == "张子涵" and a["patient"]["patient_id"] == f"P{gold}"
    r = await client.get(f"{API}/appointments", headers=clerk, params={"empi_id": f"E{gold}"})
    assert [x["id"] for x in r.json()["data"]] == [appointment_id]
    req = await request_row(pool, created.order_id, code)
    assert req["empi_id"] == f"E{gold}" and req["patient"]["name"] == "张子涵"
    assert req["patient"]["phone"] == "13900000000"  # the survivor's copy said nothing of it: kept

    # registration then re-publishes the order with its new owner: nothing moves back
    await deliver(settings, pool, order(tag, code, modality, OrderChanged, version=2, patient=survivor,
                                        changed=["patient"], reason="merge"))
    a = (await client.get(f"{API}/appointments/{appointment_id}", headers=clerk)).json()
    assert (a["status"], a["empi_id"], a["patient"]["name"]) == ("booked", f"E{gold}", "张子涵")


async def test_partial_or_unversioned_patient_never_blanks_what_is_known(client, settings, admin, pool) -> None:
    tag = uuid.uuid4().hex[:8]
    _, code, modality = await setup_room_and_exam(client, admin, tag)
    full = patient(tag, name="王芳", sex="F", phone="13711112222", birth_date="1960-02-03", version=3)
    await deliver(settings, pool, order(tag, code, modality, version=1, patient=full))

    # an order change carrying an unversioned, partial patient: fills nothing known, blanks nothing
    bare = PatientRef(empi_id=f"E{tag}", patient_id=f"P{tag}", name="王方")
    await deliver(settings, pool, order(tag, code, modality, OrderChanged, version=2, patient=bare, priority="urgent"))
    req = await request_row(pool, f"ORD-{tag}", code)
    assert req["priority"] == "urgent"
    assert {k: req["patient"][k] for k in ("name", "sex", "phone", "birth_date")} == {
        "name": "王芳", "sex": "F", "phone": "13711112222", "birth_date": "1960-02-03"}

    # a newer patient.updated that omits the phone and the sex: its name wins, the rest stays
    await deliver(settings, pool, PatientUpdated(
        patient=PatientRef(empi_id=f"E{tag}", patient_id=f"P{tag}", name="王芳芳", version=4), changed=["name"]))
    req = await request_row(pool, f"ORD-{tag}", code)
    assert {k: req["patient"][k] for k in ("name", "sex", "phone", "version")} == {
        "name": "王芳芳", "sex": "F", "phone": "13711112222", "version": 4}

    # an older versioned snapshot in an order change only fills gaps
    await deliver(settings, pool, order(tag, code, modality, OrderChanged, version=3,
                                        patient=patient(tag, name="王芳", phone="13000000000", version=3)))
    req = await request_row(pool, f"ORD-{tag}", code)
    assert (req["patient"]["name"], req["patient"]["phone"]) == ("王芳芳", "13711112222")
