"""Transactional outbox: `publish()` writes an event beside the state change; a relay ships it.

The producer never talks to RabbitMQ inside its transaction. `publish(conn, model, ...)` inserts
the envelope into the service's `outbox` table; when the transaction commits, a trigger NOTIFYs
and the `OutboxRelay` publishes the new rows in order, each confirmed before the next, stamping
`published_at` only after the broker confirmed. A rollback publishes nothing; a broker that is
away only delays delivery (rows wait; the relay retries with backoff). Several replicas may run
a relay on one schema: a transaction-scoped advisory lock lets one publish at a time, which also
keeps the order. Delivery is at-least-once (a confirm lost in a crash means a re-publish), which
the consumers' inbox turns into exactly-once effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from datetime import UTC, datetime

import aio_pika
import asyncpg
from aio_pika.abc import AbstractExchange

from imaging_common.events.envelope import CONTENT_TYPE, CloudEvent
from imaging_common.events.metrics import EventMetrics
from imaging_common.events.types import EventData
from imaging_common.waiting import woken

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "imaging_outbox"  # payload: the schema whose outbox got rows (see 0001_outbox_inbox.sql)
PUBLISH_TIMEOUT = 10.0  # seconds to wait for one broker confirm before calling the broker away
CLEANUP_EVERY = 600.0  # seconds between deletions of old published rows and inbox ids


async def publish(
    conn: asyncpg.Connection, model: EventData, *, source: str, subject: str | None = None
) -> CloudEvent:
    """Queue `model` for publication in the caller's open transaction; returns the envelope.

    `source` names the producer (e.g. "/imaging/registration"), `subject` what the event is about
    (e.g. the accession number). The model's class must be registered in `types.EVENT_MODELS`.
    """
    event = CloudEvent.from_data(model, source=source, subject=subject)  # raises for an unregistered model
    if not conn.is_in_transaction():
        raise RuntimeError(
            "publish() must run inside the transaction that makes the change it announces "
            "(async with conn.transaction(): ...)"
        )
    await conn.execute(
        "INSERT INTO outbox (event_id, type, envelope) VALUES ($1, $2, $3::jsonb)",
        event.id, event.type, event.to_json().decode(),
    )
    return event


def _relay_lock_key(schema: str) -> int:
    return int.from_bytes(hashlib.sha256(f"outbox-relay:{schema}".encode()).digest()[:8], "big", signed=True)


class RelayError(RuntimeError):
    """The broker did not confirm an outbox row; it stays unpublished and is retried."""


class OutboxRelay:
    """Publishes one schema's outbox to the topic exchange; run one per service replica."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        database_url: str,
        schema: str,
        exchange: AbstractExchange,
        app_id: str,
        metrics: EventMetrics,
        batch_size: int = 100,
        poll_interval: float = 2.0,
        retention_hours: int = 168,
        inbox_retention_days: int = 30,
    ) -> None:
        self.pool = pool
        self.database_url = database_url
        self.schema = schema
        self.exchange = exchange
        self.app_id = app_id
        self.metrics = metrics
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention_hours = retention_hours
        self.inbox_retention_days = inbox_retention_days
        self._lock_key = _relay_lock_key(schema)
        self._wake = asyncio.Event()
        self._listen_conn: asyncpg.Connection | None = None
        self._next_listen_attempt = 0.0
        self._next_cleanup = 0.0
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay:{self.schema}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._listen_conn is not None:
            with contextlib.suppress(Exception):
                await self._listen_conn.close(timeout=2)
            self._listen_conn = None

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            await self._ensure_listening()
            try:
                published = await self.relay_once()
                backoff = 0.0
                await self._cleanup_if_due()
                if published:
                    continue  # more may be waiting; go again before sleeping
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database away: keep the rows, back off, retry
                backoff = min(max(backoff * 2, 0.1), 5.0)
                log.warning("outbox relay %s: %s: %s; retrying in %.1fs", self.schema, type(exc).__name__, exc, backoff)
                await asyncio.sleep(backoff)
                continue
            await woken(self._wake, self.poll_interval)

    # ---- publishing ------------------------------------------------------------------------

    async def relay_once(self) -> int:
        """Publish up to one batch of unpublished rows in order; returns how many were confirmed."""
        self._wake.clear()  # a NOTIFY from here on wakes the next round
        failure: tuple[int, BaseException] | None = None
        published: list[int] = []
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                # One relay per schema at a time (replicas skip, not wait): keeps the order and
                # guarantees no row is published twice by two relays.
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_key):
                    return 0
                rows = await conn.fetch(
                    "SELECT seq, event_id, type, envelope::text AS body FROM outbox "
                    "WHERE published_at IS NULL ORDER BY seq LIMIT $1",
                    self.batch_size,
                )
                # One at a time, each confirmed before the next is sent, stopping at the first that
                # fails: a later row never reaches the broker before an earlier one of this schema.
                for row in rows:
                    try:
                        await self._publish_row(row)
                    except Exception as exc:
                        failure = (row["seq"], exc)
                        break
                    published.append(row["seq"])  # confirmed: on the broker, so never publish it again
                    self.metrics.published.labels(self.metrics.service, row["type"]).inc()
                if published:
                    await conn.execute(
                        "UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])", published
                    )
                if failure is not None:
                    await conn.execute(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE seq = $1",
                        failure[0], f"{type(failure[1]).__name__}: {failure[1]}"[:1000],
                    )
            backlog = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            self.metrics.outbox_backlog.labels(self.metrics.service).set(backlog)
        if failure is not None:
            seq, cause = failure
            raise RelayError(f"outbox row {seq} not confirmed: {type(cause).__name__}: {cause}") from cause
        return len(published)

    async def _publish_row(self, row: asyncpg.Record) -> None:
        message = aio_pika.Message(
            body=row["body"].encode(),
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=row["event_id"],
            type=row["type"],
            timestamp=datetime.now(UTC),
            app_id=self.app_id,
        )
        # mandatory=False: a type nobody subscribes to (yet) is not an error.
        await self.exchange.publish(message, routing_key=row["type"], mandatory=False, timeout=PUBLISH_TIMEOUT)

    # ---- wake-ups and housekeeping ---------------------------------------------------------

    async def _ensure_listening(self) -> None:
        """Keep a LISTEN connection; without one the relay still works, at poll latency."""
        if self._listen_conn is not None and not self._listen_conn.is_closed():
            return
        now = time.monotonic()
        if now < self._next_listen_attempt:
            return
        self._next_listen_attempt = now + max(self.poll_interval, 1.0)
        try:
            conn = await asyncpg.connect(self.database_url, timeout=5)
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            self._listen_conn = conn
        except Exception as exc:
            log.warning(
                "outbox relay %s: cannot LISTEN (%s); polling every %.1fs", self.schema, exc, self.poll_interval
            )

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == self.schema:
            self._wake.set()

    async def _cleanup_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + CLEANUP_EVERY
        async with self.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM outbox WHERE published_at < now() - make_interval(hours => $1)", self.retention_hours
            )
            await conn.execute(
                "DELETE FROM inbox WHERE received_at < now() - make_interval(days => $1)", self.inbox_retention_days
            )
