"""Fixtures of the queue-calling tests: a migrated schema, a pool, and a `world` that builds
queues, rooms and exams with ids unique to the test (the database is shared by the session)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from imaging_common import db
from imaging_common.events.types import AppointmentBooked, AppointmentInfo, ExamItem, OrderCreated, PatientRef
from queue_calling.app import SERVICE
from queue_calling.domain import calling, checkin, configuration, exams, views
from queue_calling.domain.calling import Who
from queue_calling.domain.scope import Change

WHO = Who("nurse1", "T1")


@pytest.fixture(scope="session")
async def pool(test_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    await db.migrate_service(test_env["DATABASE_URL"], SERVICE.schema, SERVICE.migrations)
    p = await db.create_pool(test_env["DATABASE_URL"], SERVICE.schema, max_size=12)
    yield p
    await p.close()


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class World:
    pool: asyncpg.Pool
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    n: int = 0
    default_queue: str | None = None

    def id(self, name: str) -> str:
        return f"{name}-{self.uid}"

    async def queue(self, name: str, *, prefix: str = "A", policy: dict[str, Any] | None = None,
                    skip_rule: dict[str, Any] | None = None, minutes: float = 10) -> str:
        qid = self.id(name)
        async with self.pool.acquire() as conn, conn.transaction():
            await configuration.put_queue(conn, queue_id=qid, name=name, ticket_prefix=prefix, policy=policy or {},
                                          skip_rule=skip_rule or {"mode": "after_n", "n": 2},
                                          avg_service_minutes=minutes)
        # Exams made with `queue=qid` (or the first queue by default) are placed here.
        await self.rule(qid, exam_code_prefix=f"{qid}:")
        self.default_queue = self.default_queue or qid
        return qid

    async def room(self, name: str, queue_ids: list[str], *, door_cap: int = 1) -> str:
        rid = self.id(name)
        async with self.pool.acquire() as conn, conn.transaction():
            await configuration.put_room(conn, room_id=rid, name=name, door_cap=door_cap, active=True,
                                         queue_ids=queue_ids)
        return rid

    async def rule(self, queue_id: str, *, rank: int = 100, **match: Any) -> None:
        async with self.pool.acquire() as conn:
            await configuration.add_rule(conn, queue_id=queue_id, rank=rank, **match)

    def order(self, *, name: str = "张三丰", modality: str = "CT", code: str | None = None, birth: date | None = None,
              patient_class: str = "outpatient", critical: bool = False, contrast: bool = False,
              id_hash: str | None = None, card: str | None = None, queue: str | None = None) -> OrderCreated:
        self.n += 1
        k = f"{self.uid}-{self.n}"
        patient = PatientRef(empi_id=f"E{k}", patient_id=f"P{k}", name=name, birth_date=birth or date(1980, 5, 1),
                             sex="M", id_number_masked="1101**********1234", id_number_sha256=id_hash,
                             card_number=card)
        return OrderCreated(
            order_id=f"O{k}", accession_number=f"ACC{k}", requested_procedure_id=f"RP{k}",
            study_instance_uid=f"1.2.3.{self.n}", patient=patient, patient_class=patient_class,  # type: ignore[arg-type]
            items=[ExamItem(code=code or f"{queue or self.default_queue}:{modality}", name="胸部平扫",
                            modality=modality, contrast=contrast)],
            special={"critical": critical}, ordered_at=now())  # type: ignore[arg-type]

    async def exam(self, **kw: Any) -> OrderCreated:
        order = self.order(**kw)
        async with self.pool.acquire() as conn:
            await exams.record_order(conn, order)
        return order

    async def book(self, order: OrderCreated, *, start: datetime, room_id: str = "R-x",
                   minutes: int = 15) -> AppointmentBooked:
        appt = AppointmentBooked(appointment=AppointmentInfo(
            appointment_id=f"AP-{order.order_id}", order_id=order.order_id, accession_number=order.accession_number,
            patient=order.patient, exam_code=order.items[0].code, exam_name=order.items[0].name,
            modality=order.items[0].modality, room_id=room_id, room_name=room_id, start=start,
            end=start + timedelta(minutes=minutes)))
        async with self.pool.acquire() as conn:
            await exams.record_appointment(conn, appt.appointment)
        return appt

    async def check_in(self, order: OrderCreated, *, categories: tuple[str, ...] = (), at: datetime | None = None,
                       **kw: Any) -> dict[str, Any]:
        async with self.pool.acquire() as conn, conn.transaction():
            result = await checkin.check_in(conn, kind="barcode", value=order.accession_number, actor="clerk1",
                                            categories=categories, now=at or now(), **kw)
            await views.seal(conn, result.change)
        return result.arrivals[0].entry

    async def patient(self, categories: tuple[str, ...] = (), **kw: Any) -> dict[str, Any]:
        return await self.check_in(await self.exam(**kw), categories=categories)

    async def do(self, fn: Any, **kw: Any) -> tuple[dict[str, Any], Change]:
        async with self.pool.acquire() as conn, conn.transaction():
            row, change = await fn(conn, who=WHO, **kw)
            await views.seal(conn, change)
        return row, change

    async def call_next(self, room_id: str) -> dict[str, Any]:
        row, _ = await self.do(calling.call_next, room_id=room_id, now=now())
        return row

    async def state(self, entry_id: Any) -> str:
        return str(await self.pool.fetchval("SELECT state FROM queue_entry WHERE entry_id = $1", entry_id))


@pytest.fixture
def world(pool: asyncpg.Pool) -> World:
    return World(pool)


# ---- the service over real HTTP (API, WebSocket screens, browser) --------------------------

@dataclass
class Service:
    url: str
    app: Any
    settings: Any
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, *roles: str, username: str = "tester") -> str:
        from imaging_testing.auth import issue_test_token

        key = ",".join(roles) + "|" + username
        if key not in self.tokens:
            self.tokens[key] = issue_test_token(self.settings, roles=list(roles), username=username)
        return self.tokens[key]

    def headers(self, *roles: str, username: str = "tester", terminal: str | None = None) -> dict[str, str]:
        h = {"authorization": f"Bearer {self.token(*roles, username=username)}"}
        if terminal:
            h["x-terminal-id"] = terminal
        return h

    @property
    def ctx(self) -> Any:
        return self.app.state.ctx


@pytest.fixture(scope="session")
async def service(settings_for: Any, pool: asyncpg.Pool) -> AsyncIterator[Service]:
    from imaging_testing import http_server
    from queue_calling.app import create_app
    from queue_calling.settings import Settings

    settings = settings_for(Settings, queue_screen_ping_seconds=2.0)
    app = create_app(settings)
    async with http_server(app) as url:
        yield Service(url, app, settings)


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Any]:
    import httpx

    async with httpx.AsyncClient(base_url=service.url + "/api/queue", timeout=20) as client:
        yield client
