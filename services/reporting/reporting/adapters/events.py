"""Event handlers: orders and completed exams become the radiologists' worklist; patient
updates and merges follow the patient. Each runs in the transaction that records the event in
the inbox, so a redelivery changes nothing twice; raising makes the bus retry, then dead-letter."""

from __future__ import annotations

import asyncpg
from imaging_common.events import CloudEvent, EventHandler, parse_data
from imaging_common.events.types import ExamCompleted, OrderCancelled, OrderCreated, PatientMerged, PatientUpdated

from reporting.domain import exams


async def on_order_created(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, OrderCreated)
    await exams.apply_order_created(conn, data)


async def on_order_cancelled(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, OrderCancelled)
    await exams.apply_order_cancelled(conn, data)


async def on_exam_completed(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, ExamCompleted)
    await exams.apply_exam_completed(conn, data)


async def on_patient_updated(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, PatientUpdated)
    await exams.apply_patient_updated(conn, data)


async def on_patient_merged(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, PatientMerged)
    await exams.apply_patient_merged(conn, data)


HANDLERS: dict[str, EventHandler] = {
    "order.created": on_order_created,
    "order.cancelled": on_order_cancelled,
    "exam.completed": on_exam_completed,
    "patient.updated": on_patient_updated,
    "patient.merged": on_patient_merged,
}
