"""Event handlers: orders and completed exams become the radiologists' worklist; changed orders,
patient updates and merges follow the patient (domain/patients.py says how, signed reports included);
films matched by the print SCP are listed with their exam. Each runs in the transaction that records
the event in the inbox, after the consumer has checked the event's per-subject versions, so a
redelivery or an older snapshot changes nothing; raising makes the bus retry, then dead-letter."""

from __future__ import annotations

import asyncpg
from imaging_common.events import CloudEvent, EventHandler, parse_data
from imaging_common.events.types import (
    ExamCompleted,
    FilmMatched,
    FilmUnmatched,
    OrderCancelled,
    OrderCreated,
    PatientMerged,
    PatientUpdated,
)

from reporting.domain import exams, films


async def on_order(conn: asyncpg.Connection, event: CloudEvent) -> None:
    """order.created and order.changed alike: a whole order snapshot, upserted."""
    data = parse_data(event)
    assert isinstance(data, OrderCreated)  # OrderChanged is one
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


async def on_film_matched(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, FilmMatched)
    await films.apply_matched(conn, data, event.time)


async def on_film_unmatched(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, FilmUnmatched)
    await films.apply_unmatched(conn, data, event.time)


HANDLERS: dict[str, EventHandler] = {
    "order.created": on_order,
    "order.changed": on_order,
    "order.cancelled": on_order_cancelled,
    "exam.completed": on_exam_completed,
    "patient.updated": on_patient_updated,
    "patient.merged": on_patient_merged,
    "film.matched": on_film_matched,
    "film.unmatched": on_film_unmatched,
}
