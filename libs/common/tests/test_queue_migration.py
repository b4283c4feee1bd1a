"""Upgrading from classic to quorum event queues against the real RabbitMQ: nothing lost, nothing applied twice.

The "old" installation is declared exactly as the versions before quorum queues declared it (classic
`<ns>.<service>`, `.retry` with its dead-letter arguments, `.dlq`), with messages waiting in all three;
then a bus of this version starts (quorum by default) and its sweep moves them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiormq
import asyncpg
import pytest
from imaging_common import db
from imaging_common.config import CommonSettings
from imaging_common.events import CloudEvent, EventBus
from imaging_common.events.deadletters import list_dead_letters
from imaging_common.events.envelope import CONTENT_TYPE
from imaging_common.events.queue_migration import migrate_queues
from imaging_common.events.topology import (
    ERROR_HEADER,
    RETRIES_HEADER,
    ServiceQueues,
    declare_topology,
    delete_namespace,
    exchange_name,
    services,
    subscriptions,
)
from imaging_common.events.types import EVENT_MODELS, EventData, OrderCancelled
from imaging_testing.helpers import eventually
from prometheus_client import CollectorRegistry

SERVICE = "scheduling"
EVENT = "order.cancelled"


@dataclass
class Upgrade:
    namespace: str
    pool: asyncpg.Pool
    settings: CommonSettings
    calls: list[str] = field(default_factory=list)

    async def handle(self, conn: asyncpg.Connection, order: OrderCancelled, event: CloudEvent) -> None:
        self.calls.append(event.id)

    async def each_applied_once(self, events: list[CloudEvent], what: str, within: float, settle: float = 1.0) -> None:
        """Every event handled and, `settle` seconds on (a duplicate would show up by then), each once."""
        await eventually(lambda: len(self.calls) >= len(events), what, within)
        await asyncio.sleep(settle)
        assert sorted(self.calls) == sorted(e.id for e in events)

    def bus(self) -> EventBus:
        async def ignore(conn: asyncpg.Connection, data: EventData, event: CloudEvent) -> None:
            return None

        handlers = {EVENT_MODELS[t]: self.handle if t == EVENT else ignore for t in subscriptions()[SERVICE]}
        return EventBus(settings=self.settings, service=SERVICE, pool=self.pool, handlers=handlers,
                        registry=CollectorRegistry())


@pytest.fixture
async def upgrade(test_env: dict[str, str]) -> AsyncIterator[Upgrade]:
    suffix = uuid.uuid4().hex[:8]
    schema, namespace = f"qm_{suffix}", f"{test_env['IMAGING_NAMESPACE']}-qm{suffix}"
    conn = await asyncpg.connect(test_env["DATABASE_URL"])
    try:
        await db.migrate_component(conn, schema, "platform", db.load_migrations(db.PLATFORM_MIGRATIONS))
    finally:
        await conn.close()
    pool = await db.create_pool(test_env["DATABASE_URL"], schema, max_size=4)
    settings = CommonSettings(namespace=namespace, outbox_poll_interval=0.5, amqp_reconnect_interval=0.3)
    try:
        yield Upgrade(namespace, pool, settings)
    finally:
        await pool.close()
        await delete_namespace(test_env["AMQP_URL"], namespace)
        conn = await asyncpg.connect(test_env["DATABASE_URL"])
        try:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await conn.close()


async def declare_classic_installation(channel: aio_pika.abc.AbstractChannel, namespace: str) -> None:
    """The topology as every version before quorum queues declared it, argument for argument."""
    exchange = await channel.declare_exchange(exchange_name(namespace), aio_pika.ExchangeType.TOPIC, durable=True)
    for service in services():
        main = f"{namespace}.{service}"
        queue = await channel.declare_queue(main, durable=True)
        for event_type in subscriptions()[service]:
            await queue.bind(exchange, routing_key=event_type)
        await channel.declare_queue(f"{main}.retry", durable=True,
                                    arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": main})
        await channel.declare_queue(f"{main}.dlq", durable=True)
    assert ServiceQueues(namespace, SERVICE, "classic").main == f"{namespace}.{SERVICE}"  # same names kept


def order_event(n: int) -> CloudEvent:
    return CloudEvent.from_data(OrderCancelled(order_id=f"O-{n}", accession_number=f"A-{n}", reason="upgrade"),
                                source="/imaging/test", subject=f"A-{n}")


def persistent(event: CloudEvent, **kwargs: Any) -> aio_pika.Message:
    return aio_pika.Message(event.to_json(), message_id=event.id, type=event.type, content_type=CONTENT_TYPE,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **kwargs)


async def depth(channel: aio_pika.abc.AbstractChannel, name: str) -> int | None:
    """Messages in a queue, None when it does not exist (a failed passive declare closes the channel)."""
    try:
        queue = await channel.declare_queue(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    return int(queue.declaration_result.message_count or 0)


async def test_classic_queues_with_messages_move_to_quorum_queues_each_event_applied_once(
    upgrade: Upgrade, test_env: dict[str, str]
) -> None:
    ns = upgrade.namespace
    old = ServiceQueues(ns, SERVICE, "classic")
    waiting = [order_event(n) for n in range(40)]
    retrying = [order_event(100 + n) for n in range(3)]
    dead = [order_event(200 + n) for n in range(2)]
    connection = await aio_pika.connect(test_env["AMQP_URL"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare_classic_installation(channel, ns)
        exchange = await channel.get_exchange(exchange_name(ns))
        for event in waiting:  # published by the old version, not consumed yet (its pods are down)
            await exchange.publish(persistent(event), routing_key=EVENT)
        for event in retrying:  # failed once, waiting out a long retry delay
            await channel.default_exchange.publish(
                persistent(event, headers={RETRIES_HEADER: 1, ERROR_HEADER: "RuntimeError: old"}, expiration=3600),
                routing_key=old.retry)
        for event in dead:
            await channel.default_exchange.publish(
                persistent(event, headers={RETRIES_HEADER: 6, ERROR_HEADER: "RuntimeError: gave up"}),
                routing_key=old.dlq)
        assert (await depth(channel, old.main), await depth(channel, old.retry)) == (40, 3)

        bus = upgrade.bus()  # this version: quorum queues by default
        await bus.start()
        try:
            await upgrade.each_applied_once(waiting + retrying, "every waiting and retrying event applied", 60,
                                            settle=1.5)

            channel = await connection.channel()
            for name in (old.main, old.retry, old.dlq):  # deleted once empty and unused
                assert await depth(channel, name) is None, name
                channel = await connection.channel()
            new = ServiceQueues(ns, SERVICE, "quorum")
            for role in ("main", "retry", "dlq"):  # re-declared as quorum without complaint: they are quorum
                await new.declare(channel, role)  # type: ignore[arg-type]
            consumers = (await channel.declare_queue(new.main, passive=True)).declaration_result.consumer_count
            assert consumers == 1
            letters = await list_dead_letters(test_env["AMQP_URL"], ns, SERVICE)
            assert [d.event_id for d in letters] == [e.id for e in dead]
            assert [d.error for d in letters] == ["RuntimeError: gave up"] * 2
            # Other services' classic queues moved too (their events wait in their quorum queues).
            for service in services():
                if service != SERVICE and EVENT in subscriptions()[service]:
                    assert await depth(channel, f"{ns}.{service}") is None
                    channel = await connection.channel()
                    assert await depth(channel, ServiceQueues(ns, service).main) == len(waiting)
            inbox = await upgrade.pool.fetchval("SELECT count(*) FROM inbox")
            assert inbox == len(waiting) + len(retrying)
        finally:
            await bus.stop()
    finally:
        await connection.close()


async def test_an_old_queue_still_consumed_by_the_previous_version_is_kept_until_it_lets_go(
    upgrade: Upgrade, test_env: dict[str, str]
) -> None:
    """A rolling upgrade: an old pod still consumes the classic queue. The sweep moves what it does not
    hold and keeps the queue (and its retry queue); once the old pod is gone the next sweep moves the
    rest and deletes them."""
    ns = upgrade.namespace
    old = ServiceQueues(ns, SERVICE, "classic")
    events = [order_event(n) for n in range(5)]
    connection = await aio_pika.connect(test_env["AMQP_URL"])
    old_pod = await aio_pika.connect(test_env["AMQP_URL"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare_classic_installation(channel, ns)
        exchange = await channel.get_exchange(exchange_name(ns))
        for event in events:
            await exchange.publish(persistent(event), routing_key=EVENT)
        held: list[aio_pika.abc.AbstractIncomingMessage] = []
        old_channel = await old_pod.channel()
        await old_channel.set_qos(prefetch_count=1)
        old_queue = await old_channel.declare_queue(old.main, durable=True)

        async def hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            held.append(message)  # takes one and never acknowledges it

        await old_queue.consume(hold)

        async def holding() -> bool:
            return len(held) == 1

        await eventually(holding, "the old pod holding a message", 10)

        await declare_topology(channel, ns, "quorum")
        first = await migrate_queues(test_env["AMQP_URL"], ns, "quorum")
        route = f"{old.main} -> {ServiceQueues(ns, SERVICE).main}"
        assert first.moved[route] == 4
        assert old.main in first.kept and old.retry in first.kept and not first.done
        assert old.dlq in first.deleted  # empty and unused: nothing holds it back

        await old_pod.close()  # the old pod ends: its unacknowledged message returns to the classic queue
        second = await migrate_queues(test_env["AMQP_URL"], ns, "quorum")
        assert second.moved == {route: 1}
        assert {old.main, old.retry} <= set(second.deleted) and second.done

        bus = upgrade.bus()
        await bus.start()
        try:
            await upgrade.each_applied_once(events, "every event applied", 30)
        finally:
            await bus.stop()
    finally:
        if not old_pod.is_closed:
            await old_pod.close()
        await connection.close()


async def test_classic_setting_moves_quorum_queues_back(upgrade: Upgrade, test_env: dict[str, str]) -> None:
    """IMAGING_EVENT_QUEUE_TYPE=classic (a single-node development broker) after quorum: the same sweep,
    the other way; the consumer uses the classic names."""
    ns = upgrade.namespace
    quorum = ServiceQueues(ns, SERVICE, "quorum")
    events = [order_event(n) for n in range(4)]
    connection = await aio_pika.connect(test_env["AMQP_URL"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_topology(channel, ns, "quorum")
        for event in events:
            await exchange.publish(persistent(event), routing_key=EVENT)
        upgrade.settings = upgrade.settings.model_copy(update={"event_queue_type": "classic"})
        bus = upgrade.bus()
        await bus.start()
        try:
            await upgrade.each_applied_once(events, "every event applied from the classic queue", 30)
            assert bus.consumer is not None and bus.consumer.queues.main == f"{ns}.{SERVICE}"
            channel = await connection.channel()
            assert await depth(channel, quorum.main) is None
        finally:
            await bus.stop()
    finally:
        await connection.close()
