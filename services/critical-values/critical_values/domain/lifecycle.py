"""Raising, confirming, notifying, acknowledging and closing critical values (standard 7.1.3).

Every function runs in the caller's transaction; state changes, the timeline row, timers,
queued notifications and the outgoing event commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
from imaging_common.events import publish
from imaging_common.events.types import CriticalAcknowledged, CriticalClosed, CriticalEscalated

from critical_values.domain import dictionary, recipients, states, times
from critical_values.domain.errors import Conflict, Invalid, NotFound
from critical_values.domain.recipients import Person

if TYPE_CHECKING:
    from critical_values.settings import Settings

SOURCE = "/imaging/critical-values"


@dataclass
class Defaults:
    """Deadlines for a finding that matches no dictionary item (a radiologist may still raise it)."""

    category: int = 1
    notify_minutes: float = 10.0
    ack_minutes: float = 15.0
    skew: timedelta = times.SKEW  # a claimed time may be this far ahead of ours (IMAGING_CRITICAL_CLOCK_SKEW_SECONDS)

    @classmethod
    def of(cls, settings: Settings) -> Defaults:
        """IMAGING_CRITICAL_DEFAULT_CATEGORY, _NOTIFY_MINUTES, _ACK_MINUTES and _CLOCK_SKEW_SECONDS."""
        return cls(settings.critical_default_category, settings.critical_default_notify_minutes,
                   settings.critical_default_ack_minutes, times.skew_of(settings))


@dataclass
class NewCritical:
    critical_id: str
    accession_number: str
    patient: dict[str, Any]
    finding: str
    raised_by: str
    # When the raiser says it was found (a back-entry after downtime): a claim, kept beside the time
    # it reached us, which is the record (deadlines, statistics) unless `trusted_time`.
    raised_at: datetime | None = None
    source: str = "radiologist"  # radiologist | dictionary | ai
    item_code: str | None = None
    modality: str | None = None
    report_id: str | None = None
    ai_model: str | None = None
    ai_score: float | None = None
    ordering_doctor_id: str | None = None
    ordering_doctor: str | None = None
    ordering_department: str | None = None
    ward: str | None = None
    raised_by_senior: bool = False
    source_strict: bool = True  # False for events: an unknown item code falls back instead of refusing
    # True for the platform's own events (reporting's clock, through the outbox): their raised_at is
    # the record when plausible. A client's raised_at (HTTP) is only ever a claim.
    trusted_time: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def now_utc() -> datetime:
    return datetime.now(UTC)


def notification_id(critical_id: str, step: int, receiver_id: str, channel: str) -> str:
    """Stable identifier of one message: the same inputs always give the same id (HL7 MSH-10 is ≤ 20)."""
    digest = hashlib.sha256(f"{critical_id}|{step}|{receiver_id}|{channel}".encode()).hexdigest()
    return "CV" + digest[:18].upper()


async def log_action(conn: asyncpg.Connection, critical_id: str, *, actor: str, action: str,
                     channel: str | None = None, recipient: str | None = None,
                     detail: dict[str, Any] | None = None, at: datetime | None = None) -> None:
    await conn.execute(
        """INSERT INTO action_log (critical_id, at, actor, action, channel, recipient, detail)
           VALUES ($1, coalesce($2, clock_timestamp()), $3, $4, $5, $6, $7::jsonb)""",
        critical_id, at, actor, action, channel, recipient, json.dumps(detail or {}, default=str, ensure_ascii=False))


async def get(conn: asyncpg.Connection, critical_id: str, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM critical_value WHERE critical_id = $1" + (" FOR UPDATE" if lock else ""),
                              critical_id)
    if row is None:
        raise NotFound(f"critical value {critical_id!r} does not exist")
    return row


async def add_timer(conn: asyncpg.Connection, critical_id: str, kind: str, due_at: datetime, step: int = 0) -> None:
    await conn.execute("INSERT INTO timer (critical_id, kind, step, due_at) VALUES ($1, $2, $3, $4)",
                       critical_id, kind, step, due_at)


async def create_phone_task(conn: asyncpg.Connection, cv: asyncpg.Record, *, reason: str, whom: Person | None,
                            at: datetime) -> int:
    phone = (whom.phone if whom else None) or await recipients.phone_of(conn, whom.person_id if whom else None, at)
    call_whom = (whom.name or whom.person_id) if whom else (cv["department"] or cv["ward"])
    task_id = int(await conn.fetchval(
        "INSERT INTO phone_task (critical_id, reason, call_whom, phone, created_at) VALUES ($1,$2,$3,$4,$5) "
        "RETURNING task_id", cv["critical_id"], reason, call_whom, phone, at))
    await log_action(conn, cv["critical_id"], actor="system", action="phone-task-created", channel="phone",
                     recipient=call_whom, detail={"task_id": task_id, "reason": reason, "phone": phone}, at=at)
    return task_id


async def queue_notifications(conn: asyncpg.Connection, cv: asyncpg.Record, *, step: int, person: Person,
                              at: datetime) -> list[str]:
    """One pending notification per channel of each receiver serving the department; sent after commit."""
    ids: list[str] = []
    for rcv in await recipients.receivers_for(conn, cv["department"]):
        channels = [c for c, on in (("hl7", rcv["hl7_host"]), ("fhir", rcv["fhir_base_url"])) if on]
        for channel in channels:
            nid = notification_id(cv["critical_id"], step, rcv["receiver_id"], channel)
            inserted = await conn.fetchval(
                """INSERT INTO notification (notification_id, critical_id, step, channel, receiver_id, recipient_id,
                       recipient_name, next_attempt_at, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$8)
                   ON CONFLICT (notification_id) DO NOTHING RETURNING notification_id""",
                nid, cv["critical_id"], step, channel, rcv["receiver_id"], person.person_id, person.name, at)
            if inserted:
                ids.append(nid)
    if not ids and step == 0:
        # No clinician system serves this department: a human must phone (7.1.3 (4)).
        await create_phone_task(conn, cv, reason="no clinician system configured for the department",
                                whom=person, at=at)
    return ids


async def _recipient(conn: asyncpg.Connection, new: NewCritical, at: datetime) -> tuple[Person, str | None, str | None]:
    order = await recipients.order_of(conn, new.accession_number)
    doctor_id = (order["ordering_doctor_id"] if order else None) or new.ordering_doctor_id
    doctor = (order["ordering_doctor"] if order else None) or new.ordering_doctor
    department = (order["ordering_department"] if order else None) or new.ordering_department
    ward = (order["ward"] if order else None) or new.ward
    if doctor_id or doctor:
        return Person(doctor_id, doctor or doctor_id), department, ward
    on_call = (await recipients.on_duty(conn, department=department, duty="on-call", at=at)
               or await recipients.on_duty(conn, department=ward, duty="on-call", at=at))
    return on_call or Person(None, department or ward), department, ward


async def raise_critical(conn: asyncpg.Connection, new: NewCritical, *, defaults: Defaults,
                         at: datetime | None = None) -> tuple[asyncpg.Record, bool]:
    """Record a critical value (idempotent on critical_id); returns (row, created).

    `at` is when it reached us: the value's raised_at, from which deadlines run. What the raiser
    claims (`new.raised_at`) is kept as raised_claimed_at, judged (raised_claim_invalid), and only
    for the platform's own events (`trusted_time`) and when plausible taken as the record."""
    at = at or now_utc()
    claim_invalid = times.claim_problem(new.raised_at, received=at, skew=defaults.skew)
    raised_at = new.raised_at if new.trusted_time and new.raised_at and claim_invalid is None else at
    existing = await conn.fetchrow("SELECT * FROM critical_value WHERE critical_id = $1", new.critical_id)
    if existing is not None:
        return existing, False
    if new.source not in ("radiologist", "dictionary", "ai"):
        raise Invalid(f"unknown source {new.source!r}")
    item = await dictionary.find(conn, code=new.item_code, finding=new.finding, modality=new.modality,
                                 strict=new.source_strict)
    version = item.version if item else await dictionary.current_version(conn)
    person, department, ward = await _recipient(conn, new, at)
    # AI findings always wait for a radiologist (8.7.2: AI assists, people decide); dictionary items
    # may demand a senior doctor's confirmation (7.1.3 (3)) unless a senior raised it.
    needs_confirmation = new.source == "ai" or bool(item and item.requires_senior_confirmation
                                                   and not new.raised_by_senior)
    patient_id = str(new.patient.get("patient_id") or new.patient.get("empi_id") or "")
    if not patient_id:
        raise Invalid("the patient needs a patient_id")
    row = await conn.fetchrow(
        """INSERT INTO critical_value (critical_id, accession_number, patient, patient_id, finding, item_code,
               dictionary_version, category, modality, report_id, source, raised_by, raised_at, ai_model, ai_score,
               state, requires_confirmation, recipient_id, recipient_name, department, ward, raised_claimed_at,
               raised_claim_invalid)
           VALUES ($1,$2,$3::jsonb,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23)
           ON CONFLICT (critical_id) DO NOTHING RETURNING *""",
        new.critical_id, new.accession_number, json.dumps(new.patient, default=str, ensure_ascii=False), patient_id,
        new.finding, item.code if item else None, version, item.category if item else defaults.category,
        new.modality.upper() if new.modality else None, new.report_id, new.source, new.raised_by, raised_at,
        new.ai_model, new.ai_score, states.AWAITING_CONFIRMATION if needs_confirmation else states.NOTIFYING,
        needs_confirmation, person.person_id, person.name, department, ward, new.raised_at, claim_invalid)
    if row is None:  # the same id raised concurrently (a client retry): the first one stands
        return await get(conn, new.critical_id), False
    await log_action(conn, new.critical_id, actor=new.raised_by, action="raised", detail={
        "source": new.source, "item_code": row["item_code"], "dictionary_version": version,
        "needs_confirmation": needs_confirmation, **({"ai_model": new.ai_model, "ai_score": new.ai_score}
                                                     if new.source == "ai" else {}),
        **({"claimed_at": new.raised_at.isoformat()} if new.raised_at else {}),
        **({"claimed_at_invalid": claim_invalid} if claim_invalid else {})}, at=at)
    notify_minutes = item.notify_minutes if item else defaults.notify_minutes
    ack_minutes = item.ack_minutes if item else defaults.ack_minutes
    # Deadlines run from the discovery, not from the confirmation: 8.7.1 (2) measures raised -> told.
    row = await conn.fetchrow(
        "UPDATE critical_value SET notify_due_at = $2, ack_due_at = $3 WHERE critical_id = $1 RETURNING *",
        new.critical_id, raised_at + timedelta(minutes=notify_minutes), raised_at + timedelta(minutes=ack_minutes))
    if not needs_confirmation:
        await start_notifying(conn, row, at=at)
    return await get(conn, new.critical_id), True


async def start_notifying(conn: asyncpg.Connection, cv: asyncpg.Record, *, at: datetime) -> None:
    person = Person(cv["recipient_id"], cv["recipient_name"])
    await queue_notifications(conn, cv, step=0, person=person, at=at)
    await add_timer(conn, cv["critical_id"], "notify-deadline", cv["notify_due_at"])
    await add_timer(conn, cv["critical_id"], "ack-deadline", cv["ack_due_at"], step=0)


async def _moving(conn: asyncpg.Connection, critical_id: str,
                  action: states.Action) -> tuple[asyncpg.Record, states.State]:
    """The value, locked, and the state `action` takes it to (InvalidTransition if it may not)."""
    cv = await get(conn, critical_id, lock=True)
    return cv, states.next_state(cv["state"], action)


async def _closed(conn: asyncpg.Connection, cv: asyncpg.Record, at: datetime, outcome: str) -> None:
    """critical.closed for a value just closed with `outcome`."""
    acc = cv["accession_number"]
    await publish(conn, CriticalClosed(critical_id=cv["critical_id"], accession_number=acc, closed_at=at,
                                       outcome=outcome), source=SOURCE, subject=acc)


async def confirm(conn: asyncpg.Connection, critical_id: str, *, by: str, senior: bool,
                  at: datetime | None = None) -> asyncpg.Record:
    at = at or now_utc()
    cv, new_state = await _moving(conn, critical_id, states.Action.CONFIRM)
    item_needs_senior = cv["item_code"] and await conn.fetchval(
        "SELECT requires_senior_confirmation FROM dictionary_item WHERE version = $1 AND code = $2",
        cv["dictionary_version"], cv["item_code"])
    if item_needs_senior and not senior:
        raise Conflict(f"item {cv['item_code']} must be confirmed by a senior radiologist")
    if cv["raised_by"] == by and item_needs_senior:
        raise Conflict("the doctor who found it cannot confirm it (7.1.3 (3): ask a senior doctor)")
    cv = await conn.fetchrow(
        "UPDATE critical_value SET state = $2, confirmed_by = $3, confirmed_at = $4 WHERE critical_id = $1 RETURNING *",
        critical_id, new_state, by, at)
    await log_action(conn, critical_id, actor=by, action="confirmed", at=at)
    await start_notifying(conn, cv, at=at)
    return cv


async def reject(conn: asyncpg.Connection, critical_id: str, *, by: str, reason: str,
                 at: datetime | None = None) -> asyncpg.Record:
    at = at or now_utc()
    cv, new_state = await _moving(conn, critical_id, states.Action.REJECT)
    cv = await conn.fetchrow(
        """UPDATE critical_value SET state = $2, closed_at = $3, outcome = 'rejected', confirmed_by = $4
           WHERE critical_id = $1 RETURNING *""", critical_id, new_state, at, by)
    await log_action(conn, critical_id, actor=by, action="rejected", detail={"reason": reason}, at=at)
    await _closed(conn, cv, at, "rejected")
    return cv


async def _finish(conn: asyncpg.Connection, cv: asyncpg.Record, at: datetime) -> None:
    """Stop everything still running for a closed value: timers, unsent messages, open phone tasks."""
    cid = cv["critical_id"]
    # SKIP LOCKED: a timer being fired or a message being claimed right now holds its row and waits for
    # this value's lock; waiting for it here would deadlock. Those finish after us and find it closed.
    # A message in flight (sending_until ahead: called with no transaction open) finishes and is recorded.
    await conn.execute("""UPDATE timer SET cancelled = true WHERE timer_id IN (SELECT timer_id FROM timer
                          WHERE critical_id = $1 AND fired_at IS NULL FOR UPDATE SKIP LOCKED)""", cid)
    await conn.execute("""UPDATE notification SET status = 'cancelled', last_error = 'closed before delivery'
                          WHERE notification_id IN (SELECT notification_id FROM notification WHERE critical_id = $1
                          AND status = 'pending' AND (sending_until IS NULL OR sending_until < now())
                          FOR UPDATE SKIP LOCKED)""", cid)
    await conn.execute("UPDATE phone_task SET status = 'done', outcome = 'other', notes = 'closed: ' || $2, "
                       "called_at = $3 WHERE critical_id = $1 AND status = 'open'", cid, cv["outcome"] or "", at)


async def acknowledge(conn: asyncpg.Connection, critical_id: str, *, by: str, channel: str,
                      action_taken: str | None = None, at: datetime | None = None,
                      claimed_at: datetime | None = None, skew: timedelta = times.SKEW,
                      detail: dict[str, Any] | None = None) -> tuple[asyncpg.Record, bool]:
    """The clinician confirmed receipt (and what they did): the loop is closed. Idempotent.

    `at` is the record: when the acknowledgement reached us (a phone call: when it was recorded);
    deadlines and statistics use it. `claimed_at` is when a clinician system or the caller says it
    happened: evidence, kept beside it and judged (acknowledged_claim_invalid: in the future beyond
    `skew`, before the value was raised, unreadable), never used for the record."""
    at = at or now_utc()
    cv = await get(conn, critical_id, lock=True)
    if cv["acknowledged_at"] is not None:
        return cv, False
    new_state = states.next_state(cv["state"], states.Action.ACKNOWLEDGE)
    invalid = times.claim_problem(claimed_at, received=at, not_before=times.raised_since(cv), skew=skew)
    if claimed_at is None and (detail or {}).get("claimed_time_unreadable"):
        invalid = times.UNREADABLE
    cv = await conn.fetchrow(
        """UPDATE critical_value SET state = $2, acknowledged_at = $3, acknowledged_by = $4, ack_channel = $5,
               action_taken = $6, closed_at = $3, outcome = 'acknowledged', acknowledged_claimed_at = $7,
               acknowledged_claim_invalid = $8
           WHERE critical_id = $1 RETURNING *""",
        critical_id, new_state, at, by, channel, action_taken, claimed_at, invalid)
    claimed: dict[str, Any] = {"claimed_at": claimed_at.isoformat()} if claimed_at else {}
    if invalid:
        claimed["claimed_at_invalid"] = invalid
    await log_action(conn, critical_id, actor=by, action="acknowledged", channel=channel,
                     detail={"action_taken": action_taken, **claimed, **(detail or {})}, at=at)
    await _finish(conn, cv, at)
    acc = cv["accession_number"]
    await publish(conn, CriticalAcknowledged(critical_id=critical_id, accession_number=acc, acknowledged_by=by,
                                             channel=channel, action_taken=action_taken, acknowledged_at=at),
                  source=SOURCE, subject=acc)
    await _closed(conn, cv, at, "acknowledged")
    return cv, True


async def document_only(conn: asyncpg.Connection, critical_id: str, *, by: str, note: str,
                        at: datetime | None = None) -> asyncpg.Record:
    """A manual "documented only" close: no clinician system was involved (kept apart in statistics)."""
    at = at or now_utc()
    cv, new_state = await _moving(conn, critical_id, states.Action.DOCUMENT)
    cv = await conn.fetchrow(
        "UPDATE critical_value SET state = $2, closed_at = $3, outcome = 'documented' WHERE critical_id = $1 "
        "RETURNING *", critical_id, new_state, at)
    await log_action(conn, critical_id, actor=by, action="documented-only", detail={"note": note}, at=at)
    await _finish(conn, cv, at)
    await _closed(conn, cv, at, "documented")
    return cv


async def escalated(conn: asyncpg.Connection, cv: asyncpg.Record, *, step_name: str, recipient: str | None,
                    at: datetime, detail: dict[str, Any]) -> None:
    await log_action(conn, cv["critical_id"], actor="system", action="escalated", recipient=recipient,
                     detail={"step": step_name, **detail}, at=at)
    await publish(conn, CriticalEscalated(critical_id=cv["critical_id"], accession_number=cv["accession_number"],
                                          step=step_name, recipient=recipient, escalated_at=at),
                  source=SOURCE, subject=cv["accession_number"])


async def timeline(conn: asyncpg.Connection, critical_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT at, actor, action, channel, recipient, detail FROM action_log "
                            "WHERE critical_id = $1 ORDER BY at, log_id", critical_id)
    return [{**dict(r), "detail": json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"]}
            for r in rows]


# ---- reading -------------------------------------------------------------------------------------

async def patient_of(conn: asyncpg.Connection, critical_id: str) -> str | None:
    return await conn.fetchval("SELECT patient_id FROM critical_value WHERE critical_id = $1", critical_id)


async def listing(conn: asyncpg.Connection, *, state: str, accession_number: str | None,
                  limit: int) -> list[asyncpg.Record]:
    """Critical values, newest first: the open ones (state 'open') or all."""
    return await conn.fetch(
        """SELECT * FROM critical_value WHERE ($1 = 'all' OR closed_at IS NULL)
           AND ($2::text IS NULL OR accession_number = $2) ORDER BY raised_at DESC LIMIT $3""",
        state, accession_number, limit)


async def notifications_of(conn: asyncpg.Connection, critical_id: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM notification WHERE critical_id = $1 ORDER BY created_at, "
                            "notification_id", critical_id)


async def phone_tasks_of(conn: asyncpg.Connection, critical_id: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM phone_task WHERE critical_id = $1 ORDER BY task_id", critical_id)


async def manual_records_of(conn: asyncpg.Connection, critical_id: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM manual_record WHERE critical_id = $1 ORDER BY record_id", critical_id)
