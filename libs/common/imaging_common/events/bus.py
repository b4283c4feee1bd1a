"""`EventBus`: a service's one handle on RabbitMQ — the outbox relay and the consumer together.

`service_context` builds one per service (`EventBus(settings=..., service=..., pool=...,
handlers=spec.event_handlers)`), awaits `start()` after migrating and `stop()` on the way out; readiness
reads `is_connected`. The pool's search_path decides which schema's outbox is relayed and which inbox
is used; `service` names the queue consumed (`<ns>.<service>`), whose bindings (the installed service's
HANDLERS, `topology.subscriptions()`) the handlers, keyed by event model, are checked against.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractRobustConnection
from prometheus_client import CollectorRegistry

from imaging_common.config import CommonSettings
from imaging_common.events.consumer import EventConsumer
from imaging_common.events.handlers import Handlers, by_type, event_types
from imaging_common.events.metrics import EventMetrics
from imaging_common.events.outbox import OutboxRelay
from imaging_common.events.topology import (
    check_handlers,
    dead_letter_queue_name,
    declare_topology,
    queue_name,
    retry_queue_name,
)

log = logging.getLogger(__name__)


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

    @property
    def is_connected(self) -> bool:
        """True while the AMQP connection is up (False while it is reconnecting)."""
        conn = self._connection
        return conn is not None and not conn.is_closed and conn.connected.is_set()

    async def start(self) -> None:
        """Check handlers, connect, declare the topology, start the relay and (if any handlers) the consumer."""
        if self.handlers:  # a publisher-only bus ({}) consumes nothing
            check_handlers(self.service, event_types(self.handlers))
        schema = await self.pool.fetchval("SELECT current_schema()")
        if schema is None or not await self.pool.fetchval("SELECT to_regclass('outbox') IS NOT NULL"):
            raise RuntimeError(
                f"service {self.service!r}: no outbox table in schema {schema!r}; "
                "apply the platform migrations first (imaging_common.db.migrate_service)"
            )
        s = self.settings
        self._connection = await aio_pika.connect_robust(
            s.amqp_url,
            timeout=5,
            reconnect_interval=str(s.amqp_reconnect_interval),
            client_properties={"connection_name": f"{self.namespace}.{self.service}"},
        )
        try:
            publish_channel = await self._connection.channel(publisher_confirms=True)
            exchange = await declare_topology(publish_channel, self.namespace)
            self.relay = OutboxRelay(
                pool=self.pool,
                database_url=s.database_url,
                schema=schema,
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
                )
                await self.consumer.start(await self._connection.channel(publisher_confirms=True))
        except BaseException:
            await self.stop()
            raise
        log.info("event bus %s started (schema %s, handlers %s)", self.service, schema,
                 sorted(event_types(self.handlers)) or "none")

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
            queues = {"main": queue_name(self.namespace, self.service),
                      "retry": retry_queue_name(self.namespace, self.service),
                      "dlq": dead_letter_queue_name(self.namespace, self.service)}
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
        """Stop consuming (finishing the message in hand), stop the relay, close the connection.

        Each step is bounded: during a broker outage a channel or connection close waits for a
        broker that is not there, and a service told to stop must stop (the outbox and the broker's
        redelivery keep everything that was not finished).
        """
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
