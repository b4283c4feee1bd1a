"""Event handlers: orders and completed exams become the radiologists' worklist; changed orders,
patient updates and merges follow the patient (domain/patients.py says how, signed reports included);
films matched by the print SCP are listed with their exam. Each runs in the transaction that records
the event in the inbox, after the consumer has checked the event's per-subject versions, so a
redelivery or an older snapshot changes nothing; raising makes the bus retry, then dead-letter."""

from __future__ import annotations

import asyncpg
from imaging_common.events import CloudEvent, Handlers, data_only
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


async def on_film_matched(conn: asyncpg.Connection, data: FilmMatched, event: CloudEvent) -> None:
    await films.apply_matched(conn, data, event.time)


async def on_film_unmatched(conn: asyncpg.Connection, data: FilmUnmatched, event: CloudEvent) -> None:
    await films.apply_unmatched(conn, data, event.time)


HANDLERS: Handlers = {
    # order.created and order.changed alike: a whole order snapshot, upserted.
    OrderCreated: data_only(exams.apply_order_created),
    OrderChanged: data_only(exams.apply_order_created),  # an OrderCreated too: the whole order
    OrderCancelled: data_only(exams.apply_order_cancelled),
    ExamCompleted: data_only(exams.apply_exam_completed),
    PatientUpdated: data_only(exams.apply_patient_updated),
    PatientMerged: data_only(exams.apply_patient_merged),
    FilmMatched: on_film_matched,
    FilmUnmatched: on_film_unmatched,
}
