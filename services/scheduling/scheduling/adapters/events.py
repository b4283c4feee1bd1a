"""Event handlers: orders to schedule, their changes and cancellations, arrivals, the modalities' MPPS
and patient record changes, applied by domain/orders.py (which says how). Each runs in the transaction
that records the event in the inbox, after the consumer dropped snapshots older than one applied."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from imaging_common.events import CloudEvent, Handlers, data_only
from imaging_common.events.types import (
    EventData,
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

M = TypeVar("M", bound=EventData)


def with_scheduler(apply: Callable[[asyncpg.Connection, Scheduler, M], Awaitable[Any]]) -> Callable[
        [asyncpg.Connection, M, CloudEvent], Awaitable[None]]:
    """The handler of a domain function of (conn, scheduler, data). Handlers get (conn, data, event) only;
    their scheduler comes from the settings the app was made with."""

    async def handler(conn: asyncpg.Connection, data: M, event: CloudEvent) -> None:
        await apply(conn, scheduler_for(handler_settings(Settings)), data)

    return handler


HANDLERS: Handlers = {
    OrderCreated: with_scheduler(orders.apply_order),  # order.created and order.changed: whole snapshots
    OrderChanged: with_scheduler(orders.apply_order),  # an OrderCreated too: the whole order
    OrderCancelled: with_scheduler(orders.apply_order_cancelled),
    PatientArrived: with_scheduler(orders.apply_patient_arrived),
    ExamStarted: with_scheduler(orders.apply_exam_progress),
    ExamCompleted: with_scheduler(orders.apply_exam_progress),
    PatientUpdated: data_only(orders.apply_patient_updated),
    PatientMerged: data_only(orders.apply_patient_merged),
}
