"""Sends the queued messages through the SMS provider, on the library's retrying worker.

Each message: claimed with a lease, sent with no transaction open, its outcome recorded. A claimed
message is sent and recorded even when the service is stopping (shielded from the stop's
cancellation), so a restart never sends it twice nor leaves it leased; only a crash between the
provider taking a message and its record leaves the lease to run out and the message to go again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from imaging_common.delivery import DeliveryMetrics, RetryingWorker, backoff
from imaging_common.service import ServiceContext, running

from patient_portal.adapters.sms import SmsFailed, SmsProvider
from patient_portal.domain import messages
from patient_portal.settings import Settings

log = logging.getLogger(__name__)
QUEUE = "patient-messages"


class MessageSender:
    def __init__(self, pool: asyncpg.Pool, provider: SmsProvider, settings: Settings,
                 metrics: DeliveryMetrics | None = None) -> None:
        self.pool = pool
        self.provider = provider
        self.settings = settings
        self.lease = timedelta(seconds=settings.patient_smpp_timeout * 3 + 5)
        self.loop = RetryingWorker(QUEUE, self._round, poll=settings.patient_message_poll_seconds, metrics=metrics)

    async def start(self) -> None:
        await self.loop.listen(self.settings.database_url, "patient_portal_messages", "due")
        self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    async def _round(self, _worker: int) -> int:
        # Claiming and sending are one unit the stop waits for: a row claimed is sent and recorded (or
        # released by its outcome) before the service stops, never left leased by a cancelled round.
        work = asyncio.ensure_future(self._claim_and_send())
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            await work
            raise

    async def _claim_and_send(self) -> int:
        # One message per claim: a stop leaves no other row leased (held back until its lease ran out).
        async with self.pool.acquire() as conn:
            due = await messages.claim(conn, now=datetime.now(UTC), lease=self.lease, limit=1)
        for message in due:
            await self._send(message)
        return len(due)

    async def _send(self, message: dict[str, Any]) -> None:
        s = self.settings
        try:
            receipt = await self.provider(message["phone"], message["body"])
        except SmsFailed as exc:
            again = exc.retryable and message["attempts"] < s.patient_message_max_attempts
            delay = backoff(message["attempts"], base=s.patient_message_retry_seconds, cap=3600, jitter=0.2)
            retry_at = datetime.now(UTC) + timedelta(seconds=delay) if again else None
            async with self.pool.acquire() as conn:
                await messages.not_sent(conn, message["message_id"], error=str(exc), retry_at=retry_at)
            self.loop.count("retry" if again else "dead")
            log.warning("message %s not sent (%s): %s", message["message_id"], "retry" if again else "failed", exc)
            return
        async with self.pool.acquire() as conn:
            await messages.sent(conn, message["message_id"], provider_message_id=receipt, now=datetime.now(UTC))
        self.loop.count("delivered")


@contextlib.asynccontextmanager
async def message_sender(ctx: ServiceContext[Settings]) -> AsyncIterator[MessageSender]:
    """Listener (after sms_channel): the sender of the queued messages."""
    sender = MessageSender(ctx.pool, ctx.extras["sms"], ctx.settings, DeliveryMetrics(ctx.spec.name, ctx.registry))
    async with running(ctx, "messages", sender) as started:
        yield started
