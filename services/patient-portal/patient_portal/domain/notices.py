"""What each event tells the patient: the message, its cause (one message per cause), its timing.
Called by the event handlers in the event's transaction, after the read model took the event."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import asyncpg
from imaging_common.events.types import AppointmentInfo, CriticalRaised

from patient_portal.domain import messages
from patient_portal.settings import Settings


def _when(at: datetime, s: Settings) -> str:
    local = at.astimezone(ZoneInfo(s.patient_timezone))
    return f"{local.month}月{local.day}日 {local:%H:%M}"


async def _queue(conn: asyncpg.Connection, s: Settings, *, dedup_key: str, kind: str, empi_id: str,
                 accession_number: str, **values: object) -> bool:
    body = messages.render(kind, signature=s.patient_sms_signature, **values)
    return await messages.enqueue(conn, dedup_key=dedup_key, kind=kind, empi_id=empi_id, body=body,
                                  accession_number=accession_number, now=datetime.now(UTC),
                                  quiet=messages.QuietHours.parse(s.patient_quiet_hours, s.patient_timezone))


async def appointment(conn: asyncpg.Connection, s: Settings, a: AppointmentInfo, *, kind: str,
                      preparation: str | None = None) -> bool:
    """appointment-booked / -rescheduled (one per appointment version), appointment-reminder (one per start)."""
    cause = a.start.isoformat() if kind == "appointment-reminder" else str(a.version)
    return await _queue(conn, s, dedup_key=f"{kind}:{a.appointment_id}:{cause}", kind=kind,
                        empi_id=a.patient.empi_id, accession_number=a.accession_number, exam=a.exam_name,
                        time=_when(a.start, s), room=a.room_name, preparation=preparation or "")


async def checked_in(conn: asyncpg.Connection, s: Settings, *, accession_number: str, empi_id: str,
                     ticket: str) -> bool:
    """patient.arrived: the ticket the patient waits with (one message per ticket)."""
    return await _queue(conn, s, dedup_key=f"checked-in:{accession_number}:{ticket}", kind="checked-in",
                        empi_id=empi_id, accession_number=accession_number, ticket=ticket,
                        url=f"{s.patient_public_base_url.rstrip('/')}/ui/patient/")


async def report(conn: asyncpg.Connection, s: Settings, *, accession_number: str, report_id: str,
                 version: int, amended: bool) -> bool:
    exam = await conn.fetchrow("SELECT empi_id, exam_name FROM exam WHERE accession_number = $1", accession_number)
    if exam is None:
        return False
    kind = "report-amended" if amended else "report-ready"
    return await _queue(conn, s, dedup_key=f"report:{report_id}:{version}", kind=kind, empi_id=exam["empi_id"],
                        accession_number=accession_number, exam=exam["exam_name"], version=version,
                        url=f"{s.patient_public_base_url.rstrip('/')}/ui/patient/")


def critical_wanted(s: Settings, department: str | None) -> bool:
    wanted = {d.strip() for d in s.patient_critical_departments.split(",") if d.strip()}
    return "*" in wanted or (department is not None and department in wanted)


async def critical(conn: asyncpg.Connection, s: Settings, data: CriticalRaised) -> bool:
    """Per department policy only; says that it is urgent, never what was found."""
    if not critical_wanted(s, data.ordering_department):
        return False
    exam = await conn.fetchrow("SELECT exam_name FROM exam WHERE accession_number = $1", data.accession_number)
    return await _queue(conn, s, dedup_key=f"critical:{data.critical_id}", kind="critical",
                        empi_id=data.patient.empi_id, accession_number=data.accession_number,
                        exam=exam["exam_name"] if exam else "影像", department=data.ordering_department or "开单科室")
