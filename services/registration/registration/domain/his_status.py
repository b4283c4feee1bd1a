"""How an order's exam goes, and the order status updates the HIS is sent about its own orders.

Registration learns from the other services' events how each exam went (adapters/events.py):
appointment.booked / rescheduled -> scheduled, exam.started -> in-progress, exam.completed -> completed
or discontinued. The status only moves forward, scheduled < in-progress < discontinued < completed
(a later MPPS that completes an exam once discontinued wins; nothing goes back), so events that
arrive late or twice change nothing; a new appointment time while still scheduled is news too.

For an order the HIS placed (exam_order.source = 'his'), each step forward is queued, in the same
transaction, as an update with ORC-1 SC and ORC-5 SC / IP / DC / CM; an order cancelled at the
desk as ORC-1 OC (ORC-5 CA). After a cancel nothing more is sent. The message itself (an ORM^O01)
is the adapter's: the caller passes its `render` (adapters/hl7_status.render), and the queue keeps
the text it made. Messages are queued only while a HIS endpoint is configured (his_status_endpoint,
written at start from IMAGING_HIS_STATUS_HOST/PORT), and sent by adapters/his_status_worker.py in
order per order, each with its own MSH-10 on every attempt.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from imaging_common.delivery import backoff
from imaging_common.empi import store

RANK = {"scheduled": 1, "in-progress": 2, "discontinued": 3, "completed": 4}
ORC5 = {"scheduled": "SC", "in-progress": "IP", "discontinued": "DC", "completed": "CM"}


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    charset: str


@dataclass(frozen=True)
class StatusUpdate:
    """What the HIS is told about its order: the order control (SC, OC) and status (ORC-5), when, the
    appointment time (scheduled) or the reason (cancelled), about this order and patient, for `target`."""

    order: dict[str, Any]
    person: store.Person
    target: Endpoint
    control: str
    order_status: str
    at: datetime
    control_id: str
    start: datetime | None = None
    reason: str | None = None


Render = Callable[[StatusUpdate], str]
"""The message an update is sent as (adapters/hl7_status.render: ORM^O01 in ER7)."""


async def configure(conn: asyncpg.Connection, endpoint: Endpoint | None) -> None:
    """Where status updates go from now on (None: nowhere; nothing more is queued)."""
    if endpoint is None:
        await conn.execute("DELETE FROM his_status_endpoint")
        return
    await conn.execute(
        """INSERT INTO his_status_endpoint (id, host, port, sending_application, sending_facility,
                                            receiving_application, receiving_facility, charset)
           VALUES (1, $1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port,
               sending_application = EXCLUDED.sending_application, sending_facility = EXCLUDED.sending_facility,
               receiving_application = EXCLUDED.receiving_application,
               receiving_facility = EXCLUDED.receiving_facility, charset = EXCLUDED.charset, updated_at = now()""",
        endpoint.host, endpoint.port, endpoint.sending_application, endpoint.sending_facility,
        endpoint.receiving_application, endpoint.receiving_facility, endpoint.charset)


async def endpoint(conn: asyncpg.Connection) -> Endpoint | None:
    row = await conn.fetchrow("SELECT * FROM his_status_endpoint WHERE id = 1")
    return None if row is None else Endpoint(**{k: row[k] for k in Endpoint.__dataclass_fields__})


async def advance(conn: asyncpg.Connection, *, status: str, at: datetime, render: Render,
                  order_id: str | None = None, accession_number: str | None = None,
                  start: datetime | None = None) -> str:
    """The exam of this order reached `status` at `at` (an appointment's `start` when scheduled).
    Returns what happened: "unknown-order", "stale" (not a step forward), "recorded", or "queued"
    (recorded, and an update for the HIS queued)."""
    row = None
    if order_id and _is_uuid(order_id):
        row = await conn.fetchrow("SELECT order_id, status, source, exam_status, scheduled_start FROM exam_order "
                                  "WHERE order_id = $1::uuid FOR UPDATE", order_id)
    if row is None and accession_number:
        row = await conn.fetchrow("SELECT order_id, status, source, exam_status, scheduled_start FROM exam_order "
                                  "WHERE accession_number = $1 FOR UPDATE", accession_number)
    if row is None:
        return "unknown-order"
    now_rank, new_rank = RANK.get(row["exam_status"] or "", 0), RANK[status]
    new_time = status == "scheduled" and start is not None and start != row["scheduled_start"]
    if new_rank < now_rank or (new_rank == now_rank and not new_time):
        return "stale"
    await conn.execute(
        "UPDATE exam_order SET exam_status = $2, exam_status_at = $3, scheduled_start = COALESCE($4, scheduled_start) "
        "WHERE order_id = $1", row["order_id"], status, at, start)
    if row["source"] != "his" or row["status"] == "cancelled":
        return "recorded"
    queued = await enqueue(conn, str(row["order_id"]), control="SC", order_status=ORC5[status], at=at, start=start,
                           render=render)
    return "queued" if queued else "recorded"


async def cancelled_at_desk(conn: asyncpg.Connection, order_id: str, reason: str, render: Render) -> bool:
    """ORC-1 OC for a HIS order the desk cancelled (the HIS's own CA/DC is answered, not echoed)."""
    source = await conn.fetchval("SELECT source FROM exam_order WHERE order_id = $1::uuid", order_id)
    if source != "his":
        return False
    return await enqueue(conn, order_id, control="OC", order_status="CA", at=datetime.now(UTC), reason=reason,
                         render=render)


async def enqueue(conn: asyncpg.Connection, order_id: str, *, control: str, order_status: str, at: datetime,
                  render: Render, start: datetime | None = None, reason: str | None = None) -> bool:
    target = await endpoint(conn)
    if target is None:
        return False
    order = await conn.fetchrow("SELECT * FROM exam_order WHERE order_id = $1::uuid", order_id)
    person = await store.get_person(conn, order["empi_id"], follow_merged=True)
    control_id = f"S{uuid.uuid4().hex[:19]}"
    payload = render(StatusUpdate(dict(order), person, target, control=control, order_status=order_status, at=at,
                                  control_id=control_id, start=start, reason=reason))
    await conn.execute(
        "INSERT INTO his_status_message (order_id, order_control, order_status, control_id, payload) "
        "VALUES ($1::uuid, $2, $3, $4, $5)", order_id, control, order_status, control_id, payload)
    return True


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# ---- the queue (adapters/his_status_worker.py sends) -------------------------------------------


async def claim(conn: asyncpg.Connection, *, limit: int, lease_seconds: float) -> list[asyncpg.Record]:
    """Due messages, oldest first, at most one per order: the head of its line (a message waiting for
    its retry holds back the later ones of its order, never another order's)."""
    return await conn.fetch(
        """WITH due AS (
               SELECT m.id FROM his_status_message m
               WHERE m.next_attempt_at <= now()
                 AND (m.status = 'pending' OR (m.status = 'sending' AND m.lease_until < now()))
                 AND NOT EXISTS (SELECT 1 FROM his_status_message e WHERE e.order_id = m.order_id AND e.id < m.id
                                 AND e.status IN ('pending', 'sending'))
               ORDER BY m.id LIMIT $1 FOR UPDATE SKIP LOCKED)
           UPDATE his_status_message SET status = 'sending', attempts = attempts + 1,
                  lease_until = now() + make_interval(secs => $2)
           FROM due WHERE his_status_message.id = due.id
           RETURNING his_status_message.id, his_status_message.order_id, his_status_message.control_id,
                     his_status_message.payload, his_status_message.attempts""",
        limit, lease_seconds)


async def sent(conn: asyncpg.Connection, message_id: int, ack_code: str, ack: str) -> None:
    await conn.execute(
        "UPDATE his_status_message SET status = 'sent', sent_at = now(), ack_code = $2, ack = $3, last_error = NULL, "
        "lease_until = NULL WHERE id = $1", message_id, ack_code, ack[:4000])


async def refused(conn: asyncpg.Connection, message_id: int, ack_code: str, ack: str, error: str) -> None:
    """AR/CR: the HIS refuses the message as such; no retry can change that (kept for a person to read)."""
    await conn.execute(
        "UPDATE his_status_message SET status = 'refused', ack_code = $2, ack = $3, last_error = $4, "
        "lease_until = NULL WHERE id = $1", message_id, ack_code, ack[:4000], error[:2000])


async def retry_later(conn: asyncpg.Connection, message_id: int, error: str, *, attempts: int, base: float,
                      cap: float, ack_code: str | None = None, ack: str | None = None) -> float:
    """Back to pending after min(cap, base * 2^(attempts-1)) seconds; returns the delay."""
    delay = backoff(attempts, base=base, cap=cap)
    await conn.execute(
        "UPDATE his_status_message SET status = 'pending', last_error = $2, lease_until = NULL, "
        "next_attempt_at = now() + make_interval(secs => $3), ack_code = COALESCE($4, ack_code), "
        "ack = COALESCE($5, ack) WHERE id = $1", message_id, error[:2000], delay, ack_code,
        ack[:4000] if ack else None)
    return delay


async def release(conn: asyncpg.Connection, message_ids: list[int]) -> None:
    """Claimed but not tried (the HIS went away mid-batch): back in line, the attempt not counted."""
    if message_ids:
        await conn.execute("UPDATE his_status_message SET status = 'pending', attempts = attempts - 1, "
                           "lease_until = NULL WHERE id = ANY($1::bigint[]) AND status = 'sending'", message_ids)


async def listing(conn: asyncpg.Connection, order_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT id, order_control, order_status, control_id, status, attempts, last_error, "
                            "ack_code, enqueued_at, sent_at FROM his_status_message WHERE order_id = $1::uuid "
                            "ORDER BY id", order_id)
    return [dict(r) for r in rows]
