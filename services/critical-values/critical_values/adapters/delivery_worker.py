"""The engine of the service, started as a listener: delivery workers and the timer scheduler.

Deliveries: each worker claims one due notification (FOR UPDATE SKIP LOCKED) and, holding it,
sends it over MLLP or FHIR REST; the outcome commits with the row, so a crash mid-send means the
row is sent again with the same identifier. Timers: polled from the `timer` table, fired in the
transaction that marks them, so nothing is held in memory and a restart loses nothing.
Work queued in this process wakes the loops at once; the poll covers other replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from imaging_common.delivery import DeliveryMetrics, RetryingWorker
from imaging_common.fhir.resources import validated
from imaging_common.hl7 import HL7Metrics, Message, MLLPClient, decode
from imaging_common.hl7.access import client_tls
from imaging_common.outbound import AllowList, guarded_client
from imaging_common.service import running

from critical_values.adapters import messages
from critical_values.domain import escalation, notifications
from critical_values.settings import fhir_tokens

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    pass


class Engine:
    def __init__(self, pool: asyncpg.Pool, settings: Any, *, hl7_metrics: HL7Metrics | None = None,
                 metrics: DeliveryMetrics | None = None) -> None:
        self.pool = pool
        self.s = settings
        self.hl7_metrics = hl7_metrics
        self.metrics = metrics
        self._deliveries: RetryingWorker | None = None
        self._timers: RetryingWorker | None = None
        self._mllp: dict[tuple[int, str, str, int], MLLPClient] = {}
        self._late: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self.allow = AllowList.from_settings(settings)
        self.tokens: dict[str, str] = {}
        self.fired_lateness: list[float] = []  # seconds late of each fired timer (benchmarks read it)

    def wake(self) -> None:
        for loop in (self._deliveries, self._timers):
            if loop is not None:
                loop.wake()

    async def start(self) -> None:
        # Only to allowed destinations, resolved and checked at each call; no redirects; no shared token.
        self.allow = AllowList.from_settings(self.s)
        self.tokens = fhir_tokens(self.s)
        self._http = guarded_client(self.allow, timeout=self.s.critical_delivery_timeout)
        workers = max(1, min(self.s.critical_delivery_workers, self.s.db_pool_max - 2))
        # The library's retrying loops: deliveries in `workers` loops, the timers in one.
        self._deliveries = RetryingWorker("critical-delivery", self.deliver_one, poll=self.s.critical_poll_seconds,
                                          workers=workers, metrics=self.metrics, closers=[self._close])
        self._timers = RetryingWorker("critical-timers", self._fire_round, poll=self.s.critical_poll_seconds)
        self._deliveries.start()
        self._timers.start()

    async def stop(self) -> None:
        if self._timers is not None:
            await self._timers.stop()
        if self._deliveries is not None:
            await self._deliveries.stop()

    async def _close(self) -> None:
        for late in list(self._late):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await late
        for client in self._mllp.values():
            await client.close()
        self._mllp.clear()
        if self._http is not None:
            await self._http.aclose()

    # ---- timers ----------------------------------------------------------------------------
    async def _fire_round(self, _worker: int) -> bool:
        fired = await self.fire_due()  # PostgreSQL away: the loop keeps polling, the timers wait in the table
        if fired:
            self.wake()
        return bool(fired)

    async def fire_due(self) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn, conn.transaction():
            fired = await escalation.fire_due(conn, datetime.now(UTC))
        for f in fired:
            self.fired_lateness.append(f["lateness"])
            log.info("timer %s of %s step %s fired %.3f s late", f["kind"], f["critical_id"], f["step"], f["lateness"])
        return fired

    # ---- deliveries ------------------------------------------------------------------------
    async def deliver_one(self, worker: int = 0) -> bool:
        """Send one due notification; False when none is due.

        Claimed and leased in one short transaction (next_attempt_at and sending_until moved past the
        send's longest time: other workers and replicas leave it alone, closing or re-routing the value
        lets it finish), sent with no transaction open, and its outcome recorded in another: a slow
        receiver never holds a row lock or a pooled transaction. A crash mid-send leaves the lease to
        run out: the row is sent again with the same identifier."""
        lease = timedelta(seconds=self.s.critical_delivery_timeout * 3 + 5)
        async with self.pool.acquire() as conn, conn.transaction():
            note = await notifications.claim_due(conn, datetime.now(UTC))
            if note is None:
                return False
            cv = await notifications.lease(conn, note, datetime.now(UTC) + lease)
        error = None
        remote_id = task_id = None
        try:
            if note["channel"] == "hl7":
                remote_id, task_id = await self._send_hl7(worker, cv, note), None
            else:
                remote_id, task_id = await self._send_fhir(cv, note)
        except (DeliveryError, OSError, httpx.HTTPError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("notification %s to %s failed: %s", note["notification_id"], note["receiver_id"], error)
        async with self.pool.acquire() as conn, conn.transaction():
            current = await notifications.lock_after_send(conn, note)
            if current is None:
                return True
            if current["status"] != "pending":
                return True  # a late ACK recorded it meanwhile
            if error is not None:
                spent = await notifications.failed_attempt(conn, current, at=datetime.now(UTC), error=error,
                                                           max_attempts=self.s.critical_delivery_max_attempts,
                                                           retry_seconds=self.s.critical_retry_seconds,
                                                           slow_retry_seconds=self.s.critical_slow_retry_seconds)
                outcome = "dead" if spent else "retry"  # spent: a phone task; slow retries go on
            else:
                await notifications.accepted(conn, current, at=datetime.now(UTC), remote_id=remote_id,
                                             task_id=task_id)
                outcome = "delivered"
        if self._deliveries is not None:
            self._deliveries.count(outcome)
        return True

    async def _send_hl7(self, worker: int, cv: asyncpg.Record, note: asyncpg.Record) -> str | None:
        receiver_id = note["receiver_id"]
        key = (worker, receiver_id, note["hl7_host"], int(note["hl7_port"]))
        client = self._mllp.get(key)
        if client is None:
            async def on_late_reply(reply: bytes) -> None:
                task = asyncio.create_task(self._late_ack(receiver_id, reply), name=f"critical-late-ack-{receiver_id}")
                self._late.add(task)
                task.add_done_callback(self._late.discard)

            client = self._mllp[key] = MLLPClient(note["hl7_host"], int(note["hl7_port"]),
                                                  timeout=self.s.critical_delivery_timeout, metrics=self.hl7_metrics,
                                                  on_late_reply=on_late_reply,
                                                  ssl=client_tls(self.s, note["hl7_host"], int(note["hl7_port"])),
                                                  resolve=self.allow.resolve)
        msg = messages.hl7_message(cv, note, message_type=note["hl7_message_type"],
                                   sending_app=self.s.critical_sending_app,
                                   sending_facility=self.s.critical_sending_facility,
                                   receiving_app=note["receiver_id"], at=datetime.now(UTC))
        reply_bytes = await asyncio.wait_for(client.send(msg.to_er7().encode("utf-8")),
                                             self.s.critical_delivery_timeout * 2)
        text, _ = decode(reply_bytes)
        reply = Message.parse(text)
        code, ref = reply.field("MSA", 1), reply.field("MSA", 2)
        if ref != note["notification_id"]:
            raise DeliveryError(f"ACK refers to {ref!r}, not {note['notification_id']!r}")
        if code not in ("AA", "CA"):
            raise DeliveryError(f"receiver answered {code}: {reply.field('MSA', 3) or reply.field('ERR', 8)}")
        return None

    async def _late_ack(self, receiver_id: str, reply_bytes: bytes) -> None:
        """An ACK that came after its send had timed out: it is that notification's ACK (matched by
        MSA-2, among what we sent this receiver). AA/CA = delivered, unless it was meanwhile."""
        try:
            text, _ = decode(reply_bytes)
            reply = Message.parse(text)
            code, ref = reply.field("MSA", 1), reply.field("MSA", 2)
            async with self.pool.acquire() as conn, conn.transaction():
                note = await notifications.lock_sent_hl7(conn, ref, receiver_id)
                if note is None or note["status"] != "pending":
                    return
                if code not in ("AA", "CA"):
                    log.info("late %s from %s for %s: the retry goes on", code, receiver_id, ref)
                    return
                await notifications.accepted(conn, note, at=datetime.now(UTC), late=True)
            log.info("notification %s delivered to %s by a late ACK", ref, receiver_id)
            self.wake()
        except Exception:
            log.exception("late ACK from %s could not be recorded", receiver_id)

    async def _send_fhir(self, cv: asyncpg.Record, note: asyncpg.Record) -> tuple[str | None, str | None]:
        assert self._http is not None
        base = note["fhir_base_url"].rstrip("/")
        ident = f"{messages.IDENTIFIER_SYSTEM}|{note['notification_id']}"
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
                   "If-None-Exist": f"identifier={ident}"}  # conditional create: a re-send is not a new resource
        token = self.tokens.get(note["receiver_id"])
        if token:  # this receiver's own credential (IMAGING_CRITICAL_FHIR_TOKENS), sent to it alone
            headers["Authorization"] = f"Bearer {token}"
        body = _r4b(messages.communication(cv, note, at=datetime.now(UTC)))
        r = await self._http.post(f"{base}/Communication", json=body, headers=headers)
        if r.status_code not in (200, 201):
            raise DeliveryError(f"FHIR Communication answered {r.status_code}: {r.text[:200]}")
        remote_id = _resource_id(r, "Communication")
        task_id = None
        if note["fhir_request"]:
            kind = note["fhir_request"]
            req = _r4b(messages.work_request(kind, cv, note, f"Communication/{remote_id or note['notification_id']}",
                                             at=datetime.now(UTC)))
            t = await self._http.post(f"{base}/{kind}", json=req, headers=headers)
            if t.status_code not in (200, 201):
                raise DeliveryError(f"FHIR {kind} answered {t.status_code}: {t.text[:200]}")
            task_id = _resource_id(t, kind)
        return remote_id, task_id


def _r4b(body: dict[str, Any]) -> dict[str, Any]:
    """The resource once fhir.resources' R4B model accepts it; a failed attempt (recorded, retried,
    dead at last) when not, so a resource we built wrong is never sent."""
    try:
        return validated(body)
    except ValueError as exc:  # pydantic's ValidationError
        raise DeliveryError(f"{body.get('resourceType')} is not valid FHIR R4: {exc}") from exc


def _resource_id(response: httpx.Response, kind: str) -> str | None:
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict) and body.get("id"):
            return str(body["id"])
    location = response.headers.get("location", "")
    if f"{kind}/" in location:
        return location.split(f"{kind}/", 1)[1].split("/")[0]
    return None


def engine_listener(ctx: Any) -> contextlib.AbstractAsyncContextManager[Engine]:
    engine = Engine(ctx.pool, ctx.settings, hl7_metrics=HL7Metrics(ctx.spec.name, ctx.registry),
                    metrics=DeliveryMetrics(ctx.spec.name, ctx.registry))
    return running(ctx, "engine", engine)
