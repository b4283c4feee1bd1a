"""Delivery of patient notifications through pluggable channels.

A channel is `async send(target, payload)`, registered by name in `NotificationSender.channels`.
"webhook" works out of the box (POST JSON to the target URL); an SMS gateway or WeChat template
message plugs in with `sender.register("sms", send_sms)`. A notification for a channel nobody
registered stays pending (and is logged), so plugging the channel in later delivers it.
Failed deliveries are retried with back-off, then marked failed; several replicas send side by
side (rows are claimed with SKIP LOCKED).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
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
    def __init__(self, pool: asyncpg.Pool, *, max_attempts: int, webhook_timeout: float,
                 allow: AllowList | None = None) -> None:
        self.pool = pool
        self.max_attempts = max_attempts
        self.lease = timedelta(seconds=webhook_timeout * 3 + 5)
        self.webhook = WebhookChannel(webhook_timeout, allow)
        self.channels: dict[str, Channel] = {"webhook": self.webhook}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def register(self, name: str, channel: Channel) -> None:
        self.channels[name] = channel
        self.kick()

    def kick(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.webhook.aclose()

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.send_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification sender failed; retrying")
                sent = 0
            if not sent:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                self._wake.clear()

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
                await conn.execute("UPDATE notification SET next_attempt_at = $2 WHERE notification_id = $1",
                                   row["notification_id"], now + (self.lease if plugged else timedelta(minutes=1)))
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
                    retry_at = None if attempts >= self.max_attempts else at + timedelta(seconds=2 ** attempts)
                    await notifications.mark_failed(conn, row["notification_id"], error, at, retry_at=retry_at)
                else:
                    await notifications.mark_sent(conn, row["notification_id"], at)
            handled += 1
        return handled
