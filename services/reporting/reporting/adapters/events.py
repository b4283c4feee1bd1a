"""Event handlers: orders and completed exams become the radiologists' worklist; changed orders,
patient updates and merges follow the patient (domain/patients.py says how, signed reports included);
films matched by the print SCP are listed with their exam. Each runs in the transaction that records
the event in the inbox, after the consumer has checked the event's per-subject versions, so a
redelivery or an older snapshot changes nothing; raising makes the bus retry, then dead-letter."""

from __future__ import annotations

import asyncpg
from imaging_common.events import CloudEvent, Handlers
from imaging_common.events.types import (
    ExamCompleted,
    FilmMatched,
    FilmUnmatched,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    PatientMerged,
    PatientUpdated,
)

from reporting.domain import exams, films


async def on_order(conn: asyncpg.Connection, data: OrderCreated, event: CloudEvent) -> None:
    """order.created and order.changed alike: a whole order snapshot, upserted."""
    await exams.apply_order_created(conn, data)


async def on_order_cancelled(conn: asyncpg.Connection, data: OrderCancelled, event: CloudEvent) -> None:
    await exams.apply_order_cancelled(conn, data)


async def on_exam_completed(conn: asyncpg.Connection, data: ExamCompleted, event: CloudEvent) -> None:
    await exams.apply_exam_completed(conn, data)


async def on_patient_updated(conn: asyncpg.Connection, data: PatientUpdated, event: CloudEvent) -> None:
    await exams.apply_patient_updated(conn, data)


async def on_patient_merged(conn: asyncpg.Connection, data: PatientMerged, event: CloudEvent) -> None:
    await exams.apply_patient_merged(conn, data)


async def on_film_matched(conn: asyncpg.Connection, data: FilmMatched, event: CloudEvent) -> None:
    await films.apply_matched(conn, data, event.time)


async def on_film_unmatched(conn: asyncpg.Connection, data: FilmUnmatched, event: CloudEvent) -> None:
    await films.apply_unmatched(conn, data, event.time)


HANDLERS: Handlers = {
    OrderCreated: on_order,
    OrderChanged: on_order,  # an OrderCreated too: the whole order
    OrderCancelled: on_order_cancelled,
    ExamCompleted: on_exam_completed,
    PatientUpdated: on_patient_updated,
    PatientMerged: on_patient_merged,
    FilmMatched: on_film_matched,
    FilmUnmatched: on_film_unmatched,
}
