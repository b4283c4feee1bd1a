"""The starter configuration: a typical imaging department, so a fresh platform can book on day one.

The department is data (`department.json` beside this module: campuses, rooms and their hours, queues
and screens, the exam catalogue, report templates and phrases, the critical-value dictionary and the
escalation chain), read into the typed models below. It holds no patient and no staff data.

Each service owns its part: `ServiceSpec(starter=load)`, where `load(conn, department)` writes the
service's part through its own domain functions and answers `{part: Tally}`. A loader is idempotent
and never overwrites: what an admin already configured (same key) is kept, only what is missing is
added. The library serves it for every service that has one (`GET`/`POST /api/<prefix>/admin/starter`,
imaging_common.starter.api) and `python -m imaging_common.allinone starter` loads every service's part.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, model_validator

from imaging_common import audit

DEPARTMENT_FILE = Path(__file__).with_name("department.json")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hours(_Model):
    """One working period on some ISO weekdays (1 = Monday), local time of the center."""

    weekdays: list[int] = Field(min_length=1)
    starts: time
    ends: time
    label: str = ""

    @model_validator(mode="after")
    def _valid(self) -> Hours:
        if any(not 1 <= d <= 7 for d in self.weekdays):
            raise ValueError("weekdays are 1 (Monday) to 7 (Sunday)")
        if self.ends <= self.starts:
            raise ValueError("ends must be after starts")
        return self


class Campus(_Model):
    id: str
    name: str  # as rooms and patients name it, e.g. "本部"


class Room(_Model):
    id: str  # the same id in scheduling (the booked room) and queue calling (the called room)
    name: str
    modality: str  # DICOM modality of its device: CT, MR, DX (DR), US
    campus: str  # a Campus id
    building: str = ""
    floor: str = ""
    location: str = ""
    route: str = ""
    station_ae_title: str | None = None
    capabilities: list[str] = []
    slice_minutes: int = 10
    schedule: str  # a key of Department.schedules
    door_cap: int = 2  # patients staged at its door (queue calling)


class Queue(_Model):
    id: str
    name: str
    ticket_prefix: str
    campus: str
    modality: str
    rooms: list[str] = Field(min_length=1)  # rooms serving it
    avg_service_minutes: float = 10
    walk_in: bool = False  # takes the modality's exams that have no booked room


class Screen(_Model):
    id: str
    kind: Literal["hall", "door"]
    title: str
    rooms: list[str] = Field(min_length=1)
    on_time: time | None = None
    off_time: time | None = None


class ExamType(_Model):
    code: str
    name: str  # Chinese, as printed on the slip
    modality: str
    body_part: str | None = None  # DICOM Body Part Examined
    duration_minutes: int
    preparation_minutes: int = 0
    contrast: Literal["none", "iodinated", "gadolinium", "barium", "other"] = "none"
    fasting: bool = False
    required_capabilities: list[str] = []
    preparation: str = ""  # printed on the receipt


class Template(_Model):
    id: str
    name: str
    modality: str | None = None
    body_part: str | None = None
    definition: dict[str, Any] = {}  # reporting's TemplateDefinition (checked by reporting's loader)


class Phrase(_Model):
    label: str
    text: str
    section: Literal["findings", "impression", "recommendation"] = "findings"
    modality: str | None = None


class CriticalItem(_Model):
    code: str
    name: str
    name_en: str | None = None
    modalities: list[str] = []
    category: int = Field(ge=1, le=3)
    notify_minutes: float = Field(gt=0)
    ack_minutes: float = Field(gt=0)
    requires_senior_confirmation: bool = False


class EscalationStep(_Model):
    action: Literal["repeat", "backup-clinician", "phone-task", "department-head"]
    after_minutes: float = Field(gt=0)


class Department(_Model):
    name: str  # the department, as its phrases and the audit name it
    note: str = ""
    campuses: list[Campus] = Field(min_length=1)
    schedules: dict[str, list[Hours]]
    rooms: list[Room] = Field(min_length=1)
    queues: list[Queue] = []
    screens: list[Screen] = []
    exam_types: list[ExamType] = []
    templates: list[Template] = []
    phrases: list[Phrase] = []
    critical_items: list[CriticalItem] = []
    escalation: list[EscalationStep] = []

    @model_validator(mode="after")
    def _references(self) -> Department:
        campuses = {c.id for c in self.campuses}
        rooms = {r.id for r in self.rooms}
        for kind, keys in (("room", [r.id for r in self.rooms]), ("queue", [q.id for q in self.queues]),
                           ("screen", [s.id for s in self.screens]), ("exam type", [e.code for e in self.exam_types]),
                           ("template", [t.id for t in self.templates]),
                           ("critical item", [i.code for i in self.critical_items])):
            if len(keys) != len(set(keys)):
                raise ValueError(f"{kind} ids must be unique")
        for r in self.rooms:
            if r.campus not in campuses:
                raise ValueError(f"room {r.id}: unknown campus {r.campus}")
            if r.schedule not in self.schedules:
                raise ValueError(f"room {r.id}: unknown schedule {r.schedule}")
        for q in self.queues:
            if set(q.rooms) - rooms:
                raise ValueError(f"queue {q.id}: unknown rooms {sorted(set(q.rooms) - rooms)}")
        for s in self.screens:
            if set(s.rooms) - rooms:
                raise ValueError(f"screen {s.id}: unknown rooms {sorted(set(s.rooms) - rooms)}")
        return self

    def campus_name(self, campus_id: str) -> str:
        return next(c.name for c in self.campuses if c.id == campus_id)

    def hours(self, room: Room) -> list[tuple[int, time, time, str]]:
        """A room's working hours as (weekday, starts, ends, label) rows."""
        return sorted((d, h.starts, h.ends, h.label) for h in self.schedules[room.schedule] for d in h.weekdays)


def read_department(path: Path | str) -> Department:
    return Department.model_validate_json(Path(path).read_text(encoding="utf-8"))


@functools.cache
def department() -> Department:
    """The packaged starter department."""
    return read_department(DEPARTMENT_FILE)


@dataclass
class Tally:
    """One part of a service's starter: the keys it added and those it found configured (kept)."""

    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def add(self, key: str, created: bool) -> bool:
        (self.created if created else self.kept).append(key)
        return created

    def public(self) -> dict[str, Any]:
        return {"created": len(self.created), "kept": len(self.kept), "created_keys": self.created,
                "kept_keys": self.kept}


Report = dict[str, Tally]
# A service's part: `async def load(conn, department) -> {part: Tally}` on a connection of its schema, in a
# transaction the caller opened (rolled back for a preview, committed with its audit row for a load).
Loader = Callable[[asyncpg.Connection, Department], Awaitable[Report]]


class _Preview(Exception):
    """Raised inside the preview's transaction to roll it back."""


async def _one_at_a_time(conn: asyncpg.Connection, service: str) -> None:
    """Loads of one service wait for each other (two admins at once would both add what is missing)."""
    key = int.from_bytes(hashlib.sha256(f"starter:{service}".encode()).digest()[:8], "big", signed=True)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", key)


async def preview(conn: asyncpg.Connection, loader: Loader, *, service: str, dept: Department | None = None) -> Report:
    """What loading would add and keep, without changing anything (the load runs and is rolled back)."""
    report: Report = {}
    try:
        async with conn.transaction():
            await _one_at_a_time(conn, service)
            report = await loader(conn, dept or department())
            raise _Preview
    except _Preview:
        pass
    return report


async def load(conn: asyncpg.Connection, loader: Loader, *, actor: str, service: str, source_ip: str | None = None,
               dept: Department | None = None) -> Report:
    """Load a service's part and audit it as a configuration change by `actor`, in one transaction."""
    dept = dept or department()
    async with conn.transaction():
        await _one_at_a_time(conn, service)
        report = await loader(conn, dept)
        await audit.record(conn, actor=actor, action="starter-load", entity="configuration", entity_id=service,
                           source_ip=source_ip, detail={"department": dept.name, **summary(report)})
    return report


def summary(report: Report) -> dict[str, Any]:
    """{part: {created, kept, created_keys, kept_keys}} as the API answers it."""
    return {part: tally.public() for part, tally in report.items()}
