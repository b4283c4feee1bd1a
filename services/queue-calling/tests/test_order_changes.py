"""Orders and patients change, over RabbitMQ (registration's outbox and relay): order.changed applied
alone, a priority change re-orders the queue and the screen follows, an older snapshot changes
nothing, a merge shows the survivor, a partial or unversioned patient never blanks a known name, sex
or phone, and a cancel that comes before the appointment keeps the exam out of the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentInfo,
    ExamItem,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    PatientMerged,
    PatientRef,
    PatientUpdated,
)
from imaging_testing import event_producer

from .conftest import Service, World
from .test_events_bus import eventually
from .test_http import setup_room
from .test_screens import make_screen, open_screen

PRODUCER_SCHEMA = "queue_calling_test_producer"


@pytest.fixture(scope="module")
async def producer(test_env: dict[str, str]) -> AsyncIterator[Any]:
    async with event_producer(test_env["DATABASE_URL"], service="registration", schema=PRODUCER_SCHEMA) as emit:
        yield emit


async def exam(world: World, accession_number: str) -> dict[str, Any] | None:
    row = await world.pool.fetchrow("SELECT * FROM exam WHERE accession_number = $1", accession_number)
    return dict(row) if row else None


async def entry(world: World, entry_id: Any) -> dict[str, Any]:
    return dict(await world.pool.fetchrow("SELECT * FROM queue_entry WHERE entry_id = $1", entry_id))


async def settle(producer: Any, world: World) -> None:
    """Everything published before is applied: one consumer takes the queue in order, so once a marker
    order published after it is known, the events before it were taken (applied or stale)."""
    marker = world.order()
    await producer(marker, marker.accession_number)

    async def known() -> bool:
        return await exam(world, marker.accession_number) is not None

    await eventually(known)


def changed(order: OrderCreated, version: int, **fields: Any) -> OrderChanged:
    return OrderChanged(**{**order.model_dump(), "version": version, **fields})


async def check_in(api: httpx.AsyncClient, service: Service, accession_number: str) -> dict[str, Any]:
    r = await api.post("/check-ins", json={"kind": "barcode", "value": accession_number},
                       headers=service.headers("clerk"))
    assert r.status_code == 201, r.text
    return r.json()["data"][0]


async def test_order_changed_alone_then_priority_reorders_the_queue_and_the_screen(
        producer: Any, api: httpx.AsyncClient, service: Service, world: World) -> None:
    _, rid = await setup_room(api, service, world)
    screen = await make_screen(api, service, world, [rid])
    first = world.order(name="张三丰")
    alone = changed(first, 2, changed=["items"], items=[ExamItem(code=first.items[0].code, name="胸部增强",
                                                                  modality="CT")])
    await producer(alone, first.accession_number)  # no order.created before it

    async def arrived() -> Any:
        return await exam(world, first.accession_number)

    assert (await eventually(arrived))["exam_name"] == "胸部增强"
    second = world.order(name="李四光")
    await producer(second.model_copy(update={"version": 1}), second.accession_number)
    await settle(producer, world)
    a = await check_in(api, service, first.accession_number)
    b = await check_in(api, service, second.accession_number)
    assert a["exam_name"] == "胸部增强" and (a["priority_level"], b["priority_level"]) == (0, 0)

    async for s in open_screen(service.url, screen):
        snap = await s.next("snapshot")
        assert [p["name"] for p in snap["rooms"][0]["next"]] == ["张*丰", "李*光"]
        await producer(changed(second, 2, priority="stat", changed=["priority"], reason="急诊"),
                       second.accession_number)
        update = await s.next(timeout=20)
        assert [p["name"] for p in update["rooms"][0]["next"]] == ["李*光", "张*丰"]
        assert update["rooms"][0]["next"][0]["flags"] == ["urgent"]
    now_b = await entry(world, b["entry_id"])
    assert (now_b["priority_level"], list(now_b["priority_reasons"])) == (100, ["emergency"])
    r = await api.post(f"/rooms/{rid}/call-next", headers=service.headers("nurse"))
    assert r.json()["entry_id"] == b["entry_id"]

    # the creation, late and older than the change: nothing moves back
    await producer(first.model_copy(update={"version": 1}), first.accession_number)
    await settle(producer, world)
    assert (await exam(world, first.accession_number))["exam_name"] == "胸部增强"
    assert (await entry(world, a["entry_id"]))["exam_name"] == "胸部增强"


async def test_merge_shows_the_survivor_on_the_entry(producer: Any, api: httpx.AsyncClient, service: Service,
                                                     world: World) -> None:
    await setup_room(api, service, world)
    order = world.order(name="张子寒")
    order = order.model_copy(update={"version": 1, "patient": order.patient.model_copy(update={"version": 1})})
    await producer(order, order.accession_number)
    await settle(producer, world)
    waiting = await check_in(api, service, order.accession_number)
    survivor = PatientRef(empi_id=world.id("GOLD"), patient_id=world.id("PG"), name="张子涵", sex="M", version=9)
    await producer(PatientMerged(surviving=survivor, merged_empi_ids=[order.patient.empi_id],
                                 merged_patient_ids=[order.patient.patient_id],
                                 merged_versions={order.patient.empi_id: 2}), survivor.empi_id)

    async def follows() -> Any:
        e = await entry(world, waiting["entry_id"])
        return e if e["empi_id"] == survivor.empi_id else None

    e = await eventually(follows)
    assert (e["patient_id"], e["patient_name"], e["sex"]) == (survivor.patient_id, "张子涵", "M")
    x = await exam(world, order.accession_number)
    assert x is not None and (x["empi_id"], x["patient_id"], x["patient_name"]) == (
        survivor.empi_id, survivor.patient_id, "张子涵")
    assert x["id_number_masked"] == "1101**********1234"  # the exam's copy keeps what the survivor did not say


async def test_partial_or_unversioned_patient_never_blanks_name_sex_or_phone(
        producer: Any, api: httpx.AsyncClient, service: Service, world: World) -> None:
    _, rid = await setup_room(api, service, world)
    order = world.order(name="王芳")
    full = order.patient.model_copy(update={"sex": "F", "phone": "13711112222", "version": 3})
    order = order.model_copy(update={"version": 1, "patient": full})
    await producer(order, order.accession_number)
    await settle(producer, world)
    waiting = await check_in(api, service, order.accession_number)

    # an order change with an unversioned, partial patient: fills nothing known, blanks nothing
    bare = PatientRef(empi_id=full.empi_id, patient_id=full.patient_id, name="王方")
    await producer(changed(order, 2, patient=bare, priority="urgent"), order.accession_number)
    # an appointment whose patient is older than what was applied
    start = datetime.now(UTC) + timedelta(minutes=5)
    await producer(AppointmentBooked(appointment=AppointmentInfo(
        appointment_id=f"AP-{order.order_id}", order_id=order.order_id, accession_number=order.accession_number,
        patient=full.model_copy(update={"name": "王王", "phone": None, "sex": "U", "version": 2}),
        exam_code=order.items[0].code, exam_name="胸部平扫", modality="CT", room_id=rid, room_name="CT1室",
        start=start, end=start + timedelta(minutes=15), version=1)), order.accession_number)
    await settle(producer, world)
    x = await exam(world, order.accession_number)
    assert x is not None and x["priority"] == "urgent" and x["appointment_id"] == f"AP-{order.order_id}"
    assert (x["patient_name"], x["sex"], x["phone"]) == ("王芳", "F", "13711112222")

    # a newer patient.updated without phone or sex: its name wins, the rest stays; the entry follows
    await producer(PatientUpdated(patient=PatientRef(empi_id=full.empi_id, patient_id=full.patient_id,
                                                     name="王芳芳", version=4), changed=["name"]), full.empi_id)

    async def renamed() -> Any:
        e = await entry(world, waiting["entry_id"])
        return e if e["patient_name"] == "王芳芳" else None

    e = await eventually(renamed)
    assert e["sex"] == "F"
    x = await exam(world, order.accession_number)
    assert x is not None and (x["patient_name"], x["sex"], x["phone"]) == ("王芳芳", "F", "13711112222")


async def test_a_cancel_before_the_appointment_keeps_the_exam_out_of_the_queue(
        producer: Any, api: httpx.AsyncClient, service: Service, world: World) -> None:
    _, rid = await setup_room(api, service, world)
    order = world.order()
    await producer(OrderCancelled(order_id=order.order_id, accession_number=order.accession_number, reason="撤销",
                                  version=2), order.accession_number)
    start = datetime.now(UTC) + timedelta(minutes=5)
    await producer(AppointmentBooked(appointment=AppointmentInfo(
        appointment_id=f"AP-{order.order_id}", order_id=order.order_id, accession_number=order.accession_number,
        patient=order.patient, exam_code=order.items[0].code, exam_name="胸部平扫", modality="CT", room_id=rid,
        room_name="CT1室", start=start, end=start + timedelta(minutes=15), version=1)), order.accession_number)
    await producer(order.model_copy(update={"version": 1}), order.accession_number)
    await settle(producer, world)
    x = await exam(world, order.accession_number)
    assert x is not None and x["order_status"] == "cancelled"
    r = await api.post("/check-ins", json={"kind": "barcode", "value": order.accession_number},
                       headers=service.headers("clerk"))
    assert r.status_code == 404, r.text
