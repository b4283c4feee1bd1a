"""Delivery of patient notifications through pluggable channels.

A channel is `async send(target, payload)`, registered by name in `NotificationSender.channels`.
"webhook" works out of the box (POST JSON to the target URL); an SMS gateway or WeChat template
message plugs in with `sender.register("sms", send_sms)`. A notification for a channel nobody
registered stays pending (and is logged), so plugging the channel in later delivers it.
Failed deliveries are retried with back-off, then marked failed; several replicas send side by
side (rows are claimed with SKIP LOCKED).
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from imaging_common.delivery import DeliveryMetrics, RetryingWorker, backoff
from imaging_common.outbound import DEVELOPMENT_DEFAULT, AllowList, guarded_client

from queue_calling.domain import notifications
from queue_calling.domain.notifications import Channel

log = logging.getLogger(__name__)


class WebhookChannel:
    """POST the notification as JSON; any 2xx is delivered, anything else is retried."""

    def __init__(self, timeout: float, allow: AllowList | None = None) -> None:
        # Only to destinations IMAGING_OUTBOUND_ALLOW names, resolved and checked at each call; no redirects.
        self.client = guarded_client(allow or AllowList.parse(DEVELOPMENT_DEFAULT), timeout=timeout)

    async def __call__(self, target: str, payload: dict[str, Any]) -> None:
        response = await self.client.post(target, json=payload, headers={"user-agent": "imaging-queue-calling"})
        if response.status_code // 100 != 2:
            raise RuntimeError(f"webhook {target} answered {response.status_code}")

    async def aclose(self) -> None:
        await self.client.aclose()


class NotificationSender:
    """The queue's channels on the library's retrying worker (claim, send, record, back off)."""

    def __init__(self, pool: asyncpg.Pool, *, max_attempts: int, webhook_timeout: float,
                 allow: AllowList | None = None, metrics: DeliveryMetrics | None = None) -> None:
        self.pool = pool
        self.max_attempts = max_attempts
        self.lease = timedelta(seconds=webhook_timeout * 3 + 5)
        self.webhook = WebhookChannel(webhook_timeout, allow)
        self.channels: dict[str, Channel] = {"webhook": self.webhook}
        self.loop = RetryingWorker("queue-notifications", self._round, poll=1.0, metrics=metrics,
                                   closers=[self.webhook.aclose])

    def register(self, name: str, channel: Channel) -> None:
        self.channels[name] = channel
        self.kick()

    def kick(self) -> None:
        self.loop.wake()

    async def start(self) -> None:
        self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    async def _round(self, _worker: int) -> int:
        return await self.send_due()

    async def send_due(self, limit: int = 50) -> int:
        """Deliver what is due; returns how many rows were handled.

        Claimed and leased in one short transaction, sent with no transaction open (a slow webhook holds
        no row lock or pooled transaction), each outcome recorded after. A crash mid-send leaves the
        lease to run out, and the row is sent again."""
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            due = [r for r in await notifications.claim_due(conn, limit=limit, now=now)]
            for row in due:
                plugged = row["channel"] in self.channels
                await notifications.lease(conn, row["notification_id"],
                                          now + (self.lease if plugged else timedelta(minutes=1)))
                if not plugged:
                    # Not plugged in on this replica: leave it for later, don't spin on it.
                    log.warning("no %s channel registered; notification %s waits", row["channel"],
                                row["notification_id"])
        handled = 0
        for row in due:
            channel = self.channels.get(row["channel"])
            if channel is None:
                continue
            error = None
            try:
                await channel(row["target"], json.loads(row["payload"]))
            except Exception as exc:
                error = str(exc) or type(exc).__name__
            at = datetime.now(UTC)
            async with self.pool.acquire() as conn:
                if error is not None:
                    attempts = row["attempts"] + 1
                    retry_at = None if attempts >= self.max_attempts else \
                        at + timedelta(seconds=backoff(attempts, base=2.0, cap=math.inf))  # 2, 4, 8 ... s
                    await notifications.mark_failed(conn, row["notification_id"], error, at, retry_at=retry_at)
                    self.loop.count("retry" if retry_at else "dead")
                else:
                    await notifications.mark_sent(conn, row["notification_id"], at)
                    self.loop.count("delivered")
            handled += 1
        return handled
