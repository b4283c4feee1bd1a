"""Admin API: rooms, working hours, closures, exam types, technologists and roster, wards, quotas and
booking rules — the pool configured as data, without code (5.3.1, 5.3.4)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from imaging_common import audit
from imaging_common.json_out import listing
from imaging_common.problems import problem
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from scheduling.adapters.deps import Admin, Conn, Reader
from scheduling.adapters.errors import DomainRoute
from scheduling.domain import configuration
from scheduling.domain.model import CHANNELS
from scheduling.domain.rules import InvalidRule, build_rule, rule_type_docs

router = APIRouter(tags=["configuration"], route_class=DomainRoute)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionIn(Strict):
    weekday: int = Field(ge=1, le=7)  # ISO: 1 = Monday
    starts: time
    ends: time
    label: str = ""

    @model_validator(mode="after")
    def _order(self) -> SessionIn:
        if self.ends <= self.starts:
            raise ValueError("ends must be after starts")
        return self


class RoomIn(Strict):
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1)
    modality: str = Field(min_length=2, max_length=16)
    campus: str = Field(min_length=1)
    building: str = ""
    floor: str = ""
    location: str = ""
    route: str = ""
    station_ae_title: str | None = Field(None, max_length=16)
    capabilities: list[str] = []
    slice_minutes: int = Field(10, ge=1, le=240)
    active: bool = True
    sessions: list[SessionIn] | None = None  # given: replaces the room's working hours


class ClosureIn(Strict):
    room_id: str | None = None
    campus: str | None = None
    start: AwareDatetime
    end: AwareDatetime
    kind: Literal["maintenance", "holiday", "other"] = "maintenance"
    reason: str = ""


class ExamTypeIn(Strict):
    code: str = Field(min_length=1, max_length=64)
    name: str
    modality: str
    body_part: str | None = None
    duration_minutes: int = Field(ge=1, le=600)
    preparation_minutes: int = Field(0, ge=0, le=600)
    contrast: Literal["none", "iodinated", "gadolinium", "barium", "other"] = "none"
    fasting: bool = False
    required_capabilities: list[str] = []
    preparation: str = ""


class RosterIn(Strict):
    technologist_id: str
    weekday: int = Field(ge=1, le=7)
    starts: time
    ends: time


class TechnologistIn(Strict):
    id: str = Field(min_length=1, max_length=64)
    name: str


class WardIn(Strict):
    code: str
    name: str = ""
    campus: str
    building: str = ""


class RuleIn(Strict):
    name: str = Field(min_length=1, max_length=120)
    type: str
    params: dict[str, Any] = {}
    reason: str = Field(min_length=1, max_length=500)  # shown to whoever the rule refuses
    enabled: bool = True


class QuotaIn(Strict):
    channel: str
    room_id: str | None = None
    modality: str | None = None
    max_per_session: int = Field(ge=0)
    release_minutes_before: int = Field(1440, ge=0)


async def _changed(
    conn: Any, user: Any, request: Request, entity: str, entity_id: str, action: str, detail: dict[str, Any]
) -> None:
    await audit.record(
        conn,
        actor=user.user_id,
        action=action,
        entity=entity,
        entity_id=entity_id,
        patient_id=None,
        source_ip=request.client.host if request.client else None,
        outcome="success",
        detail=json.loads(json.dumps(detail, default=str)),
    )


async def _put(conn: Any, user: Any, request: Request, entity: str, key: str, body: BaseModel,
               save: Callable[..., Awaitable[Any]], key_field: str) -> Any:
    """PUT of one configuration record whose key is in the path and the body: saved and audited in one
    transaction, answered with what was saved."""
    if getattr(body, key_field) != key:
        return problem(422, "Invalid request", f"the {key_field} in the path and the body differ")
    async with conn.transaction():
        await save(conn, **body.model_dump())
        await _changed(conn, user, request, entity, key, "update", body.model_dump())
    return body.model_dump()


async def _delete(conn: Any, user: Any, request: Request, entity: str, key: str | int,
                  remove: Callable[[Any, Any], Awaitable[Any]]) -> None:
    async with conn.transaction():
        await remove(conn, key)
        await _changed(conn, user, request, entity, str(key), "delete", {})


class ClosureOut(BaseModel):
    """A closure as added: its id and the request's fields."""

    id: int
    room_id: str | None
    campus: str | None
    start: AwareDatetime
    end: AwareDatetime
    kind: str
    reason: str


class Listed(BaseModel):
    """A row as listed; a column the model does not name still passes on (none is dropped)."""

    model_config = ConfigDict(extra="allow")


class SessionListed(Listed):
    weekday: int
    starts: str  # ISO 8601 time
    ends: str
    label: str


class RoomListed(Listed):
    """A room (table room) with its working hours."""

    id: str
    name: str
    modality: str
    campus: str
    building: str
    floor: str
    location: str
    route: str
    station_ae_title: str | None
    capabilities: list[str]
    slice_minutes: int
    active: bool
    created_at: str  # ISO 8601
    sessions: list[SessionListed]


class Rooms(BaseModel):
    data: list[RoomListed]
    count: int


class ExamTypeListed(Listed):
    """An exam type (table exam_type)."""

    code: str
    name: str
    modality: str
    body_part: str | None
    duration_minutes: int
    preparation_minutes: int
    contrast: str
    fasting: bool
    required_capabilities: list[str]
    preparation: str
    auto_created: bool  # made from an order with defaults, for an admin to review


class ExamTypes(BaseModel):
    data: list[ExamTypeListed]
    count: int


class QuotaListed(Listed):
    id: int
    channel: str
    room_id: str | None
    modality: str | None
    max_per_session: int
    release_minutes_before: int


class Quotas(BaseModel):
    data: list[QuotaListed]
    count: int


class RuleListed(Listed):
    """A booking rule (table rule), its times as ISO 8601 text."""

    id: str
    name: str
    type: str
    params: dict[str, Any]
    reason: str
    enabled: bool
    created_at: str
    updated_at: str
    updated_by: str | None


class Rules(BaseModel):
    data: list[RuleListed]
    count: int


class RuleType(BaseModel):
    type: str
    description: str
    params_schema: dict[str, Any]  # JSON Schema of its parameters, for the admin's form


class RuleTypes(BaseModel):
    data: list[RuleType]
    count: int


class ClosureListed(BaseModel):
    """A closure as listed: its bounds as ISO 8601 text."""

    id: int
    room_id: str | None
    campus: str | None
    start: str
    end: str
    kind: str
    reason: str


class Closures(BaseModel):
    data: list[ClosureListed]
    count: int


class RosterOut(BaseModel):
    """A room's roster as replaced."""

    room_id: str
    data: list[RosterIn]
    count: int


class QuotaOut(BaseModel):
    """A quota as added: its id and the request's fields."""

    id: int
    channel: str
    room_id: str | None
    modality: str | None
    max_per_session: int
    release_minutes_before: int


# The PUTs answer what was put (the request's model); problem() answers pass on as they are.
# ---- rooms and calendars ---------------------------------------------------------------------------


@router.get("/rooms", summary="Rooms of the pool with their working hours")
async def list_rooms(conn: Conn, user: Reader) -> Rooms:
    rooms = [dict(r) for r in await configuration.rooms(conn)]
    sessions = await configuration.sessions(conn)
    for room in rooms:
        room["created_at"] = room["created_at"].isoformat()
        room["sessions"] = [
            {
                "weekday": s["weekday"],
                "starts": s["starts"].isoformat(),
                "ends": s["ends"].isoformat(),
                "label": s["label"],
            }
            for s in sessions
            if s["room_id"] == room["id"]
        ]
    return listing(rooms)


@router.put("/rooms/{room_id}", summary="Create or update a room (and replace its working hours)",
            response_model=RoomIn)
async def put_room(room_id: str, body: RoomIn, conn: Conn, user: Admin, request: Request) -> Any:
    if body.id != room_id:
        return problem(422, "Invalid request", "the room id in the path and the body differ")
    async with conn.transaction():
        await configuration.put_room(conn, **body.model_dump(exclude={"sessions"}))
        if body.sessions is not None:
            await configuration.replace_sessions(
                conn, room_id, [(s.weekday, s.starts, s.ends, s.label) for s in body.sessions]
            )
        await _changed(conn, user, request, "room", room_id, "update", body.model_dump())
    return body.model_dump()


@router.get("/closures", summary="Closures and maintenance windows")
async def list_closures(conn: Conn, user: Reader) -> Closures:
    rows = await configuration.closures(conn)
    data = [{**dict(r), "start": r["start"].isoformat(), "end": r["end"].isoformat()} for r in rows]
    return listing(data)


@router.post("/closures", status_code=201, summary="Close a room, a campus or everything for a while",
             response_model=ClosureOut)
async def add_closure(body: ClosureIn, conn: Conn, user: Admin, request: Request) -> Any:
    if body.end <= body.start:
        return problem(422, "Invalid request", "end must be after start")
    async with conn.transaction():
        closure_id = await configuration.add_closure(conn, **body.model_dump())
        await _changed(conn, user, request, "closure", str(closure_id), "create", body.model_dump())
    return {"id": closure_id, **body.model_dump(mode="json")}


@router.delete("/closures/{closure_id}", status_code=204, summary="Reopen")
async def delete_closure(closure_id: int, conn: Conn, user: Admin, request: Request) -> None:
    await _delete(conn, user, request, "closure", closure_id, configuration.delete_closure)


@router.get("/exam-types", summary="Exam types: durations, preparation, contrast, fasting")
async def list_exam_types(conn: Conn, user: Reader) -> ExamTypes:
    rows = [dict(r) for r in await configuration.exam_types(conn)]
    return listing(rows)


@router.put("/exam-types/{code}", summary="Create or update an exam type (its time slice and preparation)",
            response_model=ExamTypeIn)
async def put_exam_type(code: str, body: ExamTypeIn, conn: Conn, user: Admin, request: Request) -> Any:
    return await _put(conn, user, request, "exam_type", code, body, configuration.put_exam_type, "code")


@router.put("/technologists/{technologist_id}", summary="Create or update a technologist",
            response_model=TechnologistIn)
async def put_technologist(
    technologist_id: str, body: TechnologistIn, conn: Conn, user: Admin, request: Request
) -> Any:
    return await _put(conn, user, request, "technologist", technologist_id, body, configuration.put_technologist,
                      "id")


@router.put("/rooms/{room_id}/roster", summary="Replace a room's technologist roster (staff capacity)",
            response_model=RosterOut)
async def put_roster(room_id: str, body: list[RosterIn], conn: Conn, user: Admin, request: Request) -> Any:
    async with conn.transaction():
        if not await configuration.room_exists(conn, room_id):
            return problem(404, "Not Found", f"no room {room_id}")
        known = await configuration.technologist_ids(conn)
        unknown = sorted({e.technologist_id for e in body} - known)
        if unknown:
            return problem(422, "Invalid request", f"unknown technologist(s): {', '.join(unknown)}")
        await configuration.replace_roster(
            conn, room_id, [(e.technologist_id, e.weekday, e.starts, e.ends) for e in body]
        )
        await _changed(conn, user, request, "roster", room_id, "update", {"entries": [e.model_dump() for e in body]})
    return {"room_id": room_id, "data": [e.model_dump(mode="json") for e in body], "count": len(body)}


@router.put("/wards/{code}", summary="Place a ward, so inpatients go to the nearest room",
            response_model=WardIn)
async def put_ward(code: str, body: WardIn, conn: Conn, user: Admin, request: Request) -> Any:
    return await _put(conn, user, request, "ward", code, body, configuration.put_ward, "code")


# ---- quotas and rules ------------------------------------------------------------------------------


@router.get("/quotas", summary="Quotas per booking channel and when they are released")
async def list_quotas(conn: Conn, user: Reader) -> Quotas:
    rows = [dict(r) for r in await configuration.quotas(conn)]
    return listing(rows)


@router.post("/quotas", status_code=201, summary="Add a channel quota", response_model=QuotaOut)
async def add_quota(body: QuotaIn, conn: Conn, user: Admin, request: Request) -> Any:
    if body.channel not in CHANNELS:
        return problem(422, "Invalid request", f"unknown channel {body.channel!r}; known: {', '.join(CHANNELS)}")
    async with conn.transaction():
        quota_id = await configuration.add_quota(conn, **body.model_dump())
        await _changed(conn, user, request, "channel_quota", str(quota_id), "create", body.model_dump())
    return {"id": quota_id, **body.model_dump()}


@router.delete("/quotas/{quota_id}", status_code=204, summary="Remove a channel quota")
async def delete_quota(quota_id: int, conn: Conn, user: Admin, request: Request) -> None:
    await _delete(conn, user, request, "channel_quota", quota_id, configuration.delete_quota)


@router.get("/rule-types", summary="The rule types an admin can configure, with their parameters")
async def rule_types(user: Reader) -> RuleTypes:
    return listing(rule_type_docs())


def _rule_out(r: Any) -> dict[str, Any]:
    d = dict(r)
    d["id"] = str(d["id"])
    d["params"] = json.loads(d["params"]) if isinstance(d["params"], str) else d["params"]
    for k in ("created_at", "updated_at"):
        d[k] = d[k].isoformat()
    return d


@router.get("/rules", summary="Booking rules")
async def list_rules(conn: Conn, user: Reader) -> Rules:
    rows = [_rule_out(r) for r in await configuration.rules(conn)]
    return listing(rows)


@router.put("/rules/{name}", summary="Create or replace a booking rule (type, parameters, reason)",
            response_model=RuleListed)
async def put_rule(name: str, body: RuleIn, conn: Conn, user: Admin, request: Request) -> Any:
    if body.name != name:
        return problem(422, "Invalid request", "the name in the path and the body differ")
    build_rule(body.name, body.type, body.params, body.reason)  # InvalidRule -> 422 naming the bad parameter
    async with conn.transaction():
        row = await configuration.put_rule(
            conn, name=body.name, type=body.type, params=body.params, reason=body.reason, enabled=body.enabled,
            updated_by=user.user_id,
        )
        await _changed(conn, user, request, "rule", name, "update", body.model_dump())
    return _rule_out(row)


@router.delete("/rules/{name}", status_code=204, summary="Delete a booking rule")
async def delete_rule(name: str, conn: Conn, user: Admin, request: Request) -> None:
    await _delete(conn, user, request, "rule", name, configuration.delete_rule)


__all__ = ["InvalidRule", "router"]
