"""Event handlers: registration's orders and scheduling's appointments become worklist steps.

Each runs inside the transaction that records the event in the inbox, so a redelivered event
changes nothing twice; raising makes the bus retry (then dead-letter) the message.
"""

from __future__ import annotations

import asyncpg
from imaging_common.events import CloudEvent, Handlers, data_only
from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    PatientArrived,
    PatientMerged,
    PatientUpdated,
)
from imaging_common.service import handler_settings

from worklist.domain import steps
from worklist.settings import Settings


async def on_order_created(conn: asyncpg.Connection, data: OrderCreated, event: CloudEvent) -> None:
    await steps.apply_order_created(conn, data, handler_settings(Settings).tz)


async def on_appointment_booked(conn: asyncpg.Connection, data: AppointmentBooked | AppointmentRescheduled,
                               event: CloudEvent) -> None:
    await steps.apply_appointment(conn, data, handler_settings(Settings).tz)


HANDLERS: Handlers = {
    OrderCreated: on_order_created,
    OrderChanged: on_order_created,  # the whole order either way
    OrderCancelled: data_only(steps.apply_order_cancelled),
    AppointmentBooked: on_appointment_booked,
    AppointmentRescheduled: on_appointment_booked,
    AppointmentCancelled: data_only(steps.apply_appointment_cancelled),
    PatientArrived: data_only(steps.apply_patient_arrived),
    PatientUpdated: data_only(steps.apply_patient_updated),
    PatientMerged: data_only(steps.apply_patient_merged),
}
