"""Event handlers: registration's orders and scheduling's appointments become worklist steps.

Each runs inside the transaction that records the event in the inbox, so a redelivered event
changes nothing twice; raising makes the bus retry (then dead-letter) the message.
"""

from __future__ import annotations

import asyncpg
from imaging_common.events import CloudEvent, EventHandler, parse_data
from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    OrderCancelled,
    OrderCreated,
    PatientArrived,
    PatientMerged,
    PatientUpdated,
)
from imaging_common.service import handler_settings

from worklist.domain import steps
from worklist.settings import Settings


async def on_order_created(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, OrderCreated)  # or OrderChanged: the whole order either way
    await steps.apply_order_created(conn, data, handler_settings(Settings).tz)


async def on_order_cancelled(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, OrderCancelled)
    await steps.apply_order_cancelled(conn, data)


async def on_appointment_booked(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, AppointmentBooked | AppointmentRescheduled)
    await steps.apply_appointment(conn, data, handler_settings(Settings).tz)


async def on_appointment_cancelled(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, AppointmentCancelled)
    await steps.apply_appointment_cancelled(conn, data)


async def on_patient_arrived(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, PatientArrived)
    await steps.apply_patient_arrived(conn, data)


async def on_patient_updated(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, PatientUpdated)
    await steps.apply_patient_updated(conn, data)


async def on_patient_merged(conn: asyncpg.Connection, event: CloudEvent) -> None:
    data = parse_data(event)
    assert isinstance(data, PatientMerged)
    await steps.apply_patient_merged(conn, data)


HANDLERS: dict[str, EventHandler] = {
    "order.created": on_order_created,
    "order.changed": on_order_created,
    "order.cancelled": on_order_cancelled,
    "appointment.booked": on_appointment_booked,
    "appointment.rescheduled": on_appointment_booked,
    "appointment.cancelled": on_appointment_cancelled,
    "patient.arrived": on_patient_arrived,
    "patient.updated": on_patient_updated,
    "patient.merged": on_patient_merged,
}
