"""`EventBus`: a service's one handle on RabbitMQ — the outbox relay and the consumer together.

`service_context` builds one per service (`EventBus(settings=..., service=..., pool=...,
handlers=spec.event_handlers)`), awaits `start()` after migrating and `stop()` on the way out; readiness
reads `is_connected`. `start()` needs PostgreSQL only: a broker not there yet is connected to in the
background, with backoff, while the outbox keeps the events. The pool's search_path decides which
schema's outbox is relayed and which inbox is used; `service` names the queue consumed
(`topology.ServiceQueues`), whose bindings (the installed service's HANDLERS,
`topology.subscriptions()`) the handlers, keyed by event model, are checked against.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import asyncpg
from aio_pika.abc import AbstractRobustConnection
from prometheus_client import CollectorRegistry

from imaging_common.config import CommonSettings
from imaging_common.events.consumer import EventConsumer
from imaging_common.events.handlers import Handlers, by_type, event_types
from imaging_common.events.metrics import EventMetrics
from imaging_common.events.outbox import OutboxRelay
from imaging_common.events.queue_migration import SWEEP_EVERY, sweep
from imaging_common.events.topology import ServiceQueues, check_handlers, declare_topology

log = logging.getLogger(__name__)

CONNECT_BACKOFF_MAX = 30.0  # seconds between attempts to reach a broker never reached yet
STOP_SUPERVISOR_SECONDS = 5.0  # how long stop() waits for the connecting/sweeping task to end


def _where(url: str) -> str:
    """host:port of a URL, for the log (never its password)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5672}"


class EventBus:
    def __init__(
        self,
        *,
        settings: CommonSettings,
        service: str,
        pool: asyncpg.Pool,
        handlers: Handlers,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.service = service
        self.pool = pool
        self.handlers = dict(handlers)
        self.namespace: str = settings.namespace
        self.metrics = EventMetrics(service, registry)
        self.relay: OutboxRelay | None = None
        self.consumer: EventConsumer | None = None
        self._connection: AbstractRobustConnection | None = None
        self._depth_channel: Any = None  # a RobustChannel (its declare_queue takes robust=)
        self._depth_lock = asyncio.Lock()
        self._depth_read_at = float("-inf")
        self._schema = ""
        self._task: asyncio.Task[None] | None = None
        self.connect_attempts = 0  # since start(); the first connection is the background task's until made

    @property
    def is_connected(self) -> bool:
        """True while the AMQP connection is up (False while it is reconnecting)."""
        conn = self._connection
        return conn is not None and not conn.is_closed and conn.connected.is_set()

    async def start(self) -> None:
        """Check handlers and the outbox table, then connect to RabbitMQ: at once when it answers,
        otherwise in the background (`connect_attempts`), so a service starts without its broker.

        Until connected, events wait in the outbox and readiness reports RabbitMQ as degraded. Once
        connected: the topology is declared (and queues of the other type migrated, `queue_migration`),
        the relay ships the outbox, the consumer consumes; later outages are aio_pika's robust
        reconnection's business. Wrong handlers or a missing outbox raise: no broker fixes those.
        """
        if self.handlers:  # a publisher-only bus ({}) consumes nothing
            check_handlers(self.service, event_types(self.handlers))
        schema = await self.pool.fetchval("SELECT current_schema()")
        if schema is None or not await self.pool.fetchval("SELECT to_regclass('outbox') IS NOT NULL"):
            raise RuntimeError(
                f"service {self.service!r}: no outbox table in schema {schema!r}; "
                "apply the platform migrations first (imaging_common.db.migrate_service)"
            )
        self._schema = schema
        self.connect_attempts = 0
        connected = await self._connect()
        self._task = asyncio.create_task(self._supervise(connected), name=f"event-bus:{self.service}")

    async def _supervise(self, connected: bool) -> None:
        """Connect with backoff until the broker answers (a log line per attempt), then sweep queues of
        the other type now and then (an older version's pods may declare them again)."""
        delay = max(self.settings.amqp_reconnect_interval, 0.1)
        while not connected:
            await asyncio.sleep(delay)
            delay = min(delay * 2, CONNECT_BACKOFF_MAX)
            connected = await self._connect(next_in=delay)
        while True:
            await self._sweep()
            await asyncio.sleep(SWEEP_EVERY)

    async def _connect(self, next_in: float | None = None) -> bool:
        """One attempt: connect, declare, start relay and consumer. False (logged) when it failed."""
        s = self.settings
        self.connect_attempts += 1
        where = _where(s.amqp_url)
        try:
            connection = await aio_pika.connect_robust(
                s.amqp_url,
                timeout=5,
                reconnect_interval=str(s.amqp_reconnect_interval),
                client_properties={"connection_name": f"{self.namespace}.{self.service}"},
            )
        except Exception as exc:
            retry = next_in if next_in is not None else max(s.amqp_reconnect_interval, 0.1)
            log.warning("event bus %s: RabbitMQ at %s not reachable (attempt %d: %s: %s); events wait in the "
                        "outbox, next attempt in %.1f s", self.service, where, self.connect_attempts,
                        type(exc).__name__, exc, retry)
            return False
        self._connection = connection
        try:
            await self._open(connection)
        except Exception as exc:  # e.g. a queue declared with other arguments by hand: said, retried
            log.error("event bus %s: connected to %s but could not set up (attempt %d: %s: %s)", self.service,
                      where, self.connect_attempts, type(exc).__name__, exc)
            await self._close()
            return False
        log.info("event bus %s connected to RabbitMQ at %s (attempt %d; schema %s, %s queues, handlers %s)",
                 self.service, where, self.connect_attempts, self._schema, s.event_queue_type,
                 sorted(event_types(self.handlers)) or "none")
        return True

    async def _open(self, connection: AbstractRobustConnection) -> None:
        s = self.settings
        publish_channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_topology(publish_channel, self.namespace, s.event_queue_type)
        self.relay = OutboxRelay(
            pool=self.pool,
            database_url=s.database_url,
            schema=self._schema,
            exchange=exchange,
            app_id=self.service,
            metrics=self.metrics,
            batch_size=s.outbox_batch_size,
            poll_interval=s.outbox_poll_interval,
            retention_hours=s.outbox_retention_hours,
            inbox_retention_days=s.inbox_retention_days,
        )
        self.relay.start()
        if self.handlers:
            self.consumer = EventConsumer(
                service=self.service,
                namespace=self.namespace,
                pool=self.pool,
                handlers=by_type(self.handlers),
                metrics=self.metrics,
                max_retries=s.event_max_retries,
                retry_delay_ms=s.event_retry_delay_ms,
                prefetch=s.event_prefetch,
                queue_type=s.event_queue_type,
            )
            await self.consumer.start(await connection.channel(publisher_confirms=True))

    async def _sweep(self) -> None:
        if self.is_connected:
            await sweep(self.settings.amqp_url, self.namespace, self.settings.event_queue_type)

    async def refresh_queue_depth(self, *, max_age: float = 2.0, within: float = 1.0) -> None:
        """Read how many messages wait in this service's queues into `events_queue_depth`.

        Called when /metrics is scraped: three passive declares on a channel of its own, at most
        once per `max_age` seconds. Never raises: with the broker away the samples are removed
        (absent, not stale; /readyz says why) and the scrape goes on.
        """
        async with self._depth_lock:
            if time.monotonic() - self._depth_read_at < max_age:
                return
            self._depth_read_at = time.monotonic()
            own = ServiceQueues(self.namespace, self.service, self.settings.event_queue_type)
            queues = {"main": own.main, "retry": own.retry, "dlq": own.dlq}
            gauge = self.metrics.queue_depth
            try:
                depths = await asyncio.wait_for(self._read_depths(list(queues.values())), within)
            except Exception as exc:  # broker away or slow, queue missing: no figure rather than a wrong one
                log.debug("queue depth of %s not read: %s: %s", self.service, type(exc).__name__, exc)
                self._depth_channel = None  # a failed passive declare closes the channel; open another next time
                for label in queues:
                    with contextlib.suppress(KeyError):
                        gauge.remove(self.service, label)
                return
            for label, depth in zip(queues, depths, strict=True):
                gauge.labels(self.service, label).set(depth)

    async def _read_depths(self, names: list[str]) -> list[int]:
        if self._connection is None or not self.is_connected:
            raise ConnectionError("not connected")
        channel = self._depth_channel
        if channel is None or channel.is_closed:
            channel = self._depth_channel = await self._connection.channel(publisher_confirms=False)
        depths = []
        for name in names:
            # robust=False: a passive declare is a question, not something to redeclare on reconnect.
            queue = await channel.declare_queue(name, passive=True, robust=False)
            depths.append(int(queue.declaration_result.message_count or 0))
        return depths

    async def stop(self) -> None:
        """Stop connecting, stop consuming (finishing the message in hand), stop the relay, close.

        Each step is bounded: during a broker outage a channel or connection close waits for a
        broker that is not there, and a service told to stop must stop (the outbox and the broker's
        redelivery keep everything that was not finished).
        """
        if self._task is not None:
            # Bounded like every step here: cancelled in the middle of a queue sweep, aio_pika may wait for
            # an answer to a channel call that was abandoned (a stop once hung there for good).
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=STOP_SUPERVISOR_SECONDS)
            if not done:
                log.warning("event bus %s: the connecting/sweeping task took over %.0f s to stop; abandoned",
                            self.service, STOP_SUPERVISOR_SECONDS)
            self._task = None
        await self._close()

    async def _close(self) -> None:
        if self.consumer is not None:
            await self._bounded("stop consumer", self.consumer.stop(), 15)
            self.consumer = None
        if self.relay is not None:
            await self._bounded("stop relay", self.relay.stop(), 10)
            self.relay = None
        if self._connection is not None:
            await self._bounded("close connection", self._connection.close(), 5)
            self._connection = None
            self._depth_channel = None

    async def _bounded(self, what: str, step: Awaitable[Any], seconds: float) -> None:
        try:
            await asyncio.wait_for(step, seconds)
        except TimeoutError:
            log.warning("event bus %s: %s took over %.0f s; abandoned", self.service, what, seconds)
        except Exception:
            log.warning("event bus %s: %s failed", self.service, what, exc_info=True)
