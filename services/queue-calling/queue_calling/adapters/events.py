"""Event handlers: what the queue learns from registration, scheduling and the modalities."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
from imaging_common.events import parse_data

from queue_calling.domain import calling, exams, notifications, views
from queue_calling.domain.calling import Who
from queue_calling.domain.errors import QueueError
from queue_calling.domain.states import InvalidTransition

log = logging.getLogger(__name__)
SYSTEM = Who("system", "event")

# A handler runs inside the consumer's transaction and has no hold of the screen hub; it tells
# the hubs through PostgreSQL NOTIFY, which is delivered only if (and when) that transaction commits.
ROOMS_CHANGED = "queue_calling_rooms"


async def on_order_created(conn: asyncpg.Connection, event: Any) -> None:
    await exams.record_order(conn, parse_data(event))


async def on_order_cancelled(conn: asyncpg.Connection, event: Any) -> None:
    data = parse_data(event)
    await exams.cancel_order(conn, accession_number=data.accession_number)
    await _entry_action(conn, data.accession_number, "cancel")


async def on_appointment(conn: asyncpg.Connection, event: Any) -> None:
    await exams.record_appointment(conn, parse_data(event).appointment)


async def on_appointment_cancelled(conn: asyncpg.Connection, event: Any) -> None:
    data = parse_data(event)
    await exams.cancel_appointment(conn, accession_number=data.accession_number, appointment_id=data.appointment_id)


async def on_patient_updated(conn: asyncpg.Connection, event: Any) -> None:
    await exams.update_patient(conn, parse_data(event).patient)


async def on_exam_started(conn: asyncpg.Connection, event: Any) -> None:
    await _entry_action(conn, parse_data(event).accession_number, "start")


async def on_exam_completed(conn: asyncpg.Connection, event: Any) -> None:
    accession = parse_data(event).accession_number
    await _entry_action(conn, accession, "finish")
    await exams.mark_performed(conn, accession_number=accession)  # never checked in or called again


async def _entry_action(conn: asyncpg.Connection, accession_number: str, action: str) -> None:
    """Move the exam's live entry along; an exam never checked in (or already past) is fine."""
    entry = await calling.live_entry_by_accession(conn, accession_number)
    if entry is None:
        return
    now = datetime.now(UTC)
    try:
        if action == "start":
            _, change = await calling.start(conn, entry_id=entry["entry_id"], who=SYSTEM, now=now)
        elif action == "finish":
            if entry["state"] not in ("in_exam", "called"):
                _, change = await calling.start(conn, entry_id=entry["entry_id"], who=SYSTEM, now=now)
            _, change = await calling.finish(conn, entry_id=entry["entry_id"], who=SYSTEM, now=now)
        else:
            _, change = await calling.cancel(conn, entry_id=entry["entry_id"], who=SYSTEM, reason="order cancelled")
    except (InvalidTransition, QueueError) as exc:
        log.info("exam %s: %s ignored (%s)", accession_number, action, exc)
        return
    await views.seal(conn, change)
    await notifications.queue_for(conn, change, now)
    await conn.execute("SELECT pg_notify($1, $2)", ROOMS_CHANGED, json.dumps(sorted(change.rooms)))


HANDLERS = {
    "order.created": on_order_created,
    "order.cancelled": on_order_cancelled,
    "appointment.booked": on_appointment,
    "appointment.rescheduled": on_appointment,
    "appointment.cancelled": on_appointment_cancelled,
    "patient.updated": on_patient_updated,
    "exam.started": on_exam_started,
    "exam.completed": on_exam_completed,
}
