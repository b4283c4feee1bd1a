"""Event handlers: what the portal learns of its patients' exams from the other services.

Order, appointment and patient events reach a handler only when newer than what was applied
(imaging_common.events.versions); exam progress moves only forward (domain/exams.py).
Bookings, reminders, reports, amendments and (per department policy) critical results queue a
message to the patient's phone in the same transaction (domain/notices.py).
"""

from __future__ import annotations

import asyncpg
from imaging_common.events import CloudEvent, Handlers
from imaging_common.events import types as ev
from imaging_common.service import handler_settings

from patient_portal.domain import exams, notices
from patient_portal.settings import Settings


async def on_order(conn: asyncpg.Connection, data: ev.OrderCreated, event: CloudEvent) -> None:
    await exams.record_order(conn, data)


async def on_order_cancelled(conn: asyncpg.Connection, data: ev.OrderCancelled, event: CloudEvent) -> None:
    await exams.cancel_order(conn, data.accession_number)


async def on_appointment(conn: asyncpg.Connection, data: ev.AppointmentBooked | ev.AppointmentRescheduled,
                         event: CloudEvent) -> None:
    await exams.record_appointment(conn, data.appointment)
    kind = "appointment-rescheduled" if isinstance(data, ev.AppointmentRescheduled) else "appointment-booked"
    await notices.appointment(conn, handler_settings(Settings), data.appointment, kind=kind)


async def on_reminder(conn: asyncpg.Connection, data: ev.AppointmentReminder, event: CloudEvent) -> None:
    """scheduling's reminder (smart-imaging standard 5.3.3): to the patient, with the preparation."""
    await exams.record_patient(conn, data.appointment.patient)
    await notices.appointment(conn, handler_settings(Settings), data.appointment, kind="appointment-reminder",
                              preparation=data.preparation)


async def on_critical(conn: asyncpg.Connection, data: ev.CriticalRaised, event: CloudEvent) -> None:
    await exams.record_patient(conn, data.patient)
    await notices.critical(conn, handler_settings(Settings), data)


async def on_appointment_cancelled(conn: asyncpg.Connection, data: ev.AppointmentCancelled, event: CloudEvent) -> None:
    await exams.cancel_appointment(conn, data.accession_number, data.appointment_id)


async def on_arrived(conn: asyncpg.Connection, data: ev.PatientArrived, event: CloudEvent) -> None:
    await exams.record_patient(conn, data.patient)
    if await exams.arrived(conn, data.accession_number, queue_number=data.queue_number, at=data.arrived_at):
            await notices.checked_in(conn, handler_settings(Settings), accession_number=data.accession_number,
                                 empi_id=data.patient.empi_id, ticket=data.queue_number)


async def on_exam_started(conn: asyncpg.Connection, data: ev.ExamStarted, event: CloudEvent) -> None:
    await exams.started(conn, data.accession_number)


async def on_exam_completed(conn: asyncpg.Connection, data: ev.ExamCompleted, event: CloudEvent) -> None:
    if data.status == "completed":
        await exams.completed(conn, data.accession_number, at=data.completed_at)


async def on_report(conn: asyncpg.Connection, data: ev.ReportSigned | ev.ReportAmended, event: CloudEvent) -> None:
    applied = await exams.reported(conn, data.accession_number, report_id=data.report_id, version=data.version,
                                   impression=getattr(data, "impression", None), at=data.signed_at,
                                   signed_by=data.signed_by, content_sha256=getattr(data, "content_sha256", None))
    if applied:  # a late, older version tells no one
        await notices.report(conn, handler_settings(Settings), accession_number=data.accession_number,
                             report_id=data.report_id, version=data.version,
                             amended=isinstance(data, ev.ReportAmended))


async def on_patient_updated(conn: asyncpg.Connection, data: ev.PatientUpdated, event: CloudEvent) -> None:
    await exams.record_patient(conn, data.patient)


async def on_patient_merged(conn: asyncpg.Connection, data: ev.PatientMerged, event: CloudEvent) -> None:
    await exams.merge_patients(conn, data.surviving, list(data.merged_empi_ids))


HANDLERS: Handlers = {
    ev.OrderCreated: on_order,
    ev.OrderChanged: on_order,
    ev.OrderCancelled: on_order_cancelled,
    ev.AppointmentBooked: on_appointment,
    ev.AppointmentRescheduled: on_appointment,
    ev.AppointmentCancelled: on_appointment_cancelled,
    ev.AppointmentReminder: on_reminder,
    ev.CriticalRaised: on_critical,
    ev.PatientArrived: on_arrived,
    ev.ExamStarted: on_exam_started,
    ev.ExamCompleted: on_exam_completed,
    ev.ReportSigned: on_report,
    ev.ReportAmended: on_report,
    ev.PatientUpdated: on_patient_updated,
    ev.PatientMerged: on_patient_merged,
}
