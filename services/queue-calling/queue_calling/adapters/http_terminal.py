"""HTTP API of check-in desks and calling terminals (smart-imaging standard 6.2.2 (3)-(4), 6.3 (1)-(2))."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Header, HTTPException, Query, status
from imaging_common import audit
from imaging_common.auth import Principal
from imaging_common.events import publish
from imaging_common.events.types import PatientArrived, PatientRef
from imaging_common.json_out import listing
from imaging_common.outbound import AllowList, DestinationRefused
from pydantic import BaseModel, Field, model_validator

from queue_calling.adapters.deps import CheckInStaff, ClientIp, Ctx, TerminalStaff
from queue_calling.adapters.flows import Audit, after_commit, run_change, seal
from queue_calling.adapters.schemas import CheckedIn, DayStatsList, Entry, EntryLog, Paused, Subscribed, TerminalView
from queue_calling.domain import calling, checkin, entries, notifications, stats, views
from queue_calling.domain.calling import Who
from queue_calling.domain.errors import Invalid, NotFound
from queue_calling.domain.scope import Change

router = APIRouter(tags=["queue terminals"])


def now() -> datetime:
    return datetime.now(UTC)


def who(user: Any, terminal: str | None) -> Who:
    return Who(user.username, terminal)


Terminal = Annotated[str | None, Header(alias="x-terminal-id", description="calling terminal, e.g. CT1-nurse")]


class NotifyTarget(BaseModel):
    channel: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,31}$", examples=["webhook"],
                         description="webhook, or a plugged-in channel: sms, wechat")
    target: str = Field(min_length=1, max_length=500, examples=["https://kiosk-gw.hospital.local/notify/123"])

    @model_validator(mode="after")
    def webhook_is_http(self) -> NotifyTarget:
        if self.channel == "webhook" and not self.target.startswith(("http://", "https://")):
            raise ValueError("a webhook target is an http(s) URL")
        return self


class CheckInRequest(BaseModel):
    kind: Literal["barcode", "id_number", "card", "appointment"]
    value: str = Field(min_length=1, max_length=64, description="what was scanned or typed")
    preparation: Literal["none", "injection", "anaesthesia"] | None = None
    technologist: str | None = Field(None, max_length=64)
    categories: list[Literal["emergency", "critical", "elderly", "disabled", "military"]] = []
    accession_numbers: list[str] = Field([], description="only these of the patient's exams")
    notify: list[NotifyTarget] = []


def _source(ctx: Any) -> str:
    return f"/imaging/{ctx.spec.name}"


@router.post("/check-ins", status_code=status.HTTP_201_CREATED, summary="Check a patient in (exam arrived)")
async def check_in(body: CheckInRequest, user: CheckInStaff, ctx: Ctx, ip: ClientIp, terminal: Terminal = None
                   ) -> CheckedIn:
    settings = ctx.settings
    rules = checkin.CheckInRules(
        early_minutes=settings.queue_early_checkin_minutes, late_minutes=settings.queue_late_checkin_minutes,
        on_time_grace_minutes=settings.queue_on_time_grace_minutes, timezone=settings.queue_timezone)
    webhook = settings.queue_webhook_url
    allow = AllowList.from_settings(settings)
    for t in body.notify:
        if t.channel == "webhook":
            try:  # a webhook goes only where IMAGING_OUTBOUND_ALLOW says (checked again at every send)
                allow.check_url(t.target)
            except DestinationRefused as exc:
                raise HTTPException(422, f"notify target refused: {exc}") from None
    at = now()
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            result = await checkin.check_in(
                conn, kind=body.kind, value=body.value, actor=user.username, terminal=terminal,
                preparation=body.preparation, technologist=body.technologist, categories=body.categories,
                accession_numbers=body.accession_numbers, now=at, rules=rules)
            out = []
            for arrival in result.arrivals:
                e, x = arrival.entry, arrival.exam
                targets = [(t.channel, t.target) for t in body.notify] + ([("webhook", webhook)] if webhook else [])
                for channel, target in targets:
                    await notifications.subscribe(conn, entry_id=e["entry_id"], channel=channel, target=target)
                await publish(conn, PatientArrived(
                    order_id=e["order_id"], accession_number=e["accession_number"],
                    patient=PatientRef(empi_id=x["empi_id"], patient_id=x["patient_id"], name=x["patient_name"],
                                       birth_date=x["birth_date"], sex=x["sex"], phone=x["phone"],
                                       id_number_masked=x["id_number_masked"]),
                    appointment_id=e["appointment_id"], queue_id=e["queue_id"], queue_number=e["ticket"],
                    room_id=x["room_id"], arrived_at=e["arrived_at"]),
                    source=_source(ctx), subject=e["accession_number"])
                await audit.record(conn, actor=user.username, action="create", entity="queue_entry",
                                   entity_id=str(e["entry_id"]), patient_id=e["patient_id"], source_ip=ip,
                                   detail={"check_in": body.kind, "ticket": e["ticket"], "queue_id": e["queue_id"]})
            queued = await seal(conn, result.change)
            for arrival in result.arrivals:
                e = arrival.entry
                ranked, minutes, rooms = await views.number_ahead(conn, e["queue_id"])
                ahead = next((a for r, a in ranked if r["entry_id"] == e["entry_id"]), 0)
                out.append({**entries.public_entry(e), "number_ahead": ahead,
                            "estimated_wait_minutes": views.estimated_wait_minutes(ahead, minutes, rooms)})
    await after_commit(ctx, result.change, queued)
    return {"data": out, "count": len(out)}


@router.get("/rooms/{room_id}/terminal", summary="A calling terminal's view of a room's queues")
async def terminal_view(room_id: str, user: TerminalStaff, ctx: Ctx, ip: ClientIp) -> TerminalView:
    async with ctx.pool.acquire() as conn:
        room = await views.terminal_room(conn, room_id)
        if room is None:
            raise NotFound(f"no room {room_id}")
        qs = await views.room_queues(conn, room_id)
        out = []
        for q in qs:
            ranked, minutes, rooms = await views.number_ahead(conn, q["queue_id"])
            others = await views.called_entries(conn, q["queue_id"])
            out.append({
                **dict(q),
                "waiting": [{**entries.public_entry(r), "number_ahead": a,
                             "estimated_wait_minutes": views.estimated_wait_minutes(a, minutes, rooms)}
                            for r, a in ranked],
                **{s: [entries.public_entry(r) for r in others if r["state"] == s]
                   for s in ("called", "skipped", "in_exam")},
            })
        await audit.record_read(conn, actor=user.username, entity="queue", entity_id=room_id,
                                source_ip=ip,
                                detail={"view": "terminal",
                                        "entries": sum(len(q["waiting"]) + len(q["called"]) for q in out)})
    return {"room": dict(room), "queues": out}


async def _entry_changed(ctx: Ctx, user: Principal, ip: str | None, detail: dict[str, Any],
                         change: Callable[[asyncpg.Connection], Awaitable[tuple[Any, Change]]]) -> Entry:
    """A terminal's change of one entry, audited as an update with `detail`: the entry as terminals see it."""
    row = await run_change(ctx, change, audit_as=Audit(user.username, "update", source_ip=ip, detail=detail))
    return entries.public_entry(row)


@router.post("/rooms/{room_id}/call-next", summary="顺呼: call the next patient to this room")
async def call_next(room_id: str, user: TerminalStaff, ctx: Ctx, ip: ClientIp, terminal: Terminal = None
                    ) -> Entry:
    w = who(user, terminal)
    return await _entry_changed(ctx, user, ip, {"call": "next"},
                                lambda c: calling.call_next(c, room_id=room_id, who=w, now=now()))


class SelectCall(BaseModel):
    room_id: str


class Transfer(BaseModel):
    queue_id: str
    reason: str | None = Field(None, max_length=200)


class Reorder(BaseModel):
    before_entry_id: uuid.UUID


class Cancel(BaseModel):
    reason: str = Field(min_length=1, max_length=200)


class Start(BaseModel):
    room_id: str | None = None


EntryActionName = Literal["recall", "skip", "restore", "finish"]


@router.post("/entries/{entry_id}/select-call", summary="选呼: call this patient now")
async def select_call(entry_id: uuid.UUID, body: SelectCall, user: TerminalStaff, ctx: Ctx, ip: ClientIp,
                      terminal: Terminal = None) -> Entry:
    w = who(user, terminal)
    return await _entry_changed(ctx, user, ip, {"call": "select"}, lambda c: calling.select_call(
        c, entry_id=entry_id, room_id=body.room_id, who=w, now=now()))


@router.post("/entries/{entry_id}/start", summary="The exam starts (patient entered the room)")
async def start(entry_id: uuid.UUID, body: Start, user: TerminalStaff, ctx: Ctx, ip: ClientIp,
                terminal: Terminal = None) -> Entry:
    w = who(user, terminal)
    return await _entry_changed(ctx, user, ip, {"action": "start"}, lambda c: calling.start(
        c, entry_id=entry_id, who=w, now=now(), room_id=body.room_id))


@router.post("/entries/{entry_id}/cancel", summary="The patient leaves the queue")
async def cancel(entry_id: uuid.UUID, body: Cancel, user: TerminalStaff, ctx: Ctx, ip: ClientIp,
                 terminal: Terminal = None) -> Entry:
    w = who(user, terminal)
    return await _entry_changed(ctx, user, ip, {"action": "cancel"}, lambda c: calling.cancel(
        c, entry_id=entry_id, who=w, reason=body.reason))


@router.post("/entries/{entry_id}/transfer", summary="转诊: move to another queue/room, keeping history")
async def transfer(entry_id: uuid.UUID, body: Transfer, user: TerminalStaff, ctx: Ctx, ip: ClientIp,
                   terminal: Terminal = None) -> Entry:
    w = who(user, terminal)
    return await _entry_changed(ctx, user, ip, {"action": "transfer"}, lambda c: calling.transfer(
        c, entry_id=entry_id, to_queue_id=body.queue_id, who=w, reason=body.reason))


@router.post("/entries/{entry_id}/reorder", summary="Manual reorder: put before another waiting patient")
async def reorder(entry_id: uuid.UUID, body: Reorder, user: TerminalStaff, ctx: Ctx, ip: ClientIp,
                  terminal: Terminal = None) -> Entry:
    w = who(user, terminal)
    return await _entry_changed(ctx, user, ip, {"action": "reorder"}, lambda c: calling.reorder(
        c, entry_id=entry_id, before_entry_id=body.before_entry_id, who=w))


@router.post("/queues/{queue_id}/{op}", summary="Pause or resume calling from a queue")
async def pause(queue_id: str, op: Literal["pause", "resume"], user: TerminalStaff, ctx: Ctx) -> Paused:
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            change = await calling.set_paused(conn, queue_id=queue_id, paused=op == "pause", who=who(user, None))
            queued = await seal(conn, change)
    await after_commit(ctx, change, queued)
    return {"queue_id": queue_id, "paused": op == "pause"}


@router.get("/entries/{entry_id}", summary="One queue entry")
async def get_entry(entry_id: uuid.UUID, user: TerminalStaff, ctx: Ctx, ip: ClientIp) -> Entry:
    async with ctx.pool.acquire() as conn:
        row = await entries.get_entry(conn, entry_id)
        await audit.record_read(conn, actor=user.username, entity="queue_entry", entity_id=str(entry_id),
                                patient_id=row["patient_id"], source_ip=ip)
    return entries.public_entry(row)


@router.get("/entries/{entry_id}/log", summary="Operation log of a queue entry")
async def entry_log(entry_id: uuid.UUID, user: TerminalStaff, ctx: Ctx, ip: ClientIp) -> EntryLog:
    async with ctx.pool.acquire() as conn:
        log = await entries.entry_log(conn, entry_id)
        await audit.record_read(conn, actor=user.username, entity="queue_entry_log",
                                entity_id=str(entry_id), source_ip=ip)
    for item in log:
        item["entry_id"] = str(item["entry_id"])
    return {"data": log, "count": len(log)}


@router.post("/entries/{entry_id}/notify", status_code=201, summary="Subscribe a patient to notifications")
async def subscribe(entry_id: uuid.UUID, body: NotifyTarget, user: CheckInStaff, ctx: Ctx) -> Subscribed:
    async with ctx.pool.acquire() as conn:
        await entries.get_entry(conn, entry_id)
        await notifications.subscribe(conn, entry_id=entry_id, channel=body.channel, target=body.target)
    return {"entry_id": str(entry_id), "channel": body.channel}


@router.get("/stats", summary="Wait, walk and service times per room or queue for a day")
async def daily_stats(user: TerminalStaff, ctx: Ctx, day: date | None = None,
                      group: Literal["queue", "room"] = Query("queue")) -> DayStatsList:
    tz = ctx.settings.queue_timezone
    day = day or datetime.now(ZoneInfo(tz)).date()
    async with ctx.pool.acquire() as conn:
        try:
            data = await stats.daily(conn, day=day, group=group, tz=tz)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
    return listing(data)


# Declared last: its path would otherwise shadow /entries/{id}/start, /cancel, /transfer ...
@router.post("/entries/{entry_id}/{action}", summary="重呼 recall, 跳呼 skip, restore to waiting, finish")
async def entry_action(entry_id: uuid.UUID, action: EntryActionName, user: TerminalStaff, ctx: Ctx, ip: ClientIp,
                       terminal: Terminal = None) -> Entry:
    w = who(user, terminal)
    fns = {
        "recall": lambda c: calling.recall(c, entry_id=entry_id, who=w, now=now()),
        "skip": lambda c: calling.skip(c, entry_id=entry_id, who=w, now=now()),
        "restore": lambda c: calling.restore(c, entry_id=entry_id, who=w),
        "finish": lambda c: calling.finish(c, entry_id=entry_id, who=w, now=now()),
    }
    return await _entry_changed(ctx, user, ip, {"action": action}, fns[action])
