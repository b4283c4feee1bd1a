"""The event bus against the real RabbitMQ and PostgreSQL: outbox, relay, inbox, retries, DLQ.

Each test gets its own schema (platform migrations + a `handled` table the handlers write to,
in the handler's transaction) and its own RabbitMQ namespace, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import pytest
from imaging_common import db
from imaging_common.config import CommonSettings
from imaging_common.events import CloudEvent, EventBus, publish, versions
from imaging_common.events.deadletters import list_dead_letters, purge_dead_letters, replay_dead_letters
from imaging_common.events.metrics import EventMetrics
from imaging_common.events.outbox import OutboxRelay, RelayError
from imaging_common.events.topology import (
    ServiceQueues,
    declare_topology,
    delete_namespace,
    queue_name,
    subscriptions,
)
from imaging_common.events.types import (
    EVENT_MODELS,
    EventData,
    ExamItem,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    PatientMerged,
    PatientRef,
    ReportSigned,
)
from imaging_common.observability import bind_correlation_id, current_correlation_id
from imaging_testing.helpers import eventually
from imaging_testing.proxy import TcpProxy
from prometheus_client import CollectorRegistry

SERVICE = "scheduling"  # consumes order.cancelled; worklist's queue (no consumer here) gets a copy too
EVENT = "order.cancelled"


@dataclass
class Sandbox:
    schema: str
    namespace: str
    pool: asyncpg.Pool
    settings: CommonSettings
    poison: set[str] = field(default_factory=set)  # order ids the handler fails on
    calls: list[tuple[str, str]] = field(default_factory=list)  # (event id, "ok" | "failed") in call order
    correlation: dict[str, str | None] = field(default_factory=dict)

    async def handle(self, conn: asyncpg.Connection, order: OrderCancelled, event: CloudEvent) -> None:
        self.correlation[event.id] = current_correlation_id()
        if order.order_id in self.poison:
            self.calls.append((event.id, "failed"))
            raise RuntimeError(f"cannot cancel order {order.order_id}")
        await conn.execute("INSERT INTO handled (event_id, order_id) VALUES ($1, $2)", event.id, order.order_id)
        self.calls.append((event.id, "ok"))

    async def handled(self, event_id: str) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM handled WHERE event_id = $1", event_id))

    async def wait_handled(self, event_id: str, within: float = 15.0) -> None:
        async def done() -> bool:
            return await self.handled(event_id) > 0

        await eventually(done, f"event {event_id} handled", within)

    async def emit(self, order_id: str, reason: str = "test") -> CloudEvent:
        async with self.pool.acquire() as conn, conn.transaction():
            return await publish(
                conn, OrderCancelled(order_id=order_id, accession_number=f"ACC-{order_id}", reason=reason),
                source="/imaging/test", subject=f"ACC-{order_id}",
            )

    def handlers(self) -> dict[type[EventData], Any]:
        """A handler for every type SERVICE subscribes to (a bus starts only with all of them)."""
        return {EVENT_MODELS[t]: self.handle if t == EVENT else _ignore for t in subscriptions()[SERVICE]}

    def bus(self, handlers: dict[type[EventData], Any] | None = None, **settings: Any) -> EventBus:
        s = self.settings.model_copy(update=settings) if settings else self.settings
        return EventBus(
            settings=s, service=SERVICE, pool=self.pool,
            handlers=self.handlers() if handlers is None else handlers,
            registry=CollectorRegistry(),
        )


async def _ignore(conn: asyncpg.Connection, data: EventData, event: CloudEvent) -> None:
    return None


@contextlib.asynccontextmanager
async def running(bus: EventBus) -> AsyncIterator[EventBus]:
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


@pytest.fixture
async def sandbox(test_env: dict[str, str]) -> AsyncIterator[Sandbox]:
    suffix = uuid.uuid4().hex[:8]
    schema = f"ev_{suffix}"
    namespace = f"{test_env['IMAGING_NAMESPACE']}-ev{suffix}"
    conn = await asyncpg.connect(test_env["DATABASE_URL"])
    try:
        await db.migrate_component(conn, schema, "platform", db.load_migrations(db.PLATFORM_MIGRATIONS))
        await conn.execute(f"CREATE TABLE {schema}.handled (event_id text NOT NULL, order_id text NOT NULL)")
    finally:
        await conn.close()
    pool = await db.create_pool(test_env["DATABASE_URL"], schema, max_size=6)
    settings = CommonSettings(
        namespace=namespace,
        event_max_retries=2,
        event_retry_delay_ms=150,
        outbox_poll_interval=0.5,
        amqp_reconnect_interval=0.3,
    )
    try:
        yield Sandbox(schema, namespace, pool, settings)
    finally:
        await pool.close()
        await delete_namespace(test_env["AMQP_URL"], namespace)


async def send_raw(sb: Sandbox, body: bytes, *, message_id: str | None = None) -> None:
    """Put a message straight on the service's queue, as a misbehaving producer (or a redelivery) would."""
    connection = await aio_pika.connect(sb.settings.amqp_url)
    try:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue_name(sb.namespace, SERVICE),
        )
    finally:
        await connection.close()


async def drain(sb: Sandbox, service: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take every message from a service's queue (one with no consumer in the test)."""
    connection = await aio_pika.connect(sb.settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await ServiceQueues(sb.namespace, service).declare(channel, "main")
        got = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            got.append(message)
        return got
    finally:
        await connection.close()


# ---- (a) transactional publishing ---------------------------------------------------------------


async def test_committed_event_is_delivered_and_rolled_back_one_is_not(sandbox: Sandbox) -> None:
    sb = sandbox
    async with running(sb.bus()) as bus:
        assert bus.is_connected
        bind_correlation_id("corr-abc")
        try:
            committed = await sb.emit("O-commit")
        finally:
            bind_correlation_id(None)

        class Rollback(Exception):
            pass

        with pytest.raises(Rollback):
            async with sb.pool.acquire() as conn, conn.transaction():
                rolled_back = await publish(conn, OrderCancelled(order_id="O-rollback", accession_number="A"),
                                            source="/imaging/test")
                raise Rollback
        marker = await sb.emit("O-after")

        await sb.wait_handled(committed.id)
        await sb.wait_handled(marker.id)  # one at a time, in order: anything before it was seen
        assert await sb.handled(committed.id) == 1
        assert await sb.handled(rolled_back.id) == 0
        assert await sb.pool.fetchval("SELECT count(*) FROM outbox WHERE event_id = $1", rolled_back.id) == 0
        assert sb.correlation[committed.id] == "corr-abc"  # bound from the envelope while handling
        assert await sb.pool.fetchval(
            "SELECT published_at IS NOT NULL FROM outbox WHERE event_id = $1", committed.id)
        assert await sb.pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", committed.id) == 1

    # The same event, as the other subscriber's queue (nobody consuming it here) holds it on the wire.
    copies = {m.message_id: m for m in await drain(sb, "worklist")}
    assert set(copies) == {committed.id, marker.id}
    wire = copies[committed.id]
    assert wire.content_type == "application/cloudevents+json"
    assert wire.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert wire.routing_key == EVENT and wire.type == EVENT
    envelope = json.loads(wire.body)
    assert envelope["id"] == committed.id and envelope["type"] == EVENT and envelope["specversion"] == "1.0"
    assert envelope["data"]["order_id"] == "O-commit" and envelope["correlationid"] == "corr-abc"


async def test_events_published_before_the_consumer_starts_wait_for_it(sandbox: Sandbox) -> None:
    sb = sandbox
    async with running(sb.bus(handlers={})):  # publisher only: declares every queue, consumes none
        early = await sb.emit("O-early")
        await eventually(lambda: sb.pool.fetchval(
            "SELECT published_at IS NOT NULL FROM outbox WHERE event_id = $1", early.id), "published", 15.0)
    async with running(sb.bus()):
        await sb.wait_handled(early.id)


async def test_publish_refuses_to_run_outside_a_transaction(sandbox: Sandbox) -> None:
    async with sandbox.pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await publish(conn, OrderCancelled(order_id="O", accession_number="A"), source="/x")


async def test_handlers_outside_subscriptions_refuse_to_start(sandbox: Sandbox) -> None:
    bus = sandbox.bus(handlers={ReportSigned: sandbox.handle})
    with pytest.raises(ValueError, match=r"report.signed"):
        await bus.start()
    assert not bus.is_connected


async def test_a_subscription_without_a_handler_refuses_to_start(sandbox: Sandbox) -> None:
    bus = sandbox.bus(handlers={OrderCreated: sandbox.handle})  # scheduling subscribes to order.cancelled too
    with pytest.raises(ValueError, match=r"order.cancelled.*no handler"):
        await bus.start()
    assert not bus.is_connected


async def test_a_subscribed_event_without_a_handler_is_counted_and_logged(  # type: ignore[no-untyped-def]
        sandbox: Sandbox, caplog, monkeypatch) -> None:
    # An older replica during a rolling upgrade: a newer publisher bound a type it cannot handle.
    monkeypatch.setattr("imaging_common.events.bus.check_handlers", lambda service, handled: None)
    bus = sandbox.bus(handlers={OrderCreated: sandbox.handle})
    async with running(bus):
        for n in range(2):
            await sandbox.emit(f"O-ignored-{n}")

        async def both_ignored() -> bool:
            return bool(bus.metrics.consumed.labels(SERVICE, EVENT, "ignored")._value.get() == 2)

        await eventually(both_ignored, "both events acknowledged unapplied", 15.0)
    warnings = [r for r in caplog.records if "has no handler" in r.getMessage()]
    assert len(warnings) == 1 and EVENT in warnings[0].getMessage()  # once per type, not per event


async def test_events_committed_one_after_another_are_handled_in_that_order(sandbox: Sandbox) -> None:
    sb = sandbox
    backlog = [await sb.emit(f"O-backlog-{i}") for i in range(60)]  # relayed as pipelined batches
    async with running(sb.bus(outbox_batch_size=25)):
        events = backlog + [await sb.emit(f"O-seq-{i}") for i in range(20)]
        await sb.wait_handled(events[-1].id)
        handled = [eid for eid, outcome in sb.calls if outcome == "ok"]
        assert handled == [e.id for e in events]


# ---- (b) broker away ----------------------------------------------------------------------------


async def test_event_committed_while_broker_unreachable_is_delivered_after_it_returns(sandbox: Sandbox) -> None:
    sb = sandbox
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    try:
        bus = sb.bus(amqp_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/")
        async with running(bus):
            before = await sb.emit("O-before")
            await sb.wait_handled(before.id)

            await proxy.cut()
            await eventually(lambda: not bus.is_connected, "the bus to notice the cut", 5)
            during = await sb.emit("O-during")  # committed while RabbitMQ cannot be reached
            await asyncio.sleep(1.0)
            assert await sb.pool.fetchval(
                "SELECT published_at FROM outbox WHERE event_id = $1", during.id) is None
            assert await sb.pool.fetchval(
                "SELECT attempts FROM outbox WHERE event_id = $1", during.id) >= 1
            assert await sb.handled(during.id) == 0

            await proxy.restore()
            await sb.wait_handled(during.id, within=20)
            assert bus.is_connected
            assert await sb.handled(during.id) == 1
            after = await sb.emit("O-after")
            await sb.wait_handled(after.id)
            assert proxy.connections_made >= 2  # it really reconnected through the proxy
    finally:
        await proxy.close()


async def test_database_outage_delays_events_without_burning_their_retries(
    sandbox: Sandbox, test_env: dict[str, str]
) -> None:
    sb = sandbox
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    via_proxy = test_env["DATABASE_URL"].replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert via_proxy != test_env["DATABASE_URL"]
    pool = await db.create_pool(via_proxy, sb.schema, max_size=3)
    try:
        bus = EventBus(settings=sb.settings.model_copy(update={"database_url": via_proxy}), service=SERVICE,
                       pool=pool, handlers=sb.handlers())
        async with running(bus):
            await proxy.cut()
            event = CloudEvent.from_data(OrderCancelled(order_id="O-dbdown", accession_number="A"), source="/t")
            await send_raw(sb, event.to_json(), message_id=event.id)  # RabbitMQ is fine; PostgreSQL is not
            await asyncio.sleep(1.5)
            assert await sb.handled(event.id) == 0
            await proxy.restore()
            await sb.wait_handled(event.id, within=20)
        assert await sb.handled(event.id) == 1
        assert [c for c in sb.calls if c[0] == event.id] == [(event.id, "ok")]  # the handler never saw the outage
        assert await list_dead_letters(sb.settings.amqp_url, sb.namespace, SERVICE) == []
    finally:
        await pool.close()
        await proxy.close()


# ---- (c) duplicates -----------------------------------------------------------------------------


async def test_duplicate_delivery_changes_nothing(sandbox: Sandbox) -> None:
    sb = sandbox
    bus = sb.bus()
    async with running(bus):
        event = CloudEvent.from_data(OrderCancelled(order_id="O-dup", accession_number="A-dup"), source="/t")
        await send_raw(sb, event.to_json(), message_id=event.id)
        await send_raw(sb, event.to_json(), message_id=event.id)
        # A relay re-publishing a row (its confirm lost in a crash) is the other way a duplicate arrives.
        relayed = await sb.emit("O-dup2")
        await sb.wait_handled(relayed.id)
        # The relay marks a row published after its confirm, which may come after the consumer
        # already handled it: wait for the mark, or resetting it below would race with it.
        for _ in range(200):
            if await sb.pool.fetchval("SELECT published_at FROM outbox WHERE event_id = $1", relayed.id):
                break
            await asyncio.sleep(0.05)
        await sb.pool.execute("UPDATE outbox SET published_at = NULL WHERE event_id = $1", relayed.id)
        assert bus.relay is not None
        bus.relay.wake()
        marker = await sb.emit("O-marker")
        await sb.wait_handled(marker.id)

        assert await sb.handled(event.id) == 1
        assert await sb.handled(relayed.id) == 1
        assert [c for c in sb.calls if c[0] in (event.id, relayed.id)] == [(event.id, "ok"), (relayed.id, "ok")]
        registry = bus.metrics.consumed
        assert registry.labels(SERVICE, EVENT, "duplicate")._value.get() == 2
        assert registry.labels(SERVICE, EVENT, "applied")._value.get() == 3


# ---- (d) poison messages, DLQ, replay -----------------------------------------------------------


async def test_poison_message_ends_in_dlq_while_later_messages_flow_and_replays_once_fixed(
    sandbox: Sandbox,
) -> None:
    sb = sandbox
    sb.poison.add("O-poison")
    async with running(sb.bus()):
        poison = await sb.emit("O-poison")
        later = [await sb.emit(f"O-later-{i}") for i in range(3)]
        for event in later:
            await sb.wait_handled(event.id)

        async def dead_lettered() -> bool:
            return len(await list_dead_letters(sb.settings.amqp_url, sb.namespace, SERVICE)) == 1

        await eventually(dead_lettered, "the poison message in the DLQ", 15)
        attempts = [outcome for eid, outcome in sb.calls if eid == poison.id]
        assert attempts == ["failed"] * 3  # first try + event_max_retries (2) retries
        first_failure = sb.calls.index((poison.id, "failed"))
        last_failure = len(sb.calls) - 1 - sb.calls[::-1].index((poison.id, "failed"))
        later_done = [sb.calls.index((e.id, "ok")) for e in later]
        assert all(first_failure < i < last_failure for i in later_done), sb.calls  # not blocked by the retries

        [letter] = await list_dead_letters(sb.settings.amqp_url, sb.namespace, SERVICE)
        assert letter.event_id == poison.id and letter.type == EVENT
        assert letter.attempts == 3 and letter.error_kind == "handler"
        assert letter.error == "RuntimeError: cannot cancel order O-poison"
        assert letter.dead_lettered_at and letter.subject == "ACC-O-poison"
        assert await sb.handled(poison.id) == 0
        # Listing does not consume.
        assert len(await list_dead_letters(sb.settings.amqp_url, sb.namespace, SERVICE)) == 1

        sb.poison.clear()  # the handler is fixed
        replayed = await replay_dead_letters(sb.settings.amqp_url, sb.namespace, SERVICE, [poison.id])
        assert [d.event_id for d in replayed] == [poison.id]
        await sb.wait_handled(poison.id)
        assert await sb.handled(poison.id) == 1
        assert await list_dead_letters(sb.settings.amqp_url, sb.namespace, SERVICE) == []


# ---- (e) malformed messages ---------------------------------------------------------------------


async def test_malformed_messages_go_straight_to_the_dlq(sandbox: Sandbox) -> None:
    sb = sandbox
    async with running(sb.bus()):
        invalid = CloudEvent(id=str(uuid.uuid4()), source="/t", type=EVENT, data={"accession_number": "A"})
        await send_raw(sb, b"\x00\x01 definitely not json", message_id="garbage-1")
        await send_raw(sb, b'{"hello": "world"}', message_id="garbage-2")
        await send_raw(sb, invalid.to_json(), message_id=invalid.id)
        marker = await sb.emit("O-marker")
        await sb.wait_handled(marker.id)

        letters = await list_dead_letters(sb.settings.amqp_url, sb.namespace, SERVICE)
        by_id = {d.event_id: d for d in letters}
        assert set(by_id) == {"garbage-1", "garbage-2", invalid.id}
        assert by_id["garbage-1"].error_kind == "malformed" and "not JSON" in (by_id["garbage-1"].error or "")
        assert by_id["garbage-2"].error_kind == "malformed" and "CloudEvents" in (by_id["garbage-2"].error or "")
        assert by_id[invalid.id].error_kind == "invalid-data" and "order_id" in (by_id[invalid.id].error or "")
        assert all(d.attempts == 0 for d in letters)  # never retried: retrying cannot fix them
        assert [c for c in sb.calls if c[0] != marker.id] == []  # the handler never saw them

        # The operator's CLI lists and purges them (settings from the environment).
        env = {**os.environ, "IMAGING_NAMESPACE": sb.namespace, "AMQP_URL": sb.settings.amqp_url}
        listed = await _cli(env, "list", "--service", SERVICE, "--json")
        assert sorted(d["event_id"] for d in listed["data"]) == sorted(by_id)
        refused = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "imaging_common.events.deadletters", "purge", "--service", SERVICE, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await refused.communicate()
        assert refused.returncode == 2 and b"--all" in err
        purged = await _cli(env, "purge", "--service", SERVICE, "--event-id", "garbage-1", "--json")
        assert [d["event_id"] for d in purged["data"]] == ["garbage-1"]
        assert len(await purge_dead_letters(sb.settings.amqp_url, sb.namespace, SERVICE)) == 2
        assert await list_dead_letters(sb.settings.amqp_url, sb.namespace, SERVICE) == []


async def _cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "imaging_common.events.deadletters", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


# ---- (f) replicas -------------------------------------------------------------------------------


async def test_two_relays_on_one_outbox_publish_each_row_once(sandbox: Sandbox) -> None:
    sb = sandbox
    total = 200
    relays = [sb.bus(handlers={}, outbox_batch_size=20), sb.bus(handlers={}, outbox_batch_size=20)]
    async with running(relays[0]), running(relays[1]):

        async def producer(n: int) -> None:
            for i in range(total // 10):
                await sb.emit(f"O-{n}-{i}")

        await asyncio.gather(*(producer(n) for n in range(10)))

        async def all_published() -> bool:
            return await sb.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0

        await eventually(all_published, "every outbox row published", 30)
        published = [r.metrics.published.labels(SERVICE, EVENT)._value.get() for r in relays]
        assert sum(published) == total

    ids = [m.message_id for m in await drain(sb, "worklist")]
    assert len(ids) == total and len(set(ids)) == total


async def test_commit_wakes_the_relay_at_once_without_waiting_for_the_poll(sandbox: Sandbox) -> None:
    sb = sandbox
    async with running(sb.bus(outbox_poll_interval=60.0)) as bus:
        assert bus.relay is not None
        await eventually(lambda: bus.relay is not None and bus.relay._listen_conn is not None, "LISTEN", 5)
        started = time.monotonic()
        event = await sb.emit("O-notify")
        await sb.wait_handled(event.id, within=5)  # a 60 s poll would have timed this out
        assert time.monotonic() - started < 5


async def test_stop_returns_promptly_while_the_broker_is_unreachable(sandbox: Sandbox) -> None:
    """A pod told to stop during a broker outage must stop, not hang until it is killed."""
    sb = sandbox
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    try:
        bus = sb.bus(amqp_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/", amqp_reconnect_interval=0.5)
        await bus.start()
        await sb.emit("O-before-outage")
        await proxy.cut()
        await eventually(lambda: not bus.is_connected, "bus sees the outage", 10)
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(bus.stop(), 30)
        assert asyncio.get_running_loop().time() - started < 15
    finally:
        await proxy.close()


# ---- per-subject versions ---------------------------------------------------------------


async def _emit_versioned(sb: Sandbox, order_id: str, version: int) -> CloudEvent:
    async with sb.pool.acquire() as conn, conn.transaction():
        return await publish(conn, OrderCancelled(order_id=order_id, accession_number=f"ACC-{order_id}",
                                                  reason=f"v{version}", version=version),
                             source="/imaging/test", subject=f"ACC-{order_id}")


async def test_an_event_older_than_one_applied_is_stale_and_never_reaches_the_handler(sandbox: Sandbox) -> None:
    sb = sandbox
    bus = sb.bus()
    async with running(bus):
        newer = await _emit_versioned(sb, "O-v", 3)
        await sb.wait_handled(newer.id)
        older = await _emit_versioned(sb, "O-v", 2)
        same = await _emit_versioned(sb, "O-v", 3)  # the same snapshot under a new event id
        other = await _emit_versioned(sb, "O-w", 1)  # another subject is not held back
        await sb.wait_handled(other.id)

        async def both_stale() -> bool:
            return bool(bus.metrics.consumed.labels(SERVICE, EVENT, "stale")._value.get() == 2)

        await eventually(both_stale, "the older and the equal version acknowledged as stale", 15.0)
        assert await sb.handled(older.id) == 0 and await sb.handled(same.id) == 0
        assert await sb.pool.fetchval("SELECT version FROM subject_versions WHERE subject_key = 'order:O-v'") == 3


async def test_producer_versions_count_per_subject(sandbox: Sandbox) -> None:
    async with sandbox.pool.acquire() as conn, conn.transaction():
        got = [await versions.next_version(conn, key) for key in ("order:A", "order:A", "order:B", "order:A")]
    assert got == [1, 2, 1, 3]


async def test_a_patient_copy_takes_only_newer_snapshots_and_is_never_blanked(sandbox: Sandbox) -> None:
    known = {"name": "张三", "sex": "M", "phone": "13800000000", "birth_date": "1980-01-01"}
    async with sandbox.pool.acquire() as conn, conn.transaction():
        v5 = PatientRef(empi_id="E1", patient_id="P1", name="张三丰", sex="M", version=5)
        assert await versions.patient_is_current(conn, v5)
        v4 = PatientRef(empi_id="E1", patient_id="P1", name="张三", sex="U", version=4)
        assert not await versions.patient_is_current(conn, v4)
        unversioned = PatientRef(empi_id="E1", patient_id="P1", name="某人")
        assert not await versions.patient_is_current(conn, unversioned)
        assert await versions.patient_is_current(conn, v5)  # the same snapshot again is still current
    fields = ("name", "sex", "phone", "birth_date")
    newer = versions.merge_patient(known, v5.model_dump(mode="json", include=set(fields)), current=True)
    assert newer == {**known, "name": "张三丰"}  # phone and birth date absent from the payload: kept
    older = versions.merge_patient(known | {"phone": None}, {"name": "X", "sex": "U", "phone": "139"}, current=False)
    assert older == {**known, "phone": "139"}  # an old snapshot only fills the gap


class _FailingRelay(OutboxRelay):
    """A relay whose broker refuses one given event (a nack, a timeout)."""

    refuse: str = ""

    async def _publish_row(self, row: asyncpg.Record) -> None:
        if row["event_id"] == self.refuse:
            raise RuntimeError("broker nack")
        await super()._publish_row(row)


async def test_the_relay_stops_a_batch_at_the_first_failure(sandbox: Sandbox) -> None:
    sb = sandbox
    events = [await sb.emit(f"O-stop-{i}") for i in range(4)]
    connection = await aio_pika.connect(sb.settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_topology(channel, sb.namespace)
        relay = _FailingRelay(pool=sb.pool, database_url=sb.settings.database_url, schema=sb.schema,
                              exchange=exchange, app_id="test", metrics=EventMetrics("scheduling", CollectorRegistry()))
        relay.refuse = events[1].id
        with pytest.raises(RelayError, match="not confirmed"):
            await relay.relay_once()
        sent = {r["event_id"] for r in await sb.pool.fetch(
            "SELECT event_id FROM outbox WHERE published_at IS NOT NULL")}
        assert sent == {events[0].id}  # nothing after the refused row went out ahead of it
        relay.refuse = ""
        assert await relay.relay_once() == 3
    finally:
        await connection.close()
    ids = [m.message_id for m in await drain(sb, "worklist")]
    assert ids == [e.id for e in events]


async def test_prepare_leaves_out_a_merge_an_unmerge_overtook_and_freshens_late_patients(sandbox: Sandbox) -> None:
    """An unmerge's order.changed (restored patient, version 4) applied before the merge it undoes (version 3
    of that patient): the merge folds nobody in; a late order with the patient's old snapshot is freshened."""
    when = datetime(2026, 12, 7, tzinfo=UTC)
    restored = PatientRef(empi_id="E-B", patient_id="P-B", name="乙", sex="F", version=4)
    survivor = PatientRef(empi_id="E-A", patient_id="P-A", name="甲", sex="M", version=5)
    item = [ExamItem(code="CT-CHEST", name="胸部CT平扫", modality="CT")]

    def order(event: type[OrderCreated], acc: str, version: int, patient: PatientRef) -> OrderCreated:
        return event(order_id=f"O-{acc}", accession_number=acc, requested_procedure_id=acc,
                     study_instance_uid=f"2.25.{version}", patient=patient, items=item, ordered_at=when,
                     version=version)

    async with sandbox.pool.acquire() as conn, conn.transaction():
        assert await versions.prepare(conn, order(OrderChanged, "A1", 4, restored)) is not None
        merged = await versions.prepare(conn, PatientMerged(surviving=survivor, merged_empi_ids=["E-B"],
                                                            merged_patient_ids=["P-B"], merged_versions={"E-B": 3}))
        assert isinstance(merged, PatientMerged) and merged.merged_empi_ids == [] and merged.merged_patient_ids == []
        late = await versions.prepare(conn, order(OrderCreated, "A2", 1, restored.model_copy(
            update={"version": 2, "name": "乙旧", "phone": "13900000000"})))
        assert isinstance(late, OrderCreated)
        assert late.patient.name == "乙" and late.patient.version == 4 and late.patient.phone is None  # adds nothing
        assert await versions.prepare(conn, order(OrderChanged, "A1", 3, survivor)) is None  # stale
