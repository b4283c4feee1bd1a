"""Event handlers: how each order's exam goes, from the services that run it (domain/his_status.py).

    appointment.booked, appointment.rescheduled (scheduling)  -> scheduled (with the appointment's start)
    exam.started (worklist, MPPS IN PROGRESS)                  -> in-progress
    exam.completed (worklist, MPPS COMPLETED / DISCONTINUED)   -> completed / discontinued

Each runs in the transaction that records the event in the inbox, after the consumer dropped stale
appointment versions; exam events carry no order version, so the status itself only moves forward.
The FHIR ServiceRequest shows it, and the HIS is told about the orders it placed. patient.arrived is
not subscribed: checked in is not yet "in process" for the HIS (docs/hl7-interface.md).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg
from imaging_common.events import CloudEvent, Handlers
from imaging_common.events.types import AppointmentBooked, AppointmentRescheduled, ExamCompleted, ExamStarted

from registration.adapters import hl7_status
from registration.domain import his_status

log = logging.getLogger(__name__)


async def on_appointment(conn: asyncpg.Connection, data: AppointmentBooked | AppointmentRescheduled,
                         event: CloudEvent) -> None:
    appointment = data.appointment
    outcome = await his_status.advance(conn, status="scheduled", at=event.time or datetime.now(UTC),
                                       render=hl7_status.render, order_id=appointment.order_id,
                                       accession_number=appointment.accession_number, start=appointment.start)
    log.info("%s %s: %s", event.type, appointment.accession_number, outcome)


async def on_exam_started(conn: asyncpg.Connection, data: ExamStarted, event: CloudEvent) -> None:
    outcome = await his_status.advance(conn, status="in-progress", at=data.started_at, render=hl7_status.render,
                                       accession_number=data.accession_number)
    log.info("exam.started %s: %s", data.accession_number, outcome)


async def on_exam_completed(conn: asyncpg.Connection, data: ExamCompleted, event: CloudEvent) -> None:
    outcome = await his_status.advance(conn, status=data.status, at=data.completed_at, render=hl7_status.render,
                                       order_id=data.order_id, accession_number=data.accession_number)
    log.info("exam.completed (%s) %s: %s", data.status, data.accession_number, outcome)


HANDLERS: Handlers = {
    AppointmentBooked: on_appointment,
    AppointmentRescheduled: on_appointment,
    ExamStarted: on_exam_started,
    ExamCompleted: on_exam_completed,
}
