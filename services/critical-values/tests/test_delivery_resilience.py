"""Delivery over real MLLP when the receiver is slow or away, each test with its own engine (one
delivery worker, so every message shares one connection): an ACK slower than the timeout is matched
to its own message and never becomes the next one's; a receiver down longer than the retry budget
is still retried, on the slower schedule, and gets the message when it comes back."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from critical_values.app import create_app
from imaging_testing import asgi_client, free_port

from .conftest import ClinicianSystem, Service, World, clinician_system_running, eventually, fast_settings
from .test_loop import raise_value


@contextlib.asynccontextmanager
async def own_service(**settings: Any) -> AsyncIterator[Service]:
    s = fast_settings(critical_delivery_workers=1, **settings)
    app = create_app(s)
    async with asgi_client(app) as client:
        yield Service(client, s, app)


async def test_late_ack_is_matched_to_its_own_message(pool: asyncpg.Pool) -> None:
    # Timeout 0.6 s, first ACK after 0.9 s; the in-budget retry only after 30 s, so only the late
    # ACK itself can mark the first message delivered within this test.
    async with own_service(critical_delivery_timeout=0.6, critical_retry_seconds=30.0) as service, \
            clinician_system_running(ClinicianSystem()) as stub:
        world = World(pool, stub)
        await world.receiver(fhir=False)
        stub.next_hl7_delay = 0.9
        first = await raise_value(service, await world.order())
        second = await raise_value(service, await world.order(), finding="颅内出血")

        async def both_delivered() -> list[asyncpg.Record]:
            rows = await pool.fetch("SELECT * FROM notification WHERE critical_id = ANY($1::text[]) "
                                    "AND status = 'accepted' ORDER BY created_at",
                                    [first["critical_id"], second["critical_id"]])
            return list(rows) if len(rows) == 2 else []
        notes = {n["critical_id"]: n for n in await eventually(both_delivered, within=10)}
        one, two = notes[first["critical_id"]], notes[second["critical_id"]]
        # Each message reached the receiver once, on one connection, in order.
        assert stub.hl7_received == [one["notification_id"], two["notification_id"]] and stub.duplicates == 0
        # The first: timed out once, then its own (late) ACK delivered it; no re-send was needed.
        assert one["attempts"] == 1 and "TimeoutError" not in (one["last_error"] or "")
        detail = await pool.fetchval("SELECT detail->>'late_ack' FROM action_log WHERE critical_id = $1 "
                                     "AND action = 'delivered'", first["critical_id"])
        assert detail == "true"
        assert "delivery-retry" in await world.actions(first["critical_id"])
        # The second read its own ACK: accepted at the first attempt, nothing retried.
        assert two["attempts"] == 1
        assert "delivery-retry" not in await world.actions(second["critical_id"])
        assert (await world.value(second["critical_id"]))["state"] == "notified"
        assert (await world.value(first["critical_id"]))["state"] == "notified"


async def test_receiver_down_longer_than_the_budget_is_retried_slowly_until_delivered(pool: asyncpg.Pool) -> None:
    port = free_port()  # nothing listens there yet
    async with own_service(critical_delivery_max_attempts=2, critical_retry_seconds=0.1,
                           critical_slow_retry_seconds=0.5, critical_delivery_timeout=0.5) as service:
        stub = ClinicianSystem()
        world = World(pool, stub)
        await world.receiver(fhir=False, hl7_port=port)
        cv = await raise_value(service, await world.order())
        cid = cv["critical_id"]

        async def slow_retries() -> Any:  # budget spent (2), then at least two slow retries
            return await pool.fetchrow("SELECT * FROM notification WHERE critical_id = $1 AND attempts >= 4", cid)
        note = await eventually(slow_retries, within=10)
        assert note["status"] == "pending" and "Connect" in note["last_error"]
        assert await pool.fetchval("SELECT count(*) FROM phone_task WHERE critical_id = $1", cid) == 1
        acts = await world.actions(cid)
        assert acts.count("delivery-failed") == 1 and acts.count("delivery-retry") == 1

        async with clinician_system_running(stub, mllp_port=port):
            async def accepted() -> Any:
                return await pool.fetchrow("SELECT * FROM notification WHERE critical_id = $1 "
                                           "AND status = 'accepted'", cid)
            note = await eventually(accepted, within=10)
            assert [m.control_id for m in stub.messages_for(cid)] == [note["notification_id"]]
            row = await world.value(cid)
            assert row["state"] == "notified" and row["first_notified_at"] is not None
