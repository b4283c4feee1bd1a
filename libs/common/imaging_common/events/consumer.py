"""Consumer: applies each event from the service's queue once, retrying failures, never dropping one.

For each message on the service's queue (`<ns>.<service>.quorum`, or `<ns>.<service>` when classic: `topology`):
  1. read the CloudEvents envelope; a body that is not one goes straight to the DLQ;
  2. data that does not validate against its type's model goes straight to the DLQ too
     (retrying cannot fix it);
  3. in ONE transaction: insert the event id into `inbox` (already there = a redelivery: skip),
     claim the event's per-subject versions (not newer than what was applied = "stale": skip, see
     `versions`) and call the handler of the event's model, `handler(conn, data, event)`, through the
     wrapper that parses and checks its data (`handlers.typed`); commit, then ack;
  4. a handler that raises: the message is re-sent to the service's retry queue, where it waits
     `event_retry_delay_ms` and flows back into the queue, carrying its failure count; after
     `event_max_retries` failures it goes to the service's DLQ with headers naming the error.
     The original is acked once the copy is confirmed, so later messages keep flowing.
Messages are handled one at a time per replica, in queue order (prefetch only saves round trips).
Across replicas, retries and re-sends nothing keeps that order: the versions do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, ConsumerTag

from imaging_common.events import versions
from imaging_common.events.envelope import CONTENT_TYPE, CloudEvent, EventError, MalformedEvent, parse_data
from imaging_common.events.handlers import Delivery
from imaging_common.events.metrics import EventMetrics
from imaging_common.events.topology import (
    DEAD_LETTERED_AT_HEADER,
    ERROR_HEADER,
    ERROR_KIND_HEADER,
    RETRIES_HEADER,
    QueueType,
    ServiceQueues,
)
from imaging_common.events.types import EventData
from imaging_common.observability import bind_correlation_id
from imaging_common.waiting import woken

log = logging.getLogger(__name__)

SERVICE_HEADER = "x-imaging-service"
STOP_GRACE = 10.0  # seconds stop() waits for the message being handled
_DROPPED_HEADERS = ("x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
                    "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason")


class HandlerFailed(Exception):
    """The service's handler raised (or its transaction failed to commit)."""


def header_str(value: Any) -> str | None:
    """AMQP string headers may arrive as bytes."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def header_int(value: Any) -> int:
    try:
        return int(header_str(value) or 0)
    except ValueError:
        return 0


def copy_message(
    message: AbstractIncomingMessage, headers: Mapping[str, Any], *, drop: tuple[str, ...] = (), **overrides: Any
) -> aio_pika.Message:
    """A persistent copy of a received message with new headers (the body is never touched)."""
    dropped = _DROPPED_HEADERS + drop
    kept = {k: v for k, v in (message.headers or {}).items() if k not in dropped}
    kept.update(headers)
    params: dict[str, Any] = {
        "body": message.body,
        "headers": kept,
        "content_type": message.content_type or CONTENT_TYPE,
        "delivery_mode": aio_pika.DeliveryMode.PERSISTENT,
        "message_id": message.message_id,
        "type": message.type,
        "timestamp": message.timestamp,
        "app_id": message.app_id,
    }
    params.update(overrides)
    return aio_pika.Message(**params)


class EventConsumer:
    """Consumes the service's queue with the given handlers (event type -> `handlers.by_type`'s wrapper
    of the model's handler); one instance per EventBus."""

    def __init__(
        self,
        *,
        service: str,
        namespace: str,
        pool: asyncpg.Pool,
        handlers: Mapping[str, Delivery],
        metrics: EventMetrics,
        max_retries: int = 5,
        retry_delay_ms: int = 5000,
        prefetch: int = 32,
        queue_type: QueueType = "quorum",
    ) -> None:
        self.service = service
        self.namespace = namespace
        self.queues = ServiceQueues(namespace, service, queue_type)
        self.pool = pool
        self.handlers = dict(handlers)
        self._ignored_types: set[str] = set()  # event types received without a handler, warned about once
        self.metrics = metrics
        self.max_retries = max_retries
        self.retry_delay_ms = retry_delay_ms
        self.prefetch = prefetch
        self._lock = asyncio.Lock()  # one message at a time, in delivery order
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: ConsumerTag | None = None
        self._infra_backoff = 0.0
        self._running = False
        self._stopping = asyncio.Event()  # cuts an outage pause short on stop

    async def start(self, channel: AbstractChannel) -> None:
        self._channel = channel
        await channel.set_qos(prefetch_count=self.prefetch)
        # Same arguments as declare_topology; declared here too so a robust channel restores it.
        self._queue = await self.queues.declare(channel, "main")
        self._running = True
        self._stopping.clear()
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self) -> None:
        self._running = False
        self._stopping.set()
        if self._queue is not None and self._tag is not None:
            # Bounded: while the broker is unreachable a robust channel waits for it to return.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._queue.cancel(self._tag), 2)
        try:  # let the message in hand finish (a handler stuck longer than this is abandoned: redelivered)
            await asyncio.wait_for(self._lock.acquire(), STOP_GRACE)
            self._lock.release()
        except TimeoutError:
            log.warning("consumer %s stopped with a message still in hand; it will be redelivered", self.service)
        self._tag = None

    # ---- one message -----------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with self._lock:
            if not self._running:  # stopping: leave it to be redelivered
                with contextlib.suppress(Exception):
                    await message.nack(requeue=True)
                return
            try:
                await self._process(message)
                self._infra_backoff = 0.0
            except Exception as exc:
                # PostgreSQL or RabbitMQ trouble, not the message's fault: put it back and slow
                # down, so an outage neither burns the retries nor spins.
                self._infra_backoff = min(max(self._infra_backoff * 2, 0.2), 10.0)
                log.warning(
                    "event %s not processed (%s: %s); requeued, pausing %.1fs",
                    message.message_id, type(exc).__name__, exc, self._infra_backoff,
                )
                with contextlib.suppress(Exception):
                    await message.nack(requeue=True)
                await woken(self._stopping, self._infra_backoff)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        try:
            event = CloudEvent.from_json(message.body)
        except MalformedEvent as exc:
            await self._dead_letter(message, kind="malformed", error=str(exc), event_type="(malformed)")
            await message.ack()
            return
        handler = self.handlers.get(event.type)
        if handler is None:
            # Subscribed but not (yet) handled by this version of the service: nothing to apply, but
            # never in silence (events_consumed_total{outcome="ignored"}, and a warning per type).
            self.metrics.consumed.labels(self.service, event.type, "ignored").inc()
            if event.type not in self._ignored_types:
                self._ignored_types.add(event.type)
                log.warning("%s receives %s events but has no handler for them: acknowledged unapplied "
                            "(first: %s)", self.service, event.type, event.id)
            await message.ack()
            return
        try:
            data = parse_data(event)
        except EventError as exc:
            await self._dead_letter(message, kind="invalid-data", error=str(exc), event_type=event.type)
            await message.ack()
            return

        bind_correlation_id(event.correlationid or event.id)
        try:
            outcome = await self._apply(event, data, handler)
        except HandlerFailed as failure:
            cause = failure.__cause__ or failure
            error = f"{type(cause).__name__}: {cause}"
            retries = header_int((message.headers or {}).get(RETRIES_HEADER)) + 1
            if retries <= self.max_retries:
                log.warning("event %s (%s) failed, retry %d/%d: %s", event.id, event.type, retries,
                            self.max_retries, error)
                await self._retry(message, retries=retries, error=error)
                self.metrics.retried.labels(self.service, event.type).inc()
            else:
                log.error("event %s (%s) failed %d times, dead-lettered: %s", event.id, event.type, retries, error)
                await self._dead_letter(message, kind="handler", error=error, event_type=event.type,
                                        retries=retries)
            await message.ack()
            return
        else:
            # One line per event applied, so a correlation id shows every service it reached.
            log.log(logging.DEBUG if outcome == "duplicate" else logging.INFO, "%s: %s %s %s from %s",
                    self.service, event.type, event.subject or "-", outcome, event.source,
                    extra={"service": self.service, "event_type": event.type, "event_id": event.id})
        finally:
            bind_correlation_id(None)
        self.metrics.consumed.labels(self.service, event.type, outcome).inc()
        await message.ack()

    async def _apply(self, event: CloudEvent, data: EventData, handler: Delivery) -> str:
        """Record the event id and run the handler in one transaction; "applied", "duplicate" or "stale"."""
        async with self.pool.acquire() as conn:
            in_handler = False
            try:
                async with conn.transaction():
                    inserted = await conn.fetchval(
                        "INSERT INTO inbox (event_id, type, source) VALUES ($1, $2, $3) "
                        "ON CONFLICT (event_id) DO NOTHING RETURNING true",
                        event.id, event.type, event.source,
                    )
                    if not inserted:
                        return "duplicate"
                    fresh = await versions.prepare(conn, data)
                    if fresh is None:
                        return "stale"  # an older snapshot than one applied: its id stays in the inbox
                    if fresh is not data:  # the handler reads what is news, with the newest patients known
                        event = event.model_copy(update={"data": fresh.model_dump(mode="json")})
                    in_handler = True
                    await handler(conn, event)
            except Exception as exc:
                if in_handler:  # the handler, or the commit of what it did
                    raise HandlerFailed(str(exc)) from exc
                raise
        return "applied"

    async def _retry(self, message: AbstractIncomingMessage, *, retries: int, error: str) -> None:
        assert self._channel is not None
        copy = copy_message(
            message, {RETRIES_HEADER: retries, ERROR_HEADER: error[:1000]}, expiration=self.retry_delay_ms / 1000
        )
        await self._channel.default_exchange.publish(
            copy, routing_key=self.queues.retry, mandatory=False
        )

    async def _dead_letter(
        self, message: AbstractIncomingMessage, *, kind: str, error: str, event_type: str, retries: int | None = None
    ) -> None:
        assert self._channel is not None
        if kind != "handler":
            log.error("message %s dead-lettered (%s): %s", message.message_id, kind, error)
        headers: dict[str, Any] = {
            ERROR_HEADER: error[:1000],
            ERROR_KIND_HEADER: kind,
            DEAD_LETTERED_AT_HEADER: datetime.now(UTC).isoformat(),
            SERVICE_HEADER: self.service,
        }
        if retries is not None:
            headers[RETRIES_HEADER] = retries
        await self._channel.default_exchange.publish(
            copy_message(message, headers), routing_key=self.queues.dlq,
            mandatory=False,
        )
        self.metrics.dead_lettered.labels(self.service, event_type, kind).inc()
