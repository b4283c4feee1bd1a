"""Booking API: find, arrange, hold, book, confirm, reschedule, cancel, arrive, check in, no-show,
receipts. Thin: parse, call the domain, shape the answer."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from imaging_common import audit
from imaging_common.auth import require_roles
from imaging_common.json_out import listing
from imaging_common.problems import problem
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from scheduling.adapters import slip_links
from scheduling.adapters.deps import READERS, Booker, Conn, Ctx, Desk, Reader, SchedulerDep, actor
from scheduling.adapters.errors import DomainRoute
from scheduling.domain import appointments, booking, receipt
from scheduling.domain.arrange import Plan
from scheduling.domain.model import Channel, Placement
from scheduling.domain.states import Action

router = APIRouter(tags=["booking"], route_class=DomainRoute)
# The receipt page admits a bearer token or a slip link: the token is checked by hand there.
_bearer = HTTPBearer(auto_error=False)
_reader = require_roles(*READERS)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestRef(Strict):
    order_id: str = Field(min_length=1, max_length=64)
    exam_code: str = Field(min_length=1, max_length=64)


class FindBody(RequestRef):
    channel: Channel = "front-desk"
    not_before: AwareDatetime | None = None
    days: int | None = Field(None, ge=1, le=366)
    campus: str | None = None


class BookBody(RequestRef):
    channel: Channel = "front-desk"
    room_id: str | None = None  # with start: this slot; without: the earliest allowed slot
    start: AwareDatetime | None = None
    hold: bool = False  # a hold (FHIR pending) that expires unless confirmed
    campus: str | None = None


class ArrangeBody(Strict):
    requests: list[RequestRef] = Field(min_length=1, max_length=5)
    channel: Channel = "front-desk"
    not_before: AwareDatetime | None = None
    days: int | None = Field(None, ge=1, le=366)
    campus: str | None = None
    book: bool = False  # book the plan at once (all or nothing)
    hold: bool = False


class RescheduleBody(Strict):
    room_id: str | None = None
    start: AwareDatetime | None = None  # none: the earliest allowed slot
    reason: str | None = Field(None, max_length=500)
    channel: Channel | None = None


class ReasonBody(Strict):
    reason: str = Field(min_length=1, max_length=500)


class OptionalReason(Strict):
    reason: str | None = Field(None, max_length=500)


# ---- what the routes answer (issue 20 item 4) -------------------------------------------------------
# Times are ISO 8601 text (the routes format them); a row keeps any column a model does not name.


class Listed(BaseModel):
    model_config = ConfigDict(extra="allow")


class PlacementOut(BaseModel):
    """A slot found for one exam."""

    order_id: str
    exam_code: str
    exam_name: str
    room_id: str
    room_name: str
    campus: str
    start: str
    end: str
    arrive_by: str
    technologist_id: str | None
    channel: str


class AppointmentOut(Listed):
    """An appointment (table appointment) with its request, exam type and room."""

    id: str
    order_id: str
    exam_code: str
    accession_number: str
    empi_id: str
    room_id: str
    technologist_id: str | None
    start: str
    end: str
    status: str
    channel: str
    hold_expires_at: str | None
    reason: str | None
    booked_by: str | None
    reminded_at: str | None
    created_at: str
    updated_at: str
    exam_name: str
    modality: str
    patient: dict[str, Any]
    special: dict[str, Any]
    room_name: str


class Appointments(BaseModel):
    data: list[AppointmentOut]
    count: int


class PlanOut(BaseModel):
    """An arrangement; `appointments` only when it was booked or held at once."""

    model_config = ConfigDict(extra="allow")

    same_day: bool
    span_minutes: float
    placements: list[PlacementOut]


class ExamRequestOut(Listed):
    """A requested exam (table exam_request) with its live appointment, if any."""

    order_id: str
    exam_code: str
    accession_number: str
    exam_name: str
    modality: str
    empi_id: str
    patient: Any  # jsonb as stored
    status: str
    cancel_reason: str | None
    created_at: str
    appointment_id: str | None
    appointment_status: str | None
    start: str | None


class ExamRequests(BaseModel):
    data: list[ExamRequestOut]
    count: int


class HistoryEntry(Listed):
    """One transition (table appointment_history)."""

    at: str
    event: str
    from_status: str | None
    to_status: str
    actor: str | None
    detail: Any  # jsonb as stored


class History(BaseModel):
    data: list[HistoryEntry]
    count: int


class NoShow(BaseModel):
    appointment_id: str
    start: str
    exam_code: str
    reason: str | None


class NoShows(BaseModel):
    empi_id: str
    count: int
    data: list[NoShow]


class ReceiptOut(Listed):
    """The receipt as data, in local time (5.3.5)."""

    appointment_id: str
    status: str
    accession_number: str
    patient: dict[str, Any]
    exam: dict[str, Any]
    date: str
    start: str
    end: str
    time: str
    arrive_by: str
    place: str
    room: dict[str, Any]
    preparation: str
    fasting: bool
    route: str
    steps: list[str]
    timezone: str


# problem() answers are Responses: FastAPI passes them on without the model.


def placement_out(p: Placement) -> dict[str, Any]:
    return {
        "order_id": p.request.order_id,
        "exam_code": p.request.exam_code,
        "exam_name": p.exam.name,
        "room_id": p.room.id,
        "room_name": p.room.name,
        "campus": p.room.campus,
        "start": p.start.isoformat(),
        "end": p.end.isoformat(),
        "arrive_by": p.arrive_by.isoformat(),
        "technologist_id": p.technologist_id,
        "channel": p.channel,
    }


def appointment_out(a: dict[str, Any]) -> dict[str, Any]:
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in a.items()}
    return out


async def _audit_read(
    conn: Any, request: Request, user: Any, entity_id: str, patient_id: str | None, what: str
) -> None:
    await audit.record_read(
        conn,
        actor=user.user_id,
        entity="appointment",
        entity_id=entity_id,
        patient_id=patient_id,
        source_ip=audit.client_ip(request),
        detail={"view": what},
    )


@router.get("/requests", summary="Exams waiting to be scheduled (or scheduled), by patient or order",
            response_model=ExamRequests)
async def list_requests(
    conn: Conn,
    user: Reader,
    request: Request,
    empi_id: str | None = None,
    order_id: str | None = None,
    status: Literal["open", "cancelled"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    rows = await appointments.requests(conn, empi_id=empi_id, order_id=order_id, status=status, limit=limit)
    data = [appointment_out(dict(r)) for r in rows]
    for d in data:
        await audit.record_read(
            conn,
            actor=user.user_id,
            entity="exam_request",
            entity_id=f"{d['order_id']}/{d['exam_code']}",
            patient_id=d["empi_id"],
            source_ip=audit.client_ip(request),
        )
    return listing(data)


@router.post("/find", summary="The earliest slot for one exam that satisfies every rule (6.1.5)",
             response_model=PlacementOut)
async def find(body: FindBody, conn: Conn, s: SchedulerDep, user: Reader) -> Any:
    p = await booking.find_earliest(
        conn,
        s,
        order_id=body.order_id,
        exam_code=body.exam_code,
        channel=body.channel,
        not_before=body.not_before,
        days=body.days,
        campus=body.campus,
    )
    if p is None:
        return problem(404, "No slot", f"no slot satisfies every rule within {body.days or s.horizon_days} days")
    return placement_out(p)


def plan_out(plan: Plan) -> dict[str, Any]:
    return {
        "same_day": plan.same_day,
        "span_minutes": plan.span.total_seconds() / 60,
        "placements": [placement_out(p) for p in plan.placements],
    }


@router.post("/arrange", summary="Arrange several exams of one patient close together in a valid order (6.1.5)",
             response_model=PlanOut)
async def arrange(body: ArrangeBody, conn: Conn, s: SchedulerDep, user: Booker, request: Request) -> Any:
    pairs = [(r.order_id, r.exam_code) for r in body.requests]
    for attempt in range(5):
        plan = await booking.plan_exams(
            conn,
            s,
            requests=pairs,
            channel=body.channel,
            not_before=body.not_before,
            days=body.days,
            campus=body.campus,
        )
        if plan is None:
            return problem(404, "No arrangement", "no slots satisfy every rule for these exams within the horizon")
        if not (body.book or body.hold):
            return plan_out(plan)
        try:
            booked = await booking.book_plan(conn, s, plan, actor=actor(user, request), hold=body.hold)
            return {**plan_out(plan), "appointments": [appointment_out(a) for a in booked]}
        except booking.SlotTaken:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


@router.post("/appointments", status_code=201, summary="Book or hold an exam: a given slot, or the earliest allowed",
             response_model=AppointmentOut)
async def book(body: BookBody, conn: Conn, s: SchedulerDep, user: Booker, request: Request) -> Any:
    who = actor(user, request)
    if (body.room_id is None) != (body.start is None):
        return problem(422, "Invalid request", "give both room_id and start, or neither for the earliest slot")
    if body.room_id is not None and body.start is not None:
        a = await booking.book_slot(
            conn,
            s,
            order_id=body.order_id,
            exam_code=body.exam_code,
            room_id=body.room_id,
            start=body.start,
            channel=body.channel,
            actor=who,
            hold=body.hold,
        )
    else:
        a = await booking.book_earliest(
            conn,
            s,
            order_id=body.order_id,
            exam_code=body.exam_code,
            channel=body.channel,
            actor=who,
            hold=body.hold,
            campus=body.campus,
        )
    return appointment_out(a)


@router.get("/appointments", summary="Appointments by patient, order, room, status or time",
            response_model=Appointments)
async def list_appointments(
    conn: Conn,
    user: Reader,
    request: Request,
    empi_id: str | None = None,
    order_id: str | None = None,
    room_id: str | None = None,
    status: str | None = None,
    start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    rows = await appointments.list_for(
        conn, empi_id=empi_id, order_id=order_id, room_id=room_id, status=status, start=start, end=end, limit=limit
    )
    for a in rows:
        await _audit_read(conn, request, user, a["id"], a["empi_id"], "list")
    return {"data": [appointment_out(a) for a in rows], "count": len(rows)}


@router.get("/appointments/{appointment_id}", summary="One appointment", response_model=AppointmentOut)
async def get_appointment(appointment_id: str, conn: Conn, s: SchedulerDep, user: Reader, request: Request) -> Any:
    async with conn.transaction():
        await booking.expire_holds(conn, s.now())  # a read never shows a hold past its time
    a = await appointments.get(conn, appointment_id)
    if a is None:
        return problem(404, "Not Found", f"no appointment {appointment_id}")
    await _audit_read(conn, request, user, a["id"], a["empi_id"], "detail")
    return appointment_out(a)


async def _transition(
    conn: Any, s: Any, appointment_id: str, event: Action, user: Any, request: Request, reason: str | None = None
) -> dict[str, Any]:
    a = await booking.transition(conn, s, appointment_id, event, actor=actor(user, request), reason=reason)
    return appointment_out(a)


@router.post("/appointments/{appointment_id}/confirm", summary="Confirm a hold: pending -> booked",
             response_model=AppointmentOut)
async def confirm(appointment_id: str, conn: Conn, s: SchedulerDep, user: Booker, request: Request) -> Any:
    return await _transition(conn, s, appointment_id, Action.BOOK, user, request)


@router.post("/appointments/{appointment_id}/reschedule", summary="Move to another slot (or the earliest allowed)",
             response_model=AppointmentOut)
async def reschedule(
    appointment_id: str, body: RescheduleBody, conn: Conn, s: SchedulerDep, user: Booker, request: Request
) -> Any:
    a = await booking.reschedule(
        conn,
        s,
        appointment_id,
        actor=actor(user, request),
        room_id=body.room_id,
        start=body.start,
        reason=body.reason,
        channel=body.channel,
    )
    return appointment_out(a)


@router.post("/appointments/{appointment_id}/cancel", summary="Cancel, keeping the reason",
             response_model=AppointmentOut)
async def cancel(
    appointment_id: str, body: ReasonBody, conn: Conn, s: SchedulerDep, user: Booker, request: Request
) -> Any:
    return await _transition(conn, s, appointment_id, Action.CANCEL, user, request, body.reason)


@router.post("/appointments/{appointment_id}/arrive", summary="The patient arrived at the imaging center",
             response_model=AppointmentOut)
async def arrive(appointment_id: str, conn: Conn, s: SchedulerDep, user: Desk, request: Request) -> Any:
    return await _transition(conn, s, appointment_id, Action.ARRIVE, user, request)


@router.post("/appointments/{appointment_id}/check-in", summary="Checked in at the room", response_model=AppointmentOut)
async def check_in(appointment_id: str, conn: Conn, s: SchedulerDep, user: Desk, request: Request) -> Any:
    return await _transition(conn, s, appointment_id, Action.CHECK_IN, user, request)


@router.post("/appointments/{appointment_id}/fulfil", summary="The exam was done", response_model=AppointmentOut)
async def fulfil(appointment_id: str, conn: Conn, s: SchedulerDep, user: Desk, request: Request) -> Any:
    return await _transition(conn, s, appointment_id, Action.FULFIL, user, request)


@router.post("/appointments/{appointment_id}/no-show", summary="Record a no-show, keeping the reason",
             response_model=AppointmentOut)
async def no_show(
    appointment_id: str, body: OptionalReason, conn: Conn, s: SchedulerDep, user: Desk, request: Request
) -> Any:
    return await _transition(conn, s, appointment_id, Action.NO_SHOW, user, request, body.reason or "did not attend")


@router.post("/appointments/{appointment_id}/entered-in-error", summary="Mark as entered in error",
             response_model=AppointmentOut)
async def entered_in_error(
    appointment_id: str, body: ReasonBody, conn: Conn, s: SchedulerDep, user: Booker, request: Request
) -> Any:
    return await _transition(conn, s, appointment_id, Action.ERROR, user, request, body.reason)


@router.get("/appointments/{appointment_id}/history", summary="Every transition of an appointment",
            response_model=History)
async def history(appointment_id: str, conn: Conn, user: Reader) -> Any:
    rows = await appointments.history(conn, appointment_id)
    return {"data": [appointment_out(dict(r)) for r in rows], "count": len(rows)}


@router.get("/patients/{empi_id}/no-shows", summary="A patient's no-shows, counted (5.3.4 (5))",
            response_model=NoShows)
async def patient_no_shows(empi_id: str, conn: Conn, user: Reader, request: Request) -> Any:
    rows = await appointments.list_for(conn, empi_id=empi_id, status="noshow")
    await audit.record_read(
        conn,
        actor=user.user_id,
        entity="patient",
        entity_id=empi_id,
        patient_id=empi_id,
        source_ip=audit.client_ip(request),
        detail={"view": "no-shows"},
    )
    return {
        "empi_id": empi_id,
        "count": len(rows),
        "data": [
            {
                "appointment_id": a["id"],
                "start": a["start"].isoformat(),
                "exam_code": a["exam_code"],
                "reason": a["reason"],
            }
            for a in rows
        ],
    }


async def _receipt(appointment_id: str, conn: Any, s: Any, user: Any, request: Request) -> dict[str, Any] | None:
    a = await appointments.get(conn, appointment_id)
    if a is None:
        return None
    await _audit_read(conn, request, user, a["id"], a["empi_id"], "receipt")
    return receipt.receipt(a, s.tz)


@router.get("/appointments/{appointment_id}/receipt", summary="The receipt as data (5.3.5)",
            response_model=ReceiptOut)
async def receipt_json(appointment_id: str, conn: Conn, s: SchedulerDep, user: Reader, request: Request) -> Any:
    r = await _receipt(appointment_id, conn, s, user, request)
    return r if r is not None else problem(404, "Not Found", f"no appointment {appointment_id}")


class SlipLinkOut(BaseModel):
    """A link opening one appointment's printable receipt without a token, for a few minutes."""

    url: str
    expires_at: str
    expires_in: int


@router.post("/appointments/{appointment_id}/slip-link", status_code=201, response_model=SlipLinkOut,
             summary="A short-lived link to the printable receipt, opened without an Authorization header")
async def slip_link(appointment_id: str, conn: Conn, ctx: Ctx, s: SchedulerDep, user: Reader,
                    request: Request) -> Any:
    a = await appointments.get(conn, appointment_id)
    if a is None:
        return problem(404, "Not Found", f"no appointment {appointment_id}")
    token = await slip_links.issue(ctx.redis, ctx.settings.namespace, appointment_id=a["id"],
                                   user_id=user.user_id, username=user.username)
    await audit.record(conn, actor=user.user_id, action="slip-link", entity="appointment", entity_id=a["id"],
                       patient_id=a["empi_id"], source_ip=audit.client_ip(request),
                       detail={"expires_in": slip_links.SLIP_SECONDS})
    expires = s.now() + timedelta(seconds=slip_links.SLIP_SECONDS)
    url = f"{request.scope.get('root_path', '')}/api/scheduling/appointments/{a['id']}/receipt.html?slip={token}"
    return {"url": url, "expires_at": expires.isoformat(), "expires_in": slip_links.SLIP_SECONDS}


# The slip's answers never stay in a cache or leak the token onward.
SLIP_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
                "X-Content-Type-Options": "nosniff"}
SLIP_REFUSED = ("<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>回执链接无效</title>"
                "<p>预约回执链接无效或已过期，请到登记台重新打印。</p></html>")


@router.get(
    "/appointments/{appointment_id}/receipt.html", response_class=HTMLResponse,
    summary="The printable receipt (5.3.5): with a bearer token, or `?slip=` from POST .../slip-link",
)
async def receipt_html(
    appointment_id: str,
    conn: Conn,
    ctx: Ctx,
    s: SchedulerDep,
    request: Request,
    slip: Annotated[str | None, Query(max_length=128)] = None,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Any:
    if slip is None:
        user = await _reader(request, credentials)
        r = await _receipt(appointment_id, conn, s, user, request)
        if r is None:
            return problem(404, "Not Found", f"no appointment {appointment_id}")
        return HTMLResponse(receipt.render_html(r))
    opened = await slip_links.opened(ctx.redis, ctx.settings.namespace, slip, appointment_id)
    a = await appointments.get(conn, appointment_id) if opened is not None else None
    if opened is None or a is None:
        await audit.record(conn, actor="slip-link", action="read", entity="appointment", entity_id=appointment_id,
                           source_ip=audit.client_ip(request), outcome="failure",
                           detail={"view": "receipt", "refused": "slip link unknown, expired or for another"})
        if "text/html" in request.headers.get("accept", ""):  # a person's browser: a page saying what to do
            return HTMLResponse(SLIP_REFUSED, status_code=403, headers=SLIP_HEADERS)
        return problem(403, "Forbidden", "slip link unknown, expired or for another appointment")
    await audit.record_read(conn, actor=opened.issued_by, entity="appointment", entity_id=a["id"],
                            patient_id=a["empi_id"], source_ip=audit.client_ip(request),
                            detail={"view": "receipt", "via": "slip-link"})
    return HTMLResponse(receipt.render_html(receipt.receipt(a, s.tz)), headers=SLIP_HEADERS)
