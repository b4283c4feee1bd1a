"""Fixtures of the scheduling tests: a migrated schema, a pool, and a `world` that builds rooms,
exam types and orders with ids unique to the test (the database is shared by the session)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from imaging_testing import asgi_client, service_pool
from imaging_testing.auth import issue_test_token
from scheduling.app import SERVICE, create_app
from scheduling.domain.booking import Actor, BookingRefused, Scheduler, book_slot
from scheduling.settings import Settings

TZ = ZoneInfo("Asia/Shanghai")
API = "/api/scheduling"


@pytest.fixture(scope="session")
async def pool(test_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    async with service_pool(SERVICE, test_env["DATABASE_URL"], max_size=10) as p:
        yield p


@pytest.fixture(scope="module")
def settings(settings_for: Any) -> Settings:
    """The API tests' settings: housekeeping (holds, reminders, no-shows) out of their way."""
    return settings_for(Settings, scheduling_housekeeping_seconds=3600)


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(create_app(settings)) as c:
        yield c


def auth(settings: Settings, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_test_token(settings, roles=list(roles), username='-'.join(roles))}"}


@pytest.fixture(scope="module")
def admin(settings: Settings) -> dict[str, str]:
    return auth(settings, "admin")


@pytest.fixture(scope="module")
def clerk(settings: Settings) -> dict[str, str]:
    return auth(settings, "clerk")


@pytest.fixture
def scheduler() -> Scheduler:
    return Scheduler(tz=TZ, hold_minutes=15, horizon_days=30)


ACTOR = Actor("u-test", "tester", "127.0.0.1")


def day_after(days: int) -> date:
    return datetime.now(TZ).date() + timedelta(days=days)


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), TZ)


@dataclass
class World:
    """Builds one test's rooms, exams and orders; removes its rules afterwards."""

    conn: asyncpg.Connection
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    rules: list[str] = field(default_factory=list)

    @property
    def modality(self) -> str:
        return f"X{self.tag[:6]}"  # a modality of its own: no other test's rooms answer its searches

    def id(self, name: str) -> str:
        return f"{name}-{self.tag}"

    async def room(
        self,
        name: str,
        *,
        campus: str = "main",
        building: str = "A",
        modality: str | None = None,
        capabilities: tuple[str, ...] = (),
        hours: tuple[tuple[str, str], ...] = (("08:00", "12:00"), ("13:00", "17:00")),
        slice_minutes: int = 10,
        ae: str | None = None,
    ) -> str:
        room_id = self.id(name)
        await self.conn.execute(
            "INSERT INTO room (id, name, modality, campus, building, floor, location, route, station_ae_title, "
            "capabilities, slice_minutes) VALUES ($1, $2, $3, $4, $5, '2F', $6, $7, $8, $9, $10)",
            room_id,
            name,
            modality or self.modality,
            campus,
            building,
            f"{building}栋2层 {name}",
            f"从{campus}门诊大厅乘电梯到2层，右转 / lift to 2F, turn right",
            ae or name[:16],
            list(capabilities),
            slice_minutes,
        )
        for weekday in range(1, 8):
            for starts, ends in hours:
                await self.conn.execute(
                    "INSERT INTO room_session (room_id, weekday, starts, ends) VALUES ($1, $2, $3, $4)",
                    room_id,
                    weekday,
                    time.fromisoformat(starts),
                    time.fromisoformat(ends),
                )
        return room_id

    async def exam(
        self,
        code: str,
        *,
        minutes: int = 15,
        prep: int = 0,
        contrast: str = "none",
        fasting: bool = False,
        body_part: str | None = None,
        caps: tuple[str, ...] = (),
        modality: str | None = None,
        preparation: str = "",
    ) -> str:
        code = self.id(code)
        await self.conn.execute(
            "INSERT INTO exam_type (code, name, modality, body_part, duration_minutes, preparation_minutes, contrast, "
            "fasting, required_capabilities, preparation) VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $9)",
            code,
            modality or self.modality,
            body_part,
            minutes,
            prep,
            contrast,
            fasting,
            list(caps),
            preparation,
        )
        return code

    async def order(
        self,
        *exam_codes: str,
        patient: str | None = None,
        patient_class: str = "outpatient",
        ward: str | None = None,
        special: dict[str, Any] | None = None,
        priority: str = "routine",
    ) -> str:
        order_id = self.id(f"ORD{uuid.uuid4().hex[:6]}")
        empi = patient or self.id("P")
        for code in exam_codes:
            modality = await self.conn.fetchval("SELECT modality FROM exam_type WHERE code = $1", code)
            await self.conn.execute(
                "INSERT INTO exam_request (order_id, exam_code, accession_number, exam_name, modality, empi_id, "
                "patient,"
                " patient_class, ward, special, priority) VALUES ($1, $2, $3, $2, $4, $5, $6::jsonb, $7, $8, $9::jsonb,"
                " $10)",
                order_id,
                code,
                f"A{order_id}"[:32] + code[-4:],
                modality,
                empi,
                json.dumps({"empi_id": empi, "patient_id": f"PID{empi}", "name": "张三", "sex": "M"}),
                patient_class,
                ward,
                json.dumps(special or {}),
                priority,
            )
        return order_id

    async def rule(self, name: str, type_: str, params: dict[str, Any], reason: str) -> str:
        name = self.id(name)
        await self.conn.execute(
            "INSERT INTO rule (name, type, params, reason) VALUES ($1, $2, $3::jsonb, $4)",
            name,
            type_,
            json.dumps(params),
            reason,
        )
        self.rules.append(name)
        return name

    async def cleanup(self) -> None:
        await self.conn.execute("DELETE FROM rule WHERE name = ANY($1)", self.rules)
        await self.conn.execute("DELETE FROM channel_quota WHERE room_id LIKE $1", f"%-{self.tag}")


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as c:
        yield c


@pytest.fixture
async def world(conn: asyncpg.Connection) -> AsyncIterator[World]:
    w = World(conn)
    yield w
    await w.cleanup()


async def book(
    conn: asyncpg.Connection,
    scheduler: Scheduler,
    order_id: str,
    exam_code: str,
    room_id: str,
    start: datetime,
    channel: str = "front-desk",
    **options: Any,
) -> dict[str, Any]:
    """`book_slot` as the tests' one actor books: the order's exam in a room at a time, by a channel."""
    return await book_slot(conn, scheduler, order_id=order_id, exam_code=exam_code, room_id=room_id, start=start,
                           channel=channel, actor=ACTOR, **options)


async def refused(conn: asyncpg.Connection, scheduler: Scheduler, *args: Any, **kwargs: Any) -> dict[str, str]:
    """The rules that refuse a booking (`book`'s arguments): rule name -> the reason the patient is told."""
    with pytest.raises(BookingRefused) as info:
        await book(conn, scheduler, *args, **kwargs)
    return {v.rule: v.reason for v in info.value.violations}


def utc(t: datetime) -> datetime:
    return t.astimezone(UTC)


async def put_appointment(
    w: World,
    order_id: str,
    code: str,
    room_id: str,
    start: datetime,
    *,
    status: str = "booked",
    channel: str = "front-desk",
) -> str:
    """An existing appointment, written directly (the state other rules look at)."""
    q = await w.conn.fetchrow("SELECT * FROM exam_request WHERE order_id = $1 AND exam_code = $2", order_id, code)
    minutes = await w.conn.fetchval("SELECT duration_minutes FROM exam_type WHERE code = $1", code)
    return str(
        await w.conn.fetchval(
            "INSERT INTO appointment (order_id, exam_code, accession_number, empi_id, room_id, during, status, "
            "channel) "
            "VALUES ($1, $2, $3, $4, $5, tstzrange($6, $7), $8, $9) RETURNING id",
            order_id,
            code,
            q["accession_number"],
            q["empi_id"],
            room_id,
            start,
            start + timedelta(minutes=minutes),
            status,
            channel,
        )
    )
