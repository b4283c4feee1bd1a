"""Fixtures of the worklist tests: a migrated schema and pool, a running SCP on a free port,
and `world`, which builds steps whose identifiers and station AE title are unique to the test
(the database is shared by the whole session)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from imaging_testing import free_port, service_pool
from worklist.adapters.dicom.scp import WorklistSCP
from worklist.app import SERVICE
from worklist.domain import steps
from worklist.settings import Settings

TZ = ZoneInfo("Asia/Shanghai")
FINDSCU = "/usr/bin/findscu"  # DCMTK's; pynetdicom installs its own findscu earlier on PATH


@pytest.fixture(scope="session")
async def pool(test_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    async with service_pool(SERVICE, test_env["DATABASE_URL"], max_size=10) as p:
        yield p


def scp_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"worklist_port": free_port(), "worklist_host": "127.0.0.1"}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
async def scp(pool: asyncpg.Pool) -> AsyncIterator[WorklistSCP]:
    server = WorklistSCP(pool, scp_settings(), asyncio.get_running_loop())
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


@contextlib.asynccontextmanager
async def busy_station(pool: asyncpg.Pool, world: World, prefix: str, steps_today: int) -> AsyncIterator[WorklistSCP]:
    """An SCP of its own with no result limit, and `steps_today` steps for the world's station
    (accessions `prefix` + tag + n, patients P1..Pn), all removed afterwards."""
    roomy = WorklistSCP(pool, scp_settings(worklist_max_results=100000), asyncio.get_running_loop())
    await asyncio.to_thread(roomy.start)
    try:
        await world.conn.execute(
            """INSERT INTO scheduled_procedure_steps (accession_number, protocol_code, source, patient_id,
                   patient_name, pn_alpha, modality, station_ae_title, start_at)
               SELECT $3 || $1 || g, $3, 'import', 'P' || g, 'N^' || g, 'N^' || g, 'CT', $2, now()
               FROM generate_series(1, $4::int) g""", world.tag, world.station, prefix, steps_today)
        yield roomy
    finally:
        await asyncio.to_thread(roomy.stop)
        await world.conn.execute("DELETE FROM scheduled_procedure_steps WHERE accession_number LIKE $1",
                                 f"{prefix}{world.tag}%")


def now_local() -> datetime:
    return datetime.now(TZ).replace(tzinfo=None, microsecond=0)


@dataclass
class World:
    conn: asyncpg.Connection
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8].upper())

    @property
    def station(self) -> str:
        return f"ST{self.tag}"  # 10 characters: a valid AE title no other test uses

    def id(self, name: str) -> str:
        return f"{name}{self.tag}"

    async def step(self, n: int = 1, **fields: Any) -> steps.StepData:
        values: dict[str, Any] = {
            "accession_number": self.id(f"A{n}"), "protocol_code": "CT-CHEST", "patient_id": self.id(f"P{n}"),
            "patient_name": "ZHANG^SAN=张^三", "modality": "CT", "station_ae_title": self.station,
            "station_name": "CT1", "location": "CT-Room-1", "room_id": self.id("room"),
            "start_at": now_local().replace(hour=9, minute=0, second=0) + timedelta(minutes=n),
            "description": "胸部CT平扫", "requested_procedure_id": self.id(f"R{n}"), "birth_date": None,
            "sex": "M",
        }
        values.update(fields)
        data = steps.StepData(**values)
        await steps.import_steps(self.conn, [data])
        return data


@pytest.fixture
async def world(pool: asyncpg.Pool) -> AsyncIterator[World]:
    async with pool.acquire() as conn:
        yield World(conn)
