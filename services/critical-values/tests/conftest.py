"""Fixtures of the critical-values tests: a clinician-system stub speaking real MLLP (with ACK,
imaging_common.hl7) and real FHIR REST (FastAPI over TCP), the service running with short polls,
and a `world` that builds orders, receivers and rosters with ids unique to the test."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from critical_values.app import SERVICE, create_app
from critical_values.domain import recipients
from critical_values.settings import Settings
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from imaging_common.hl7 import HL7Error, Message, MessageService, MLLPServer
from imaging_common.hl7 import ack as acks
from imaging_testing import asgi_client, free_port, http_server, service_pool
from imaging_testing.auth import issue_test_token
from imaging_testing.fhir import r4b_resource

IDENT = "urn:imaging:critical-values:notification"


@dataclass
class ClinicianSystem:
    """A hospital clinician system: receives ORU^R01 over MLLP and Communication/Task over FHIR (each
    resource parsed with fhir.resources' R4B models, refused 400 when it is not valid R4)."""

    hl7: list[tuple[float, Message]] = field(default_factory=list)
    fhir: dict[str, dict[str, Any]] = field(default_factory=dict)  # resource id -> resource
    fhir_times: dict[str, float] = field(default_factory=dict)  # notification id -> accepted (monotonic)
    duplicates: int = 0
    hl7_answer: str = "AA"
    fhir_status: int = 201
    fhir_delay: float = 0.0  # seconds the FHIR server takes to answer
    mllp_port: int = 0
    fhir_url: str = ""
    sequential_ids: bool = False  # number FHIR resources 1, 2, 3... per kind, as many systems do
    next_hl7_delay: float = 0.0  # seconds the next HL7 message waits for its ACK (once)
    hl7_received: list[str] = field(default_factory=list)  # every MSH-10 received, duplicates too
    fhir_refused: list[str] = field(default_factory=list)  # why each resource that was not valid R4B was refused
    _counters: dict[str, int] = field(default_factory=dict)

    async def on_hl7(self, message: Message) -> str | None:
        self.hl7_received.append(message.control_id)
        delay, self.next_hl7_delay = self.next_hl7_delay, 0.0
        if delay:
            await asyncio.sleep(delay)
        if self.hl7_answer != "AA":
            raise HL7Error(acks.APPLICATION_INTERNAL_ERROR, "ward system busy")
        if any(m.control_id == message.control_id for _, m in self.hl7):
            self.duplicates += 1  # a receiver drops a message whose MSH-10 it has seen
            return "duplicate ignored"
        self.hl7.append((time.monotonic(), message))
        return None

    def fhir_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/fhir/{kind}")
        async def create(kind: str, request: Request) -> JSONResponse:
            if self.fhir_delay:
                await asyncio.sleep(self.fhir_delay)
            if self.fhir_status != 201:
                return JSONResponse({"resourceType": "OperationOutcome"}, status_code=self.fhir_status)
            body = await request.json()
            try:
                r4b_resource(body, kind)
            except (AssertionError, ValueError) as exc:
                self.fhir_refused.append(f"{kind}: {exc}"[:500])
                return JSONResponse({"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "invalid", "diagnostics": str(exc)[:500]}]}, status_code=400)
            ident = next(i["value"] for i in body["identifier"] if i["system"] == IDENT)
            cond = request.headers.get("if-none-exist", "")
            for res in self.fhir.values():
                if res["resourceType"] == kind and f"|{ident}" in cond and any(
                        i["value"] == ident for i in res["identifier"]):
                    self.duplicates += 1
                    return JSONResponse(res, status_code=200)
            if self.sequential_ids:
                self._counters[kind] = self._counters.get(kind, 0) + 1
                rid = str(self._counters[kind])
            else:
                rid = f"{kind[:4].lower()}-{uuid.uuid4().hex[:10]}"
            self.fhir[f"{kind}/{rid}" if self.sequential_ids else rid] = {**body, "id": rid}
            if kind == "Communication":
                self.fhir_times[ident] = time.monotonic()
            return JSONResponse({**body, "id": rid}, status_code=201, headers={"Location": f"{kind}/{rid}"})

        return app

    def messages_for(self, critical_id: str) -> list[Message]:
        return [m for _, m in self.hl7 if f"critical_id={critical_id};" in m.field("NTE", 3)]

    def resources_for(self, critical_id: str, kind: str = "Communication") -> list[dict[str, Any]]:
        out = []
        for res in self.fhir.values():
            if res["resourceType"] != kind:
                continue
            if kind == "Communication" and any(i["value"] == critical_id for i in res["identifier"]):
                out.append(res)
            elif kind != "Communication" and res.get("_critical") == critical_id:
                out.append(res)
        return out


@pytest.fixture(scope="session")
async def clinician_system(test_env: dict[str, str]) -> AsyncIterator[ClinicianSystem]:
    stub = ClinicianSystem()
    async with MLLPServer(MessageService(stub.on_hl7, application="HIS", facility="WARD"), "127.0.0.1",
                          free_port()) as server, http_server(stub.fhir_app()) as url:
        stub.mllp_port = server.port
        stub.fhir_url = f"{url}/fhir"
        yield stub


@contextlib.asynccontextmanager
async def clinician_system_running(stub: ClinicianSystem, *, application: str = "HIS",
                                   mllp_port: int | None = None) -> AsyncIterator[ClinicianSystem]:
    async with MLLPServer(MessageService(stub.on_hl7, application=application, facility="WARD"), "127.0.0.1",
                          mllp_port or free_port()) as server, http_server(stub.fhir_app()) as url:
        stub.mllp_port = server.port
        stub.fhir_url = f"{url}/fhir"
        yield stub


@pytest.fixture(scope="session")
async def pool(test_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    async with service_pool(SERVICE, test_env["DATABASE_URL"], max_size=6) as p:
        yield p


def fast_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = dict(critical_mllp_host="127.0.0.1", critical_mllp_port=free_port(),
                                critical_poll_seconds=0.1, critical_retry_seconds=0.2,
                                critical_delivery_max_attempts=3, critical_delivery_timeout=3.0,
                                critical_slow_retry_seconds=1.0)
    base.update(overrides)
    return Settings(**base)


@dataclass
class Service:
    client: httpx.AsyncClient
    settings: Settings
    app: FastAPI

    def headers(self, *roles: str, username: str | None = None) -> dict[str, str]:
        name = username or f"{roles[0]}-user"
        return {"Authorization": f"Bearer {issue_test_token(self.settings, roles=list(roles), username=name)}"}

    @property
    def mllp_port(self) -> int:
        return int(self.app.state.ctx.extras["mllp_port"])


@pytest.fixture(scope="module")
async def service(test_env: dict[str, str], pool: asyncpg.Pool) -> AsyncIterator[Service]:
    settings = fast_settings()
    app = create_app(settings)
    async with asgi_client(app) as client:
        yield Service(client, settings, app)


async def eventually(check: Any, within: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {getattr(check, '__name__', check)}")
        await asyncio.sleep(interval)


@dataclass
class World:
    pool: asyncpg.Pool
    stub: ClinicianSystem
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    n: int = 0

    @property
    def department(self) -> str:
        return f"急诊科-{self.uid}"

    async def receiver(self, *, hl7: bool = True, fhir: bool = True, fhir_request: str | None = "Task",
                       hl7_port: int | None = None, fhir_url: str | None = None, receiver_id: str | None = None,
                       department: str | None = None, **identity: Any) -> str:
        """A receiver; by default it acknowledges as MSH-3 = its id and FHIR username = its id."""
        rid = receiver_id or f"HIS-{self.uid}"
        async with self.pool.acquire() as conn:
            await recipients.put_receiver(
                conn, receiver_id=rid, name="急诊临床系统", department=department or self.department,
                hl7_host="127.0.0.1" if hl7 else None, hl7_port=(hl7_port or self.stub.mllp_port) if hl7 else None,
                hl7_message_type="ORU^R01", fhir_base_url=(fhir_url or self.stub.fhir_url) if fhir else None,
                fhir_request=fhir_request, active=True, **identity)
        return rid

    async def order(self, *, doctor: str | None = "王医生", doctor_id: str | None = "D001",
                    modality: str = "CT") -> dict[str, Any]:
        self.n += 1
        acc = f"ACC-{self.uid}-{self.n}"
        patient = {"empi_id": f"E{self.uid}{self.n}", "patient_id": f"P{self.uid}{self.n}", "name": "张三丰",
                   "sex": "M", "birth_date": "1970-01-02"}
        async with self.pool.acquire() as conn:
            await recipients.remember_order(
                conn, accession_number=acc, order_id=f"O{acc}", patient=patient, patient_class="emergency",
                ordering_doctor_id=doctor_id, ordering_doctor=doctor, ordering_department=self.department,
                ward=f"EW-{self.uid}", modality=modality)
        return {"accession_number": acc, "patient": patient}

    async def roster(self, duty: str, person_id: str, name: str, phone: str = "13800000000") -> None:
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn:
            await recipients.add_roster_entry(conn, department=self.department, duty=duty, person_id=person_id,
                                              person_name=name, phone=phone, starts_at=now - timedelta(hours=1),
                                              ends_at=now + timedelta(hours=8))

    async def value(self, critical_id: str) -> asyncpg.Record:
        return await self.pool.fetchrow("SELECT * FROM critical_value WHERE critical_id = $1", critical_id)

    async def actions(self, critical_id: str) -> list[str]:
        rows = await self.pool.fetch("SELECT action FROM action_log WHERE critical_id = $1 ORDER BY at, log_id",
                                     critical_id)
        return [r["action"] for r in rows]

    async def outbox(self, critical_id: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT type FROM outbox WHERE envelope->'data'->>'critical_id' = $1 ORDER BY seq", critical_id)
        return [r["type"] for r in rows]


@pytest.fixture
def world(pool: asyncpg.Pool, clinician_system: ClinicianSystem) -> World:
    return World(pool, clinician_system)
