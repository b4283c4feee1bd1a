"""The scheduling API end to end: roles on every route, problem+json errors, configuration as
data, orders arriving over RabbitMQ, booking, receipts, FHIR views and events leaving over RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime

import aio_pika
from imaging_common.events import CloudEvent
from imaging_common.events.topology import exchange_name
from imaging_common.events.types import ExamItem, OrderCancelled, OrderCreated, PatientRef, SpecialConditions
from imaging_testing import asgi_client
from imaging_testing.fhir import r4b
from scheduling.app import create_app
from scheduling.settings import Settings

from .conftest import API, at, auth, day_after

FHIR = "/fhir/R4"


async def send(settings, event: CloudEvent) -> None:
    """Publish an event to the platform's exchange, as registration's relay would."""
    connection = await aio_pika.connect_robust(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(exchange_name(settings.namespace))
        await exchange.publish(
            aio_pika.Message(event.to_json(), content_type="application/cloudevents+json", message_id=event.id),
            routing_key=event.type,
        )


async def eventually(check, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


async def setup_room_and_exam(client, admin, tag: str) -> tuple[str, str, str]:
    modality = f"Y{tag[:6]}"
    room = f"CT-{tag}"
    r = await client.put(
        f"{API}/rooms/{room}",
        headers=admin,
        json={
            "id": room,
            "name": "CT 3室",
            "modality": modality,
            "campus": "本部",
            "building": "门诊楼",
            "floor": "2层",
            "location": "门诊楼2层 放射科 CT3室",
            "route": "门诊大厅乘2号电梯到2层，右转50米",
            "station_ae_title": "CT3",
            "sessions": [{"weekday": d, "starts": "08:00", "ends": "12:00", "label": "上午"} for d in range(1, 8)],
        },
    )
    assert r.status_code == 200, r.text
    code = f"CT-CHEST-{tag}"
    r = await client.put(
        f"{API}/exam-types/{code}",
        headers=admin,
        json={
            "code": code,
            "name": "胸部CT平扫",
            "modality": modality,
            "duration_minutes": 15,
            "preparation_minutes": 5,
            "preparation": "检查前去除金属物品 / remove metal objects",
        },
    )
    assert r.status_code == 200, r.text
    return room, code, modality


def order_event(tag: str, code: str, modality: str, **extra) -> tuple[CloudEvent, str]:
    order_id = f"ORD-{tag}"
    model = OrderCreated(
        order_id=order_id,
        accession_number=f"ACC{tag}",
        requested_procedure_id=f"RP{tag}",
        study_instance_uid=f"1.2.826.0.1.{int(tag, 16)}",
        ordered_at=datetime.now().astimezone(),
        patient=PatientRef(empi_id=f"E{tag}", patient_id=f"P{tag}", name="李四", sex="F"),
        items=[ExamItem(code=code, name="胸部CT平扫", modality=modality)],
        special=SpecialConditions(),
        **extra,
    )
    return CloudEvent.from_data(model, source="/imaging/registration", subject=model.accession_number), order_id


async def test_routes_require_a_token_and_the_right_role(client, settings, clerk, admin) -> None:
    r = await client.get(f"{API}/appointments")
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    rule = {"name": "x", "type": "booking_window", "params": {"max_days_ahead": 3}, "reason": "r"}
    r = await client.put(f"{API}/rules/x", headers=clerk, json=rule)
    assert r.status_code == 403
    r = await client.post(
        f"{API}/appointments", headers=auth(settings, "radiologist"), json={"order_id": "o", "exam_code": "e"}
    )
    assert r.status_code == 403  # reading the pool is not booking it
    r = await client.get(f"{FHIR}/Schedule", headers=auth(settings, "radiologist"))
    schedules = r4b(r, resource_type="Bundle")
    assert all(e["fullUrl"].endswith(f"{FHIR}/Schedule/{e['resource']['id']}") for e in schedules["entry"])
    # FHIR errors are OperationOutcomes: no token, a role that may not read, an unknown room, a bad query.
    assert r4b(await client.get(f"{FHIR}/Schedule"), status=401)["issue"][0]["code"] == "login"
    r4b(await client.get(f"{FHIR}/Schedule", headers=auth(settings, "it-ops")), status=403)
    r4b(await client.get(f"{FHIR}/Schedule/no-such-room", headers=clerk), status=404)
    r4b(await client.get(f"{FHIR}/Slot", headers=clerk, params={"schedule": "Schedule/x", "start": "tomorrow"}),
        status=422)
    moved = await client.get(f"{API}/fhir/Schedule/x", headers=clerk)
    assert moved.status_code == 308 and moved.headers["location"] == f"{FHIR}/Schedule/x"


async def test_rules_are_validated_as_data(client, admin) -> None:
    name = f"bad-{uuid.uuid4().hex[:6]}"
    r = await client.put(
        f"{API}/rules/{name}",
        headers=admin,
        json={"name": name, "type": "min_gap", "params": {"a": {"contrast": "iodine"}}, "reason": "r"},
    )
    assert r.status_code == 422 and r.json()["title"] == "规则无效" and r.json()["code"] == "rule-parameters-invalid"
    assert {tuple(e["loc"]) for e in r.json()["errors"]} >= {("a", "contrast"), ("min_hours",)}
    r = await client.put(
        f"{API}/rules/{name}", headers=admin, json={"name": name, "type": "teleport", "params": {}, "reason": "r"}
    )
    assert r.status_code == 422 and r.json()["code"] == "rule-type-unknown", r.text
    r = await client.get(f"{API}/rule-types", headers=admin)
    assert {t["type"] for t in r.json()["data"]} >= {
        "booking_window",
        "sequence",
        "min_gap",
        "latest_start",
        "inpatient_proximity",
        "critical_reserve",
        "mdr_separation",
        "capacity",
        "no_show_limit",
    }


async def test_order_over_rabbitmq_to_booking_receipt_fhir_and_events(client, settings, admin, clerk) -> None:
    tag = uuid.uuid4().hex[:8]
    room, code, modality = await setup_room_and_exam(client, admin, tag)
    # watch what scheduling announces on the bus
    connection = await aio_pika.connect_robust(settings.amqp_url)
    channel = await connection.channel()
    watch = await channel.declare_queue("", exclusive=True)
    await watch.bind(exchange_name(settings.namespace), routing_key="appointment.*")

    event, order_id = order_event(tag, code, modality)
    await send(settings, event)

    async def request_arrived():
        r = await client.get(f"{API}/requests", headers=clerk, params={"order_id": order_id})
        return r.json()["data"]

    [req] = await eventually(request_arrived)
    assert req["exam_code"] == code and req["status"] == "open"

    day = day_after(2)
    r = await client.post(
        f"{API}/find",
        headers=clerk,
        json={"order_id": order_id, "exam_code": code, "not_before": at(day, 0).isoformat()},
    )
    assert r.status_code == 200, r.text
    assert r.json()["room_id"] == room and datetime.fromisoformat(r.json()["start"]) == at(day, 8)

    # malformed input gets a problem, and nothing is booked
    r = await client.post(
        f"{API}/appointments",
        headers=clerk,
        json={"order_id": order_id, "exam_code": code, "room_id": room, "start": "2026-13-01T99"},
    )
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = await client.post(
        f"{API}/appointments",
        headers=clerk,
        json={
            "order_id": order_id,
            "exam_code": code,
            "room_id": room,
            "start": at(day, 9).replace(tzinfo=None).isoformat(),
        },
    )
    assert r.status_code == 422  # a time without its zone is ambiguous
    r = await client.post(
        f"{API}/appointments",
        headers=clerk,
        json={"order_id": order_id, "exam_code": code, "room_id": room, "start": at(day, 9, 3).isoformat()},
    )
    assert r.status_code == 422 and r.json()["violations"][0]["rule"] == "time-slice"

    r = await client.post(
        f"{API}/appointments",
        headers=clerk,
        json={
            "order_id": order_id,
            "exam_code": code,
            "room_id": room,
            "start": at(day, 9).isoformat(),
            "channel": "booking-center",
        },
    )
    assert r.status_code == 201, r.text
    appointment = r.json()
    assert appointment["status"] == "booked"
    r = await client.post(f"{API}/appointments", headers=clerk, json={"order_id": order_id, "exam_code": code})
    assert r.status_code == 422 and r.json()["violations"][0]["rule"] == "already-booked"

    r = await client.get(f"{API}/appointments/{appointment['id']}/receipt", headers=clerk)
    receipt = r.json()
    assert receipt["place"] == "本部 门诊楼 2层 门诊楼2层 放射科 CT3室"
    assert receipt["route"] == "门诊大厅乘2号电梯到2层，右转50米"
    assert receipt["preparation"].startswith("检查前去除金属物品")
    assert datetime.fromisoformat(receipt["arrive_by"]) == at(day, 8, 45)  # 5 min preparation + 10 to check in
    r = await client.get(f"{API}/appointments/{appointment['id']}/receipt.html", headers=clerk)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "门诊大厅乘2号电梯到2层" in r.text and "window.print()" in r.text

    r = await client.get(f"{FHIR}/Appointment/{appointment['id']}", headers=clerk)
    fhir_appointment = r4b(r, resource_type="Appointment")
    assert fhir_appointment["status"] == "booked"
    assert {p["actor"]["reference"] for p in fhir_appointment["participant"]} == {f"Patient/E{tag}", f"Location/{room}"}
    r = await client.get(
        f"{FHIR}/Slot", headers=clerk, params={"schedule": f"Schedule/{room}", "start": at(day, 0).isoformat()}
    )
    slots = {s["resource"]["start"]: s["resource"]["status"] for s in r4b(r, resource_type="Bundle")["entry"]}
    schedule = r4b(await client.get(f"{FHIR}/Schedule/{room}", headers=clerk), resource_type="Schedule")
    assert schedule["actor"][0]["reference"] == f"Location/{room}"
    assert slots[at(day, 9).isoformat()] == "busy" and slots[at(day, 8).isoformat()] == "free"
    r = await client.get(
        f"{FHIR}/Appointment/$find",
        headers=clerk,
        params={
            "based-on": f"ServiceRequest/{order_id}",
            "service-type": code,
            "start": at(day, 0).isoformat(),
            "_count": 3,
        },
    )
    found = r4b(r, resource_type="Bundle")
    assert found["total"] == 3
    assert all(e["resource"]["status"] == "proposed" for e in found["entry"])

    r = await client.post(f"{API}/appointments/{appointment['id']}/no-show", headers=clerk, json={"reason": "未到检"})
    assert r.json()["status"] == "noshow" and r.json()["reason"] == "未到检"
    r = await client.get(f"{API}/patients/E{tag}/no-shows", headers=clerk)
    assert r.json()["count"] == 1
    r = await client.post(f"{API}/appointments/{appointment['id']}/arrive", headers=clerk)
    assert r.status_code == 409 and r.json()["status_now"] == "noshow"
    r = await client.get(f"{API}/appointments/{uuid.uuid4()}", headers=clerk)
    assert r.status_code == 404
    searched = r4b(await client.get(f"{FHIR}/Appointment", headers=clerk, params={"patient": f"Patient/E{tag}"}),
                   resource_type="Bundle")
    assert [e["resource"]["id"] for e in searched["entry"]] == [appointment["id"]]
    assert searched["entry"][0]["resource"]["status"] == "noshow"

    # the relay publishes what the booking wrote to the outbox
    seen: dict[str, dict] = {}

    async def announced():
        while (message := await watch.get(fail=False, timeout=1)) is not None:
            await message.ack()
            body = json.loads(message.body)
            seen[body["type"]] = body
        return {"appointment.booked", "appointment.noshow"} <= set(seen)

    await eventually(announced, timeout=20)
    assert seen["appointment.booked"]["data"]["appointment"]["station_ae_title"] == "CT3"
    await connection.close()


async def test_order_cancelled_over_rabbitmq_cancels_the_appointment(client, settings, admin, clerk) -> None:
    tag = uuid.uuid4().hex[:8]
    room, code, modality = await setup_room_and_exam(client, admin, tag)
    event, order_id = order_event(tag, code, modality)
    await send(settings, event)

    async def ready():
        return (await client.get(f"{API}/requests", headers=clerk, params={"order_id": order_id})).json()["data"]

    await eventually(ready)
    r = await client.post(f"{API}/appointments", headers=clerk, json={"order_id": order_id, "exam_code": code})
    assert r.status_code == 201, r.text
    appointment_id = r.json()["id"]
    cancel = CloudEvent.from_data(
        OrderCancelled(order_id=order_id, accession_number=f"ACC{tag}", reason="临床撤销"),
        source="/imaging/registration",
    )
    await send(settings, cancel)

    async def cancelled():
        a = (await client.get(f"{API}/appointments/{appointment_id}", headers=clerk)).json()
        return a if a["status"] == "cancelled" else None

    a = await eventually(cancelled)
    assert a["reason"] == "order cancelled: 临床撤销"
    r = await client.post(f"{API}/appointments", headers=clerk, json={"order_id": order_id, "exam_code": code})
    assert r.status_code == 422 and r.json()["violations"][0]["rule"] == "order-cancelled"


async def test_arrange_and_hold_through_the_api(client, admin, clerk, settings) -> None:
    tag = uuid.uuid4().hex[:8]
    room, code, modality = await setup_room_and_exam(client, admin, tag)
    code2 = f"CT-ABD-{tag}"
    r = await client.put(
        f"{API}/exam-types/{code2}",
        headers=admin,
        json={"code": code2, "name": "腹部CT", "modality": modality, "duration_minutes": 20},
    )
    assert r.status_code == 200
    from imaging_common.events.types import ExamItem as Item

    event, order_id = order_event(tag, code, modality)
    event.data["items"].append(Item(code=code2, name="腹部CT", modality=modality).model_dump())  # type: ignore[index]
    from imaging_common.events import parse_as
    from scheduling.adapters.deps import scheduler_for
    from scheduling.domain.orders import apply_order

    async with client._transport.app.state.ctx.pool.acquire() as conn:  # type: ignore[attr-defined]
        async with conn.transaction():  # what the handler does, no broker: same code path as the consumer
            await apply_order(conn, scheduler_for(settings), parse_as(event, OrderCreated))
    day = day_after(3)
    r = await client.post(
        f"{API}/arrange",
        headers=clerk,
        json={
            "requests": [{"order_id": order_id, "exam_code": code}, {"order_id": order_id, "exam_code": code2}],
            "not_before": at(day, 0).isoformat(),
            "hold": True,
        },
    )
    assert r.status_code == 200, r.text
    plan = r.json()
    # chest 08:00-08:15, abdomen at the next 10-minute slice 08:20-08:40 (the other order needs the chest's prep)
    assert plan["same_day"] and plan["span_minutes"] == 40
    assert [a["status"] for a in plan["appointments"]] == ["pending", "pending"]
    for a in plan["appointments"]:
        r = await client.post(f"{API}/appointments/{a['id']}/confirm", headers=clerk)
        assert r.json()["status"] == "booked"
    first = plan["appointments"][0]
    r = await client.post(
        f"{API}/appointments/{first['id']}/reschedule",
        headers=clerk,
        json={"start": (at(day, 11)).isoformat(), "reason": "病人下午有事"},
    )
    assert r.status_code == 200 and datetime.fromisoformat(r.json()["start"]) == at(day, 11)
    r = await client.post(f"{API}/appointments/{first['id']}/cancel", headers=clerk, json={})
    assert r.status_code == 422  # a cancellation needs its reason


async def test_background_task_expires_holds(settings_for, test_env) -> None:
    quick = settings_for(Settings, scheduling_hold_minutes=1 / 60, scheduling_housekeeping_seconds=0.3)
    tag = uuid.uuid4().hex[:8]
    async with asgi_client(create_app(quick)) as c:
        admin, clerk = auth(quick, "admin"), auth(quick, "clerk")
        room, code, modality = await setup_room_and_exam(c, admin, tag)
        event, order_id = order_event(tag, code, modality)
        pool = c._transport.app.state.ctx.pool  # type: ignore[attr-defined]
        from imaging_common.events import parse_as
        from scheduling.adapters.deps import scheduler_for
        from scheduling.domain.orders import apply_order

        async with pool.acquire() as conn, conn.transaction():
            await apply_order(conn, scheduler_for(quick), parse_as(event, OrderCreated))
        r = await c.post(
            f"{API}/appointments",
            headers=clerk,
            json={"order_id": order_id, "exam_code": code, "hold": True, "channel": "online"},
        )
        assert r.status_code == 201 and r.json()["status"] == "pending"
        held = r.json()["id"]

        async def expired():  # read the table itself: a GET would expire the hold lazily
            async with pool.acquire() as conn:
                row = await conn.fetchrow("SELECT status, reason FROM appointment WHERE id = $1::uuid", held)
            return row if row["status"] == "cancelled" else None

        row = await eventually(expired, timeout=10)
        assert row["reason"] == "hold expired"
