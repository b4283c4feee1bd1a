"""Through RabbitMQ: order.created and appointment.booked from a producer's outbox reach the queue
service, which checks the patient in by appointment number and publishes patient.arrived;
exam.started / exam.completed move the entry; order.cancelled takes it out of the queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from imaging_common.events.types import ExamCompleted, OrderCancelled
from imaging_testing import event_producer

from .conftest import Service, World
from .test_http import setup_room

PRODUCER_SCHEMA = "queue_calling_test_producer"


@pytest.fixture(scope="module")
async def producer(test_env: dict[str, str]) -> AsyncIterator[Any]:
    """Another service's outbox and relay (registration), publishing onto the session's exchange."""
    async with event_producer(test_env["DATABASE_URL"], service="registration", schema=PRODUCER_SCHEMA) as emit:
        yield emit


async def eventually(check: Any, within: float = 20) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def test_events_in_and_out_through_rabbitmq(producer: Any, api: httpx.AsyncClient, service: Service,
                                                  world: World) -> None:
    qid, rid = await setup_room(api, service, world)
    order = world.order(name="赵六")
    await producer(order, order.accession_number)
    appt_start = datetime.now(UTC) + timedelta(minutes=5)
    from imaging_common.events.types import AppointmentBooked, AppointmentInfo

    await producer(AppointmentBooked(appointment=AppointmentInfo(
        appointment_id=f"AP-{order.order_id}", order_id=order.order_id, accession_number=order.accession_number,
        patient=order.patient, exam_code=order.items[0].code, exam_name="胸部CT", modality="CT", room_id=rid,
        room_name="CT1室", start=appt_start, end=appt_start + timedelta(minutes=15))), order.accession_number)

    async def booked() -> bool:
        return bool(await world.pool.fetchval(
            "SELECT appointment_id IS NOT NULL FROM exam WHERE accession_number = $1", order.accession_number))

    await eventually(booked)
    r = await api.post("/check-ins", json={"kind": "appointment", "value": f"AP-{order.order_id}"},
                       headers=service.headers("clerk"))
    assert r.status_code == 201, r.text
    entry = r.json()["data"][0]
    # the order's item names the exam; the appointment's copy does not override it once the order is known
    assert entry["on_time"] is True and entry["exam_name"] == "胸部平扫"

    async def arrived_published() -> Any:
        return await world.pool.fetchrow(
            "SELECT published_at, envelope FROM outbox WHERE type = 'patient.arrived' AND envelope->>'subject' = $1 "
            "AND published_at IS NOT NULL", order.accession_number)

    row = await eventually(arrived_published)
    assert row["published_at"] is not None

    await api.post(f"/rooms/{rid}/call-next", headers=service.headers("nurse"))
    await producer(ExamCompleted(
        accession_number=order.accession_number, study_instance_uid=order.study_instance_uid, patient=order.patient,
        mpps_uid="1.2.9", station_ae_title="CT1", modality="CT", completed_at=datetime.now(UTC)),
        order.accession_number)

    async def done() -> bool:
        return await world.state(entry["entry_id"]) == "done"

    await eventually(done)
    # A performed exam is not checked in (and so never called) again.
    again = await api.post("/check-ins", json={"kind": "appointment", "value": f"AP-{order.order_id}"},
                           headers=service.headers("clerk"))
    assert again.status_code == 409 and again.json()["code"] == "check-in-performed", again.text

    # a cancelled order leaves the queue
    other = world.order()
    await producer(other, other.accession_number)

    async def known() -> bool:
        return bool(await world.pool.fetchval("SELECT true FROM exam WHERE accession_number = $1",
                                              other.accession_number))

    await eventually(known)
    waiting = (await api.post("/check-ins", json={"kind": "barcode", "value": other.accession_number},
                              headers=service.headers("clerk"))).json()["data"][0]
    await producer(OrderCancelled(order_id=other.order_id, accession_number=other.accession_number, reason="x"),
                   other.accession_number)

    async def cancelled() -> bool:
        return await world.state(waiting["entry_id"]) == "cancelled"

    await eventually(cancelled)
    assert qid
