"""The delivery queue: report versions to HL7 and FHIR receivers, in order, until acknowledged.

Rows are written in the transaction that signs (or amends, withdraws) the report, so a report is
never signed without its deliveries queued, nor queued without being signed. The worker
(adapters/delivery_worker.py) claims due rows with a lease (`sending` until `lease_until`; an
expired lease is claimable again, so a crashed worker loses nothing), sends them, and records
the outcome: `delivered`, or back to `pending` with exponential backoff, or after the last
attempt (or a reject that no retry can fix) `dead` — listed by the API, re-queued by hand.
Per report and receiver only the oldest unfinished row is claimable, so P, F, C and W arrive in
the order they happened.

What a row carries is written by the adapters (an ORU^R01 in adapters/hl7_oru.py, a FHIR
transaction Bundle in adapters/fhir_report.py): messages for the outside world are not the
domain's, so each adapter hands its writer to `use_writer` when the service starts (on_ready).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from imaging_common.delivery import backoff
from imaging_common.outbound import AllowList


@dataclass(frozen=True)
class Receiver:
    id: str
    kind: str  # hl7, fhir
    name: str
    host: str | None
    port: int | None
    url: str | None
    charset: str
    receiving_application: str
    receiving_facility: str
    enabled: bool

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Receiver:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


Writer = Callable[[dict[str, Any], Receiver], str]
"""The payload of one report snapshot (reports.snapshot) for one receiver."""

_writers: dict[str, Writer] = {}


def use_writer(kind: str, write: Writer) -> None:
    """How report versions are written for receivers of `kind` ("hl7", "fhir")."""
    _writers[kind] = write


class NoWriter(RuntimeError):
    """A receiver's kind has no writer: the service started without its adapters' on_ready hooks."""


async def receivers(conn: asyncpg.Connection, *, enabled_only: bool = True) -> list[Receiver]:
    rows = await conn.fetch("SELECT * FROM receiver" + (" WHERE enabled" if enabled_only else "") + " ORDER BY id")
    return [Receiver.from_row(r) for r in rows]


def check_destination(allow: AllowList, data: dict[str, Any]) -> None:
    """DestinationRefused unless the receiver's host or URL is on the outbound allow-list."""
    if data.get("kind") == "hl7":
        allow.check_host(data.get("host"))
    else:
        allow.check_url(data.get("url"))


async def upsert_receiver(conn: asyncpg.Connection, data: dict[str, Any]) -> Receiver:
    row = await conn.fetchrow(
        """INSERT INTO receiver (id, kind, name, host, port, url, charset, receiving_application,
                                 receiving_facility, enabled)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, host = EXCLUDED.host,
               port = EXCLUDED.port, url = EXCLUDED.url, charset = EXCLUDED.charset,
               receiving_application = EXCLUDED.receiving_application,
               receiving_facility = EXCLUDED.receiving_facility, enabled = EXCLUDED.enabled
           RETURNING *""",
        data["id"], data["kind"], data["name"], data.get("host"), data.get("port"), data.get("url"),
        data.get("charset") or "utf-8", data.get("receiving_application") or "HIS",
        data.get("receiving_facility") or "HOSPITAL", data.get("enabled", True))
    return Receiver.from_row(row)


async def enqueue(conn: asyncpg.Connection, snap: dict[str, Any]) -> int:
    """Queue this report version for every enabled receiver; returns the number of rows."""
    targets = await receivers(conn)
    if not targets:
        return 0
    bundle_json: str | None = None  # one Bundle for every FHIR receiver: it names none of them
    rows: list[tuple[Any, ...]] = []
    for receiver in targets:
        kind = receiver.kind if receiver.kind == "hl7" else "fhir"
        write = _writers.get(kind)
        if write is None:
            raise NoWriter(f"no writer for {kind} receivers (reporting's adapters register them on ready)")
        if kind == "hl7":
            payload = write(snap, receiver)
        else:
            if bundle_json is None:
                bundle_json = write(snap, receiver)
            payload = bundle_json
        rows.append((receiver.id, payload))
    # One statement for all receivers: one round trip, one NOTIFY.
    await conn.execute(
        "INSERT INTO delivery (report_id, version, receiver_id, result_status, payload) "
        "SELECT $1, $2, r, $3, p FROM unnest($4::text[], $5::text[]) AS t(r, p)",
        snap["report_id"], snap["version"], snap["result_status"], [r for r, _ in rows], [p for _, p in rows])
    return len(rows)


async def claim(conn: asyncpg.Connection, receiver_id: str, *, limit: int,
                lease_seconds: float) -> list[asyncpg.Record]:
    """Due rows of one receiver, oldest first, at most one per report (the head of its line)."""
    return await conn.fetch(
        """WITH due AS (
               SELECT d.id FROM delivery d
               WHERE d.receiver_id = $1 AND d.next_attempt_at <= now()
                 AND (d.status = 'pending' OR (d.status = 'sending' AND d.lease_until < now()))
                 AND NOT EXISTS (SELECT 1 FROM delivery e WHERE e.report_id = d.report_id
                                 AND e.receiver_id = d.receiver_id AND e.id < d.id
                                 AND e.status IN ('pending', 'sending'))
               ORDER BY d.id LIMIT $2 FOR UPDATE SKIP LOCKED)
           UPDATE delivery SET status = 'sending', attempts = attempts + 1,
                  lease_until = now() + make_interval(secs => $3)
           FROM due WHERE delivery.id = due.id
           RETURNING delivery.id, delivery.report_id, delivery.version, delivery.result_status, delivery.payload,
                     delivery.attempts""",
        receiver_id, limit, lease_seconds)


async def delivered(conn: asyncpg.Connection, delivery_id: int, ack: str) -> None:
    await conn.execute(
        "UPDATE delivery SET status = 'delivered', delivered_at = now(), ack = $2, last_error = NULL, "
        "lease_until = NULL WHERE id = $1", delivery_id, ack[:2000])


async def delivered_many(conn: asyncpg.Connection, done: list[tuple[int, str]]) -> None:
    """Mark a batch delivered in one statement (ids with their acknowledgements)."""
    await conn.execute(
        "UPDATE delivery SET status = 'delivered', delivered_at = now(), ack = t.ack, last_error = NULL, "
        "lease_until = NULL FROM unnest($1::bigint[], $2::text[]) AS t(id, ack) WHERE delivery.id = t.id",
        [i for i, _ in done], [a[:2000] for _, a in done])


async def failed(conn: asyncpg.Connection, delivery_id: int, error: str, *, attempts: int, max_attempts: int,
                 base: float, cap: float, permanent: bool = False) -> str:
    """Back to pending with backoff, or dead; returns the new status."""
    dead = permanent or attempts >= max_attempts
    delay = backoff(attempts, base=base, cap=cap)
    status = "dead" if dead else "pending"
    await conn.execute(
        "UPDATE delivery SET status = $2, last_error = $3, lease_until = NULL, "
        "next_attempt_at = now() + make_interval(secs => $4) WHERE id = $1",
        delivery_id, status, error[:2000], delay)
    return status


async def requeue(conn: asyncpg.Connection, delivery_id: int) -> bool:
    """A dead delivery back in line (after the receiver was fixed)."""
    done = await conn.execute(
        "UPDATE delivery SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_until = NULL "
        "WHERE id = $1 AND status = 'dead'", delivery_id)
    if done.endswith(" 1"):
        await conn.execute("SELECT pg_notify('reporting_delivery', current_schema())")
        return True
    return False


async def listing(conn: asyncpg.Connection, *, status: str | None = None, report_id: str | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, report_id, version, receiver_id, result_status, status, attempts, next_attempt_at,
                  last_error, enqueued_at, delivered_at, ack
           FROM delivery WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR report_id = $2)
           ORDER BY id DESC LIMIT $3""", status, report_id, limit)
    return [dict(r) for r in rows]


def fhir_payload(payload: str) -> dict[str, Any]:
    return json.loads(payload)


async def counts_by_status(conn: asyncpg.Connection) -> dict[str, int]:
    return dict(await conn.fetch("SELECT status, count(*) FROM delivery GROUP BY status"))
