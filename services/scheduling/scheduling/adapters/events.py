"""Event handlers: orders to schedule, their changes and cancellations, arrivals, the modalities' MPPS
and patient record changes, applied by domain/orders.py (which says how). Each runs in the transaction
that records the event in the inbox, after the consumer dropped snapshots older than one applied."""

from __future__ import annotations

import asyncpg
from imaging_common.events import CloudEvent, Handlers
from imaging_common.events.types import (
    ExamCompleted,
    ExamStarted,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    PatientArrived,
    PatientMerged,
    PatientUpdated,
)
from imaging_common.service import handler_settings

from scheduling.adapters.deps import scheduler_for
from scheduling.domain import orders
from scheduling.domain.booking import Scheduler
from scheduling.settings import Settings


def _scheduler() -> Scheduler:
    # Handlers get (conn, data, event) only; their scheduler comes from the settings the app was made with.
    return scheduler_for(handler_settings(Settings))


async def on_order(conn: asyncpg.Connection, data: OrderCreated, event: CloudEvent) -> None:
    """order.created and order.changed (both whole snapshots of the order)."""
    await orders.apply_order(conn, _scheduler(), data)


async def on_order_cancelled(conn: asyncpg.Connection, data: OrderCancelled, event: CloudEvent) -> None:
    await orders.apply_order_cancelled(conn, _scheduler(), data)


async def on_patient_arrived(conn: asyncpg.Connection, data: PatientArrived, event: CloudEvent) -> None:
    await orders.apply_patient_arrived(conn, _scheduler(), data)


async def on_exam_progress(conn: asyncpg.Connection, data: ExamStarted | ExamCompleted, event: CloudEvent) -> None:
    await orders.apply_exam_progress(conn, _scheduler(), data)


async def on_patient_updated(conn: asyncpg.Connection, data: PatientUpdated, event: CloudEvent) -> None:
    await orders.apply_patient_updated(conn, data)


async def on_patient_merged(conn: asyncpg.Connection, data: PatientMerged, event: CloudEvent) -> None:
    await orders.apply_patient_merged(conn, data)


HANDLERS: Handlers = {
    OrderCreated: on_order,
    OrderChanged: on_order,  # an OrderCreated too: the whole order
    OrderCancelled: on_order_cancelled,
    PatientArrived: on_patient_arrived,
    ExamStarted: on_exam_progress,
    ExamCompleted: on_exam_progress,
    PatientUpdated: on_patient_updated,
    PatientMerged: on_patient_merged,
}
