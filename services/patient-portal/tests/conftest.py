"""Fixtures of the patient portal tests: the test SMSC, the app on it, a producer of the other
services' events (through RabbitMQ), and patients with phones of their own."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from imaging_common.events.types import ExamItem, OrderCreated, PatientRef
from imaging_testing import asgi_client, event_producer, eventually, service_pool
from imaging_testing.smsc import TestSmsc
from patient_portal.app import SERVICE, create_app
from patient_portal.settings import Settings

API = "/api/patient"


@pytest.fixture(scope="session")
async def smsc() -> AsyncIterator[TestSmsc]:
    async with TestSmsc() as server:
        yield server


@pytest.fixture(scope="session")
async def pool(test_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    async with service_pool(SERVICE, test_env["DATABASE_URL"], max_size=3) as p:
        yield p


@pytest.fixture(scope="module")
def settings(settings_for: Any, smsc: TestSmsc) -> Settings:
    return settings_for(Settings, patient_smpp_port=smsc.port, patient_token_secret="t" * 40, patient_quiet_hours="",
                        patient_message_retry_seconds=0.2, patient_message_poll_seconds=0.5,
                        patient_critical_departments="急诊科")


@pytest.fixture(scope="module")
async def client(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="session")
async def emit(test_env: dict[str, str]) -> AsyncIterator[Any]:
    """Registration's outbox and relay, publishing onto the session's exchange."""
    async with event_producer(test_env["DATABASE_URL"], service="registration",
                              schema="patient_portal_test_producer") as producer:
        yield producer


def new_phone() -> str:
    return f"139{random.randrange(10**8):08d}"


def order_for(phone: str, *, name: str = "王小明", empi_id: str | None = None) -> OrderCreated:
    tag = uuid.uuid4().hex[:10]
    patient = PatientRef(empi_id=empi_id or f"E{tag}", patient_id=f"P{tag}", name=name, sex="M", phone=phone,
                         version=1)
    return OrderCreated(order_id=f"O{tag}", accession_number=f"A{tag}", requested_procedure_id=f"R{tag}",
                        study_instance_uid=f"1.2.826.0.1.{int(tag, 16)}", patient=patient,
                        items=[ExamItem(code="CT-CHEST", name="胸部CT平扫", modality="CT")],
                        ordered_at=datetime.now(UTC), version=1)


async def registered(emit: Any, pool: asyncpg.Pool, phone: str, **kwargs: Any) -> OrderCreated:
    """A patient with this phone and one ordered exam, as the portal learns it: order.created over RabbitMQ."""
    order = order_for(phone, **kwargs)
    await emit(order, order.accession_number)

    async def known() -> bool:
        return bool(await pool.fetchval("SELECT 1 FROM exam WHERE accession_number = $1", order.accession_number))

    await eventually(known, "order.created reached the portal")
    return order


async def sign_in(client: httpx.AsyncClient, smsc: TestSmsc, phone: str) -> dict[str, str]:
    """Ask for a code, read it where the SMSC received it, sign in: the patient's auth header."""
    before = len(smsc.to(f"86{phone}"))
    r = await client.post(f"{API}/auth/code", json={"phone": phone})
    assert r.status_code == 202, r.text
    code = code_in(await smsc.wait_for(f"86{phone}", after=before, containing="验证码"))
    r = await client.post(f"{API}/auth/session", json={"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def code_in(text: str) -> str:
    match = re.search(r"验证码为 (\d{6})", text)
    assert match, text
    return match.group(1)
