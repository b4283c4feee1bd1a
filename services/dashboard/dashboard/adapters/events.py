"""Event handlers: every service's events fill the statistics read model (domain/facts.py) and the
devices' activity (domain/devices.py). Each runs in the transaction that records the event in the
inbox, after the consumer has checked the event's per-subject versions (an older snapshot never
reaches us). Times the producers state are theirs (our own services' clocks); where an event states
none (a cancellation, a no-show, a film matched), the envelope's time, when it was published, is used."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from imaging_common.events import CloudEvent, Handlers
from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentNoShow,
    AppointmentRescheduled,
    CriticalAcknowledged,
    CriticalClosed,
    CriticalRaised,
    ExamCompleted,
    ExamStarted,
    FilmMatched,
    FilmPrinted,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    PatientArrived,
    PatientMerged,
    PatientUpdated,
    ReportAmended,
    ReportSigned,
)

from dashboard.domain import devices, facts, qc


def _when(event: CloudEvent) -> datetime:
    return event.time or datetime.now(UTC)


async def on_order(conn: asyncpg.Connection, data: OrderCreated, event: CloudEvent) -> None:
    await facts.order(conn, data)
    await qc.consider(conn, "request", data.accession_number, modality=data.items[0].modality if data.items else None,
                      person=data.ordering_doctor or data.ordering_doctor_id)


async def on_order_cancelled(conn: asyncpg.Connection, data: OrderCancelled, event: CloudEvent) -> None:
    await facts.cancelled(conn, data, at=_when(event))


async def on_booked(conn: asyncpg.Connection, data: AppointmentBooked, event: CloudEvent) -> None:
    await facts.appointment(conn, data.appointment, at=_when(event))


async def on_no_show(conn: asyncpg.Connection, data: AppointmentNoShow, event: CloudEvent) -> None:
    await facts.merge_exam(conn, data.accession_number, order_id=data.order_id, no_show_at=_when(event))


async def on_arrived(conn: asyncpg.Connection, data: PatientArrived, event: CloudEvent) -> None:
    await facts.merge_exam(conn, data.accession_number, order_id=data.order_id, room_id=data.room_id,
                           arrived_at=data.arrived_at)


async def on_exam_started(conn: asyncpg.Connection, data: ExamStarted, event: CloudEvent) -> None:
    await facts.exam_started(conn, data)
    await devices.touch(conn, data.station_ae_title, data.started_at)


async def on_exam_completed(conn: asyncpg.Connection, data: ExamCompleted, event: CloudEvent) -> None:
    await facts.exam_completed(conn, data)
    await devices.touch(conn, data.station_ae_title, data.completed_at)
    if data.status == "completed":
        await qc.consider(conn, "image", data.accession_number, modality=data.modality, person=data.station_ae_title)


async def on_film_printed(conn: asyncpg.Connection, data: FilmPrinted, event: CloudEvent) -> None:
    await devices.touch(conn, data.calling_ae_title, data.printed_at)


async def on_film_matched(conn: asyncpg.Connection, data: FilmMatched, event: CloudEvent) -> None:
    await facts.merge_exam(conn, data.accession_number, delivered_at=_when(event))


async def on_report_signed(conn: asyncpg.Connection, data: ReportSigned, event: CloudEvent) -> None:
    await facts.report_signed(conn, data)
    modality = await facts.modality_of(conn, data.accession_number)
    await qc.consider(conn, "report", data.accession_number, modality=modality, person=data.signed_by)


async def on_report_amended(conn: asyncpg.Connection, data: ReportAmended, event: CloudEvent) -> None:
    await facts.report_amended(conn, data)


async def on_critical_raised(conn: asyncpg.Connection, data: CriticalRaised, event: CloudEvent) -> None:
    await facts.critical_raised(conn, data)


async def on_critical_acknowledged(conn: asyncpg.Connection, data: CriticalAcknowledged, event: CloudEvent) -> None:
    await facts.critical_step(conn, data.critical_id, data.accession_number, acknowledged_at=data.acknowledged_at)


async def on_critical_closed(conn: asyncpg.Connection, data: CriticalClosed, event: CloudEvent) -> None:
    await facts.critical_step(conn, data.critical_id, data.accession_number, closed_at=data.closed_at,
                              outcome=data.outcome)


async def on_patient_updated(conn: asyncpg.Connection, data: PatientUpdated, event: CloudEvent) -> None:
    await facts.record_patient(conn, data.patient)


async def on_patient_merged(conn: asyncpg.Connection, data: PatientMerged, event: CloudEvent) -> None:
    await facts.patient_merged(conn, data.surviving, data.merged_empi_ids)


HANDLERS: Handlers = {
    OrderCreated: on_order,
    OrderChanged: on_order,  # the whole order, as order.created
    OrderCancelled: on_order_cancelled,
    AppointmentBooked: on_booked,
    AppointmentRescheduled: on_booked,  # the new time and place; the first booking time is kept
    AppointmentNoShow: on_no_show,
    PatientArrived: on_arrived,
    ExamStarted: on_exam_started,
    ExamCompleted: on_exam_completed,
    FilmPrinted: on_film_printed,
    FilmMatched: on_film_matched,
    ReportSigned: on_report_signed,
    ReportAmended: on_report_amended,
    CriticalRaised: on_critical_raised,
    CriticalAcknowledged: on_critical_acknowledged,
    CriticalClosed: on_critical_closed,
    PatientUpdated: on_patient_updated,
    PatientMerged: on_patient_merged,
}
