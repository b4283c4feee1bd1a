"""Each message is delivered once even when the service stops in the middle of sending and starts again:
the send under way is finished and recorded before the stop, the rest wait in the table for the
next start. (Its own module: no other instance of the service is sending meanwhile.)"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
from imaging_testing import asgi_client, eventually
from imaging_testing.smsc import TestSmsc
from patient_portal.app import create_app
from patient_portal.domain import messages
from patient_portal.settings import Settings

from .conftest import new_phone, order_for

COUNT = 6


async def test_a_restart_in_the_middle_sends_each_message_once(settings: Settings, smsc: TestSmsc,
                                                               pool: asyncpg.Pool, emit: Any) -> None:
    phone = new_phone()
    order = order_for(phone)
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO patient (empi_id, phone, patient) VALUES ($1, $2, '{}')",
                           order.patient.empi_id, phone)
    bodies = [f"第{n}条 {uuid.uuid4().hex[:6]}" for n in range(COUNT)]
    smsc.delay = 0.4  # a slow SMSC: the stop comes while a submit waits for its answer
    try:
        async with asgi_client(create_app(settings)):
            async with pool.acquire() as conn:
                for n, body in enumerate(bodies):
                    await messages.enqueue(conn, dedup_key=f"restart:{phone}:{n}", kind="report-ready",
                                           empi_id=order.patient.empi_id, body=body, accession_number=None,
                                           now=datetime.now(UTC), quiet=None)
            await eventually(lambda: len(smsc.to(f"86{phone}")) >= 2, "the first messages out")
        # Stopped mid-queue: what was received is recorded as sent, the rest still queued.
        received = len(smsc.to(f"86{phone}"))
        assert received < COUNT
        assert await pool.fetchval("SELECT count(*) FROM message WHERE phone = $1 AND status = 'sent'",
                                   phone) == received
        async with asgi_client(create_app(settings)):
            await eventually(lambda: _sent(pool, phone), "every message sent after the restart")
    finally:
        smsc.delay = 0.0
    assert Counter(smsc.to(f"86{phone}")) == Counter(bodies), "each message exactly once"


async def _sent(pool: asyncpg.Pool, phone: str) -> bool:
    return await pool.fetchval("SELECT count(*) FROM message WHERE phone = $1 AND status = 'sent'", phone) == COUNT
