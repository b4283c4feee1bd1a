"""Event bus throughput: events committed through the outbox, relayed with publisher confirms,
consumed with the inbox, end to end on the real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
from imaging_common import db
from imaging_common.config import CommonSettings
from imaging_common.events import CloudEvent, EventBus, publish
from imaging_common.events.topology import delete_namespace, subscriptions
from imaging_common.events.types import EVENT_MODELS, EventData, OrderCancelled

from .conftest import summarize_ms

N = 2000
SERVICE = "scheduling"  # a subscriber of order.cancelled; the schema and namespace are the bench's own


async def test_outbox_to_consumer_throughput(bench: Any, test_env: dict[str, str]) -> None:
    suffix = uuid.uuid4().hex[:8]
    schema, namespace = f"evbench_{suffix}", f"{test_env['IMAGING_NAMESPACE']}-evb{suffix}"
    conn = await asyncpg.connect(test_env["DATABASE_URL"])
    await db.migrate_component(conn, schema, "platform", db.load_migrations(db.PLATFORM_MIGRATIONS))
    await conn.close()
    pool = await db.create_pool(test_env["DATABASE_URL"], schema, max_size=4)
    settings = CommonSettings(namespace=namespace)
    committed: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()

    async def handler(conn: asyncpg.Connection, data: OrderCancelled, event: CloudEvent) -> None:
        latencies.append(time.perf_counter() - committed[event.id])
        if len(latencies) == N:
            done.set()

    async def ignore(conn: asyncpg.Connection, data: EventData, event: CloudEvent) -> None:
        return None

    # A bus starts with a handler for every type its queue is bound to; only order.cancelled is sent.
    handlers = {EVENT_MODELS[t]: ignore for t in subscriptions()[SERVICE]} | {OrderCancelled: handler}
    bus = EventBus(settings=settings, service=SERVICE, pool=pool, handlers=handlers)
    await bus.start()
    try:
        started = time.perf_counter()
        for i in range(N):
            async with pool.acquire() as c, c.transaction():
                event = await publish(c, OrderCancelled(order_id=f"O{i}", accession_number=f"A{i}"),
                                      source="/bench", subject=f"O{i}")
            committed[event.id] = time.perf_counter()
        commit_s = time.perf_counter() - started
        await asyncio.wait_for(done.wait(), 300)
        total_s = time.perf_counter() - started
    finally:
        await bus.stop()
        await pool.close()
        await delete_namespace(settings.amqp_url, namespace)
    s = summarize_ms(latencies)
    bench.figure("events committed one per transaction", N / commit_s, "events/s")
    bench.figure("events end to end (commit -> handler applied)", N / total_s, "events/s")
    bench.figure("commit -> handler p50", s["p50"], "ms")
    bench.figure("commit -> handler p95", s["p95"], "ms")
