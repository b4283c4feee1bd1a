"""Sends the queued order status updates (domain/his_status.py) to the HIS over MLLP.

Started as a `ServiceSpec.listeners` entry. At start it records where updates go
(IMAGING_HIS_STATUS_HOST/PORT; unset: nowhere, nothing is queued and nothing runs). It wakes on the
queue's NOTIFY or every poll interval, claims the due head of each order's line with a lease (no
transaction is open while it sends; a crashed worker's lease expires and another takes the message),
and sends them one at a time on one persistent MLLP connection (TLS when the destination is listed in
IMAGING_MLLP_CLIENT_TLS_DESTINATIONS). The answer's MSA-2 must name the message: AA/CA is sent, AR/CR
refused for good (recorded with the answer), AE/CE, no answer or no connection retried with backoff
(IMAGING_HIS_STATUS_RETRY_BASE doubling up to IMAGING_HIS_STATUS_RETRY_MAX), for as long as it takes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from imaging_common.delivery import DeliveryMetrics, RetryingWorker
from imaging_common.hl7 import HL7Metrics, Message, MLLPClient
from imaging_common.hl7.access import client_tls
from imaging_common.hl7.charset import decode
from imaging_common.service import ServiceContext, running

from registration.domain import his_status
from registration.domain.his_status import Endpoint
from registration.settings import Settings

log = logging.getLogger(__name__)
NOTIFY_CHANNEL = "registration_his_status"


class HisStatusWorker:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, target: Endpoint, database_url: str, schema: str, *,
                 metrics: HL7Metrics | None = None, deliveries: DeliveryMetrics | None = None):
        self.pool = pool
        self.settings = settings
        self.target = target
        self.database_url = database_url
        self.schema = schema
        self.client = MLLPClient(target.host, target.port, timeout=settings.his_status_timeout, metrics=metrics,
                                 ssl=client_tls(settings, target.host, target.port))
        # The library's retrying loop: a batch at a time while there is work, then NOTIFY or the poll.
        self.loop = RetryingWorker("registration-his-status", self._round, poll=settings.his_status_poll,
                                   metrics=deliveries, closers=[self._close])

    async def start(self) -> None:
        await self.loop.listen(self.database_url, NOTIFY_CHANNEL, self.schema)
        self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    async def _close(self) -> None:
        await self.client.close()

    def wake(self) -> None:
        self.loop.wake()

    async def _round(self, _worker: int) -> bool:
        return await self.drain_once()

    async def drain_once(self) -> bool:
        """Claim and send one batch; True when another batch may be due at once."""
        settings = self.settings
        async with self.pool.acquire() as conn:
            rows = await his_status.claim(conn, limit=settings.his_status_batch,
                                          lease_seconds=settings.his_status_timeout * 3 + 5)
        if not rows:
            return False
        progressed = False
        for n, row in enumerate(rows):
            outcome, code, answer, error = await self._send(row)
            async with self.pool.acquire() as conn:
                if outcome == "sent":
                    await his_status.sent(conn, row["id"], code, answer)
                    self.loop.count("delivered")
                    progressed = True
                elif outcome == "refused":
                    await his_status.refused(conn, row["id"], code, answer, error)
                    self.loop.count("dead")
                    log.warning("HIS refused status update %s (order %s): %s", row["control_id"], row["order_id"],
                                error)
                    progressed = True
                else:
                    delay = await his_status.retry_later(
                        conn, row["id"], error, attempts=row["attempts"], base=settings.his_status_retry_base,
                        cap=settings.his_status_retry_max, ack_code=code or None, ack=answer or None)
                    self.loop.count("retry")
                    log.warning("status update %s (order %s) to the HIS failed, retry in %.0f s: %s",
                                row["control_id"], row["order_id"], delay, error)
                    if not code:  # no answer at all: the HIS is away; the rest of the batch waits its turn
                        await his_status.release(conn, [r["id"] for r in rows[n + 1:]])
                        return False
        return progressed and len(rows) >= settings.his_status_batch

    async def _send(self, row: asyncpg.Record) -> tuple[str, str, str, str]:
        """(outcome sent | refused | retry, MSA-1, the answer, why not)."""
        charset = self.target.charset
        try:
            payload = row["payload"].encode(charset, errors="strict")
        except (UnicodeEncodeError, LookupError) as exc:
            return "refused", "", "", f"cannot encode the message as {charset}: {exc}"
        try:
            raw = await self.client.send(payload)
        except (OSError, TimeoutError, ConnectionError) as exc:
            await self.client.close()
            return "retry", "", "", f"{type(exc).__name__}: {exc}"
        try:
            text, _ = decode(raw, charset)
            ack = Message.parse(text)
        except Exception as exc:
            return "retry", "", "", f"unreadable answer: {exc}"
        code, answered = ack.field("MSA", 1), ack.field("MSA", 2)
        if answered != row["control_id"]:
            return "retry", "", text.strip(), f"answer for another message (MSA-2 {answered!r})"
        if code in ("AA", "CA"):
            return "sent", code, text.strip(), ""
        detail = ack.field("ERR", 8) or ack.field("MSA", 3) or ack.field("ERR", 3, component=2) or "no reason given"
        return ("refused" if code in ("AR", "CR") else "retry"), code, text.strip(), f"{code}: {detail}"


def configured_endpoint(settings: Settings) -> Endpoint | None:
    if not settings.his_status_host or not settings.his_status_port:
        return None
    return Endpoint(host=settings.his_status_host, port=settings.his_status_port,
                    sending_application=settings.hl7_application, sending_facility=settings.hl7_facility,
                    receiving_application=settings.his_status_application,
                    receiving_facility=settings.his_status_facility, charset=settings.his_status_charset)


@contextlib.asynccontextmanager
async def his_status_listener(ctx: ServiceContext[Settings]) -> AsyncIterator[HisStatusWorker | None]:
    """ServiceSpec listener: record where status updates go, and send them for the app's life."""
    settings = ctx.settings
    target = configured_endpoint(settings)
    async with ctx.pool.acquire() as conn:
        await his_status.configure(conn, target)
    if target is None:
        yield None
        return
    worker = HisStatusWorker(ctx.pool, settings, target, settings.database_url, ctx.spec.schema,
                             metrics=HL7Metrics(ctx.spec.name, ctx.registry),
                             deliveries=DeliveryMetrics(ctx.spec.name, ctx.registry))
    async with running(ctx, "his_status_worker", worker):
        yield worker
