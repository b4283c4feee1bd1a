"""Check-in (smart-imaging standard 6.3 (1)-(2), 6.2.2 (1)).

The desk or kiosk scans the application-form barcode, ID card, hospital card or appointment number;
each matching exam of today becomes "arrived" and gets an entry in the queue its placement rules pick
by exam item, preparation (injection, anaesthesia), device (booked room) and technologist.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from queue_calling.domain import entries, exams, priority
from queue_calling.domain.errors import Conflict, Invalid, NotFound
from queue_calling.domain.scope import Change, lock_scope
from queue_calling.domain.states import Action, State

PREPARATIONS = ("none", "injection", "anaesthesia")


@dataclass(frozen=True)
class CheckInRules:
    early_minutes: float = 60  # how long before the appointment a patient may check in
    late_minutes: float = 240  # after the slot, still accepted (front desk decides) within this
    on_time_grace_minutes: float = 15  # arriving this close to the slot still counts as on time
    timezone: str = "Asia/Shanghai"  # the center's day: ticket numbers restart at local midnight


@dataclass
class Arrival:
    entry: dict[str, Any]
    exam: dict[str, Any]


@dataclass
class CheckInResult:
    arrivals: list[Arrival] = field(default_factory=list)
    change: Change = field(default_factory=Change)


async def place(conn: asyncpg.Connection, exam: asyncpg.Record, *, preparation: str,
                technologist: str | None) -> str:
    """The queue for an exam: the first placement rule (by rank) whose set fields all match."""
    queue_id = await conn.fetchval(
        """SELECT queue_id FROM placement_rule
           WHERE (modality IS NULL OR modality = $1)
             AND (exam_code_prefix IS NULL OR starts_with($2, exam_code_prefix))
             AND (preparation IS NULL OR preparation = $3)
             AND (room_id IS NULL OR room_id = $4)
             AND (technologist IS NULL OR technologist = $5)
           ORDER BY rank, rule_id LIMIT 1""",
        exam["modality"], exam["exam_code"], preparation, exam["room_id"], technologist,
    )
    if queue_id is None:
        raise Conflict(f"no queue takes {exam['modality']} exam {exam['exam_code']} ({preparation}); "
                       "add a placement rule")
    return str(queue_id)


async def _next_ticket(conn: asyncpg.Connection, queue_id: str, prefix: str, today: Any) -> str:
    number = await conn.fetchval(
        """INSERT INTO ticket_counter (queue_id, day, last_number) VALUES ($1, $2, 1)
           ON CONFLICT (queue_id, day) DO UPDATE SET last_number = ticket_counter.last_number + 1
           RETURNING last_number""",
        queue_id, today,
    )
    return f"{prefix}{number:03d}"


async def check_in(
    conn: asyncpg.Connection, *, kind: str, value: str, actor: str, terminal: str | None = None,
    preparation: str | None = None, technologist: str | None = None, categories: Sequence[str] = (),
    accession_numbers: Sequence[str] = (), now: datetime, rules: CheckInRules = CheckInRules(),
) -> CheckInResult:
    """Check in every active exam the identifier matches (or those of `accession_numbers` among them)."""
    if kind not in exams.IDENTIFIER_KINDS:
        raise Invalid(f"identifier kind must be one of {', '.join(exams.IDENTIFIER_KINDS)}")
    if preparation is not None and preparation not in PREPARATIONS:
        raise Invalid(f"preparation must be one of {', '.join(PREPARATIONS)}")
    unknown = [c for c in categories if c not in priority.CATEGORIES]
    if unknown:
        raise Invalid(f"unknown categories {unknown}; known: {', '.join(priority.CATEGORIES)}")
    found = await exams.find_exams(conn, kind=kind, value=value)
    if accession_numbers:
        found = [e for e in found if e["accession_number"] in set(accession_numbers)]
    if not found:
        done = [e["accession_number"] for e in await exams.find_exams(conn, kind=kind, value=value, status="performed")
                if not accession_numbers or e["accession_number"] in set(accession_numbers)]
        if done:
            raise Conflict(f"exam {', '.join(done)} was already performed: it is not checked in again")
        raise NotFound(f"no active exam matches this {kind}")
    if len({e["empi_id"] for e in found}) > 1:
        raise Conflict(f"this {kind} matches several patients; scan the application form barcode instead")
    # Only exams due today (or walk-ins without appointment) are checked in.
    due: list[asyncpg.Record] = []
    refusals: list[str] = []
    for e in found:
        start = e["appointment_start"] if e["appointment_status"] == "booked" else None
        if start is not None:
            if now < start - timedelta(minutes=rules.early_minutes):
                refusals.append(f"{e['accession_number']}: too early, check-in opens "
                                f"{rules.early_minutes:g} min before {start.isoformat()}")
                continue
            if now > (e["appointment_end"] or start) + timedelta(minutes=rules.late_minutes):
                refusals.append(f"{e['accession_number']}: appointment at {start.isoformat()} has passed; reschedule")
                continue
        due.append(e)
    if not due:
        raise Conflict("; ".join(refusals) or "nothing to check in")

    today = now.astimezone(ZoneInfo(rules.timezone)).date()
    placements = []
    for e in due:
        prep = preparation or ("injection" if e["contrast"] else "none")
        placements.append((e, prep, await place(conn, e, preparation=prep, technologist=technologist)))
    result = CheckInResult()
    await lock_scope(conn, queue_ids={q for _, _, q in placements}, change=result.change)
    queues = {r["queue_id"]: r for r in await conn.fetch(
        "SELECT * FROM queue WHERE queue_id = ANY($1::text[])", [q for _, _, q in placements])}
    for e, prep, queue_id in placements:
        live = await conn.fetchrow(
            "SELECT entry_id, ticket, state FROM queue_entry WHERE accession_number = $1 "
            "AND state NOT IN ('done', 'cancelled')", e["accession_number"])
        if live is not None:
            raise Conflict(f"exam {e['accession_number']} is already checked in as {live['ticket']} ({live['state']})")
        q = queues[queue_id]
        policy = priority.effective_policy(json.loads(q["policy"]))
        special = json.loads(e["special"]) if isinstance(e["special"], str) else dict(e["special"] or {})
        age = priority.age_on(e["birth_date"], today)
        cats = priority.categories_of(patient_class=e["patient_class"], priority=e["priority"], special=special,
                                      age=age, declared=categories, policy=policy)
        start = e["appointment_start"] if e["appointment_status"] == "booked" else None
        on_time = exams.in_slot(start, e["appointment_end"], now, rules.on_time_grace_minutes)
        ticket = await _next_ticket(conn, queue_id, q["ticket_prefix"], today)
        entry_id = uuid.uuid4()
        row = await conn.fetchrow(
            """INSERT INTO queue_entry (entry_id, queue_id, ticket, state, accession_number, order_id, appointment_id,
                   appointment_start, empi_id, patient_id, patient_name, sex, age, exam_name, modality, preparation,
                   technologist, priority_level, priority_reasons, special, on_time, sort_key, arrived_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
                       $20::jsonb, $21, extract(epoch FROM clock_timestamp()), $22)
               RETURNING *""",
            entry_id, queue_id, ticket, str(State.WAITING), e["accession_number"], e["order_id"],
            e["appointment_id"] if start else None, start, e["empi_id"], e["patient_id"], e["patient_name"],
            e["sex"], age, e["exam_name"], e["modality"], prep, technologist, priority.level_of(cats, policy), cats,
            json.dumps(special), on_time, now,
        )
        await entries.log(conn, entry_id=entry_id, action=Action.CHECK_IN, from_state=None, to_state=row["state"],
                          actor=actor, terminal=terminal, queue_id=queue_id,
                          detail={"identifier": kind, "ticket": ticket, "categories": cats, "on_time": on_time})
        result.arrivals.append(Arrival(entry=dict(row), exam=dict(e)))
    return result
