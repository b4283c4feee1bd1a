"""FHIR R4 read views: Schedule (one per room), Slot (its time slices), Appointment, and the
`Appointment/$find` search for allowed slots. Built with fhir.resources' R4B models (R4B keeps R4's
Schedule/Slot/Appointment unchanged) and served as application/fhir+json under the platform's FHIR
base /fhir/R4 (imaging_common.fhir; the former /api/scheduling/fhir/... redirects there)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot
from imaging_common import audit
from imaging_common.fhir import FhirFace
from imaging_common.fhir.resources import fhir_response, outcome, searchset
from pydantic import AwareDatetime

from scheduling.adapters.deps import Conn, Reader, SchedulerDep
from scheduling.adapters.errors import DomainRoute
from scheduling.adapters.fhir_capability import MAX_SLOT_DAYS, RESOURCES
from scheduling.domain import appointments, booking, configuration
from scheduling.domain.calendar import load_calendar
from scheduling.domain.model import Placement, Room

router = APIRouter(tags=["fhir"], route_class=DomainRoute)

FACE = FhirFace(router, RESOURCES)


def schedule_of(room: Room, horizon_days: int, now: datetime) -> Schedule:
    return Schedule.model_validate(
        {
            "resourceType": "Schedule",
            "id": room.id,
            "active": room.active,
            "serviceType": [
                {
                    "coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": room.modality}],
                    "text": room.modality,
                }
            ],
            "actor": [{"reference": f"Location/{room.id}", "display": f"{room.campus} {room.name}".strip()}],
            "planningHorizon": {"start": now.isoformat(), "end": (now + timedelta(days=horizon_days)).isoformat()},
            "comment": room.location or None,
        }
    )


def appointment_resource(a: dict[str, Any]) -> Appointment:
    patient = a["patient"]
    data: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": a["id"],
        "status": a["status"],
        "identifier": [{"system": "urn:imaging:accession", "value": a["accession_number"]}],
        "serviceType": [
            {
                "coding": [{"system": "urn:imaging:exam-code", "code": a["exam_code"], "display": a["exam_name"]}],
                "text": a["exam_name"],
            }
        ],
        "priority": {"stat": 1, "urgent": 3}.get(a["priority"], 5),
        "start": a["start"].isoformat(),
        "end": a["end"].isoformat(),
        "minutesDuration": int((a["end"] - a["start"]).total_seconds() // 60),
        "created": a["created_at"].isoformat(),
        "basedOn": [{"reference": f"ServiceRequest/{a['order_id']}"}],
        "patientInstruction": a["preparation"] or None,
        "participant": [
            {"actor": {"reference": f"Patient/{a['empi_id']}", "display": patient.get("name")}, "status": "accepted"},
            {"actor": {"reference": f"Location/{a['room_id']}", "display": a["room_name"]}, "status": "accepted"},
        ],
    }
    if a["status"] in ("cancelled", "noshow", "entered-in-error") and a["reason"]:
        data["cancelationReason"] = {"text": a["reason"]}
    return Appointment.model_validate(data)


def proposed(p: Placement) -> Appointment:
    return Appointment.model_validate(
        {
            "resourceType": "Appointment",
            "status": "proposed",
            "serviceType": [
                {"coding": [{"system": "urn:imaging:exam-code", "code": p.exam.code, "display": p.exam.name}]}
            ],
            "start": p.start.isoformat(),
            "end": p.end.isoformat(),
            "minutesDuration": p.exam.duration_minutes,
            "basedOn": [{"reference": f"ServiceRequest/{p.request.order_id}"}],
            "participant": [
                {"actor": {"reference": f"Patient/{p.request.empi_id}"}, "status": "needs-action"},
                {"actor": {"reference": f"Location/{p.room.id}", "display": p.room.name}, "status": "accepted"},
            ],
        }
    )


@router.get("/Schedule", summary="FHIR Schedules: one per room")
async def schedules(conn: Conn, s: SchedulerDep, user: Reader, request: Request) -> JSONResponse:
    rooms = [Room.from_row(r) for r in await configuration.rooms_by_id(conn)]
    return fhir_response(searchset(request, [schedule_of(r, s.horizon_days, s.now()) for r in rooms]))


@router.get("/Schedule/{room_id}", summary="FHIR Schedule of one room")
async def schedule(room_id: str, conn: Conn, s: SchedulerDep, user: Reader) -> JSONResponse:
    row = await configuration.room(conn, room_id)
    if row is None:
        return outcome(404, "not-found", f"Schedule/{room_id} is not known")
    return fhir_response(schedule_of(Room.from_row(row), s.horizon_days, s.now()))


@router.get("/Slot", summary="FHIR Slots of a room's schedule: free, busy or closed")
async def slots(
    conn: Conn,
    s: SchedulerDep,
    user: Reader,
    request: Request,
    schedule: Annotated[str, Query(description="Schedule/<room id> or the room id")],
    start: Annotated[AwareDatetime, Query(description="from (ge)")],
    end: Annotated[AwareDatetime | None, Query(description="to (lt), at most 14 days after start")] = None,
    status: str | None = None,
) -> JSONResponse:
    room_id = schedule.removeprefix("Schedule/")
    end = end or start + timedelta(days=1)
    if end <= start or end - start > timedelta(days=MAX_SLOT_DAYS):
        return outcome(400, "invalid", f"end must be after start and within {MAX_SLOT_DAYS} days")
    modality = await configuration.room_modality(conn, room_id)
    if modality is None:
        return outcome(404, "not-found", f"Schedule/{room_id} is not known")
    cal = await load_calendar(conn, tz=s.tz, now=s.now(), start=start, end=end, modalities=[modality])
    room = cal.rooms[room_id]
    out: list[Slot] = []
    step = timedelta(minutes=room.slice_minutes)
    day = start.astimezone(s.tz).date()
    while cal.at(day, datetime.min.time()) < end:
        for s0, s1, _ in cal.sessions_on(room_id, day):
            t = s0
            while t + step <= s1:
                if start <= t < end:
                    state = (
                        "busy-unavailable"
                        if cal._closed(room, t, t + step)
                        else "busy"
                        if cal._room_overlap(room_id, t, t + step, None)
                        else "free"
                    )
                    if status is None or status == state:
                        out.append(
                            Slot.model_validate(
                                {
                                    "resourceType": "Slot",
                                    "id": f"{room_id}.{t.astimezone(s.tz):%Y%m%d%H%M}",
                                    "schedule": {"reference": f"Schedule/{room_id}"},
                                    "status": state,
                                    "start": t.astimezone(s.tz).isoformat(),
                                    "end": (t + step).astimezone(s.tz).isoformat(),
                                }
                            )
                        )
                t += step
        day += timedelta(days=1)
    return fhir_response(searchset(request, out))


@router.get("/Appointment/$find", summary="Find allowed slots for a requested exam ($find): proposed Appointments")
async def find(
    conn: Conn,
    s: SchedulerDep,
    user: Reader,
    request: Request,
    order: Annotated[str, Query(alias="based-on", description="ServiceRequest/<order id>")],
    service_type: Annotated[str, Query(alias="service-type", description="exam code")],
    start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
    channel: str = "front-desk",
    _count: Annotated[int, Query(ge=1, le=50)] = 5,
) -> JSONResponse:
    order_id = order.removeprefix("ServiceRequest/")
    now = s.now()
    since = max(start or now, now)
    until = end or since + timedelta(days=s.horizon_days)
    req = await booking.get_request(conn, order_id, service_type)
    exam = await booking.get_exam(conn, service_type)
    cal = await load_calendar(
        conn, tz=s.tz, now=now, start=since, end=until, modalities=[exam.modality], empi_id=req.empi_id
    )
    found: list[Appointment] = []
    day = since.astimezone(s.tz).date()
    while len(found) < _count and cal.at(day, datetime.min.time()) < until:
        for p in cal.candidates_on(day, req, exam, channel, not_before=since):
            if p.end <= until and not cal.check(p, first_only=True):
                found.append(proposed(p))
                if len(found) >= _count:
                    break
        day += timedelta(days=1)
    return fhir_response(searchset(request, found))


async def _read(conn: Any, user: Any, request: Request, a: Any, view: str) -> None:
    """A FHIR read of an appointment, audited as a read of its patient's record."""
    await audit.record_read(conn, actor=user.user_id, entity="appointment", entity_id=a["id"], patient_id=a["empi_id"],
                            source_ip=audit.client_ip(request), detail={"view": view})


@router.get("/Appointment/{appointment_id}", summary="FHIR Appointment")
async def appointment(appointment_id: str, conn: Conn, user: Reader, request: Request) -> JSONResponse:
    a = await appointments.get(conn, appointment_id)
    if a is None:
        return outcome(404, "not-found", f"Appointment/{appointment_id} is not known")
    await _read(conn, user, request, a, "fhir")
    return fhir_response(appointment_resource(a))


@router.get("/Appointment", summary="FHIR Appointment search by patient, status, date")
async def appointment_search(
    conn: Conn,
    user: Reader,
    request: Request,
    patient: str | None = None,
    status: str | None = None,
    based_on: Annotated[str | None, Query(alias="based-on")] = None,
    _count: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    if patient is None and based_on is None:
        return outcome(400, "required", "search by patient or based-on")
    rows = await appointments.list_for(
        conn,
        empi_id=patient.removeprefix("Patient/") if patient else None,
        order_id=based_on.removeprefix("ServiceRequest/") if based_on else None,
        status=status,
        limit=_count,
    )
    for a in rows:
        await _read(conn, user, request, a, "fhir-search")
    return fhir_response(searchset(request, [appointment_resource(a) for a in rows]))
