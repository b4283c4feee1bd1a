"""The delivery worker: drains the delivery queue to HL7 receivers (MLLP) and FHIR endpoints (HTTP).

Started as a `ServiceSpec.listeners` entry. It wakes on the queue's NOTIFY (or every poll
interval), and per enabled receiver claims due rows and sends them: HL7 one at a time on a
persistent MLLP connection (MLLP has no multiplexing; order per receiver is kept), FHIR
concurrently (each is an idempotent PUT of the same resource ids). An HL7 AA/CA is delivered,
AE is retried with backoff, AR (the receiver refuses the message as such) goes dead at once;
a FHIR 2xx is delivered, 4xx other than 408/409/429 is dead at once, anything else is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from imaging_common.delivery import DeliveryMetrics, RetryingWorker
from imaging_common.hl7 import HL7Metrics, Message, MLLPClient
from imaging_common.hl7.access import client_tls
from imaging_common.hl7.charset import decode
from imaging_common.outbound import AllowList, DestinationRefused, guarded_client
from imaging_common.service import ServiceContext

from reporting.domain import deliveries
from reporting.domain.deliveries import Receiver
from reporting.settings import Settings, fhir_tokens

log = logging.getLogger(__name__)
NOTIFY_CHANNEL = "reporting_delivery"
_RETRYABLE_HTTP = {408, 409, 429}


class DeliveryWorker:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, database_url: str, schema: str, *,
                 hl7_metrics: HL7Metrics | None = None, metrics: DeliveryMetrics | None = None):
        self.pool = pool
        self.hl7_metrics = hl7_metrics
        self.settings = settings
        self.database_url = database_url
        self.schema = schema
        # The library's loop runs the rounds; this worker adds the per-receiver lanes and the senders.
        self.loop = RetryingWorker("reporting-delivery", self._round, poll=settings.reporting_delivery_poll,
                                   metrics=metrics, closers=[self._close])
        self._mllp: dict[str, MLLPClient] = {}
        self._http: httpx.AsyncClient | None = None
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()  # receivers woken while their lane was busy
        self.allow = AllowList.from_settings(settings)
        self.tokens = fhir_tokens(settings)

    async def start(self) -> None:
        # Only to allowed destinations, resolved and checked at each call; no redirects.
        self._http = guarded_client(self.allow, timeout=self.settings.reporting_delivery_timeout,
                                    limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))
        await self.loop.listen(self.database_url, NOTIFY_CHANNEL, self.schema)
        self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    async def _close(self) -> None:
        for lane in self._lanes.values():
            lane.cancel()
        for lane in self._lanes.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await lane
        for client in self._mllp.values():
            await client.close()
        if self._http is not None:
            await self._http.aclose()

    def wake(self) -> None:
        self.loop.wake()

    async def _round(self, _worker: int) -> int:
        async with self.pool.acquire() as conn:
            targets = await deliveries.receivers(conn)
        for receiver in targets:
            lane = self._lanes.get(receiver.id)
            if lane is None or lane.done():
                # One lane per receiver: a slow or dead receiver never holds up another.
                self._lanes[receiver.id] = asyncio.create_task(self._drain(receiver))
            else:
                self._again.add(receiver.id)
        return 0  # the lanes drain on their own; the loop waits for the next wake or poll

    async def _drain(self, receiver: Receiver) -> None:
        """Send everything due for this receiver, round after round, until nothing is claimable."""
        while True:
            async with self.pool.acquire() as conn:
                rows = await deliveries.claim(conn, receiver.id, limit=self.settings.reporting_delivery_batch,
                                              lease_seconds=self.settings.reporting_delivery_timeout * 3 + 5)
            if not rows:
                if receiver.id in self._again:  # new rows were announced while we were busy
                    self._again.discard(receiver.id)
                    continue
                return
            if receiver.kind == "hl7":
                outcomes = [await self._send_hl7(receiver, row) for row in rows]
            else:
                outcomes = list(await asyncio.gather(*(self._send_fhir(receiver, row) for row in rows)))
            async with self.pool.acquire() as conn, conn.transaction():  # one commit for the batch
                done = [(row["id"], info) for row, (ok, info, _) in zip(rows, outcomes, strict=True) if ok]
                if done:
                    await deliveries.delivered_many(conn, done)
                    self.loop.count("delivered", len(done))
                for row, (ok, info, permanent) in zip(rows, outcomes, strict=True):
                    if not ok:
                        status = await deliveries.failed(
                            conn, row["id"], info, attempts=row["attempts"],
                            max_attempts=self.settings.reporting_delivery_max_attempts,
                            base=self.settings.reporting_delivery_retry_base,
                            cap=self.settings.reporting_delivery_retry_max, permanent=permanent)
                        self.loop.count("dead" if status == "dead" else "retry")
                        log.warning("delivery %s of report %s to %s failed (%s): %s", row["id"], row["report_id"],
                                    receiver.id, status, info)
            if any(not ok for ok, _, _ in outcomes):
                return  # failed rows wait for their backoff; the next poll picks up the rest

    async def _send_hl7(self, receiver: Receiver, row: asyncpg.Record) -> tuple[bool, str, bool]:
        client = self._mllp.get(receiver.id)
        if client is None or (client.host, client.port) != (receiver.host, receiver.port):
            host, port = receiver.host or "127.0.0.1", receiver.port or 2575
            client = self._mllp[receiver.id] = MLLPClient(host, port, timeout=self.settings.reporting_delivery_timeout,
                                                          metrics=self.hl7_metrics,
                                                          ssl=client_tls(self.settings, host, port),
                                                          resolve=self.allow.resolve)
        try:
            payload = row["payload"].encode(receiver.charset, errors="strict")
        except (UnicodeEncodeError, LookupError) as exc:
            return False, f"cannot encode the message as {receiver.charset}: {exc}", True
        try:
            raw = await client.send(payload)
        except (OSError, TimeoutError, ConnectionError) as exc:
            await client.close()
            return False, f"{type(exc).__name__}: {exc}", False
        try:
            text, _ = decode(raw, receiver.charset)
            ack = Message.parse(text)
        except Exception as exc:
            return False, f"unreadable acknowledgement: {exc}", False
        code = ack.field("MSA", 1)
        sent_control_id = Message.parse(row["payload"]).control_id
        if ack.field("MSA", 2) and ack.field("MSA", 2) != sent_control_id:
            return False, f"ACK for another message ({ack.field('MSA', 2)} != {sent_control_id})", False
        if code in ("AA", "CA"):
            return True, text.strip(), False
        detail = ack.field("ERR", 8) or ack.field("MSA", 3) or ack.field("ERR", 3, component=2)
        return False, f"{code}: {detail}", code in ("AR", "CR")

    async def _send_fhir(self, receiver: Receiver, row: asyncpg.Record) -> tuple[bool, str, bool]:
        assert self._http is not None
        base = (receiver.url or "").rstrip("/")
        try:
            headers = {"Content-Type": "application/fhir+json; charset=utf-8", "Accept": "application/fhir+json"}
            token = self.tokens.get(receiver.id)
            if token:  # this receiver's own credential (IMAGING_REPORTING_FHIR_TOKENS), sent to it alone
                headers["Authorization"] = f"Bearer {token}"
            response = await self._http.post(base + "/", content=row["payload"].encode(), headers=headers)
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}", False
        if 200 <= response.status_code < 300:
            return True, f"HTTP {response.status_code}", False
        permanent = 400 <= response.status_code < 500 and response.status_code not in _RETRYABLE_HTTP
        return False, f"HTTP {response.status_code}: {response.text[:500]}", permanent


@contextlib.asynccontextmanager
async def delivery_listener(ctx: ServiceContext[Settings]) -> AsyncIterator[Any]:
    """ServiceSpec listener: seed configured receivers, then run the worker for the app's life."""
    settings = ctx.settings
    import json

    configured = json.loads(settings.reporting_receivers or "[]")
    if configured:
        allow = AllowList.from_settings(settings)
        for receiver in configured:  # a receiver the allow-list does not name stops the start, named
            try:
                deliveries.check_destination(allow, receiver)
            except DestinationRefused as exc:
                raise RuntimeError(f"IMAGING_REPORTING_RECEIVERS: receiver {receiver.get('id')!r}: {exc}") from None
        async with ctx.pool.acquire() as conn:
            for receiver in configured:
                await deliveries.upsert_receiver(conn, receiver)
    if not settings.reporting_delivery_enabled:
        yield None
        return
    worker = DeliveryWorker(ctx.pool, settings, settings.database_url, ctx.spec.schema,
                            hl7_metrics=HL7Metrics(ctx.spec.name, ctx.registry),
                            metrics=DeliveryMetrics(ctx.spec.name, ctx.registry))
    await worker.start()
    ctx.extras["delivery_worker"] = worker
    try:
        yield worker
    finally:
        await worker.stop()
