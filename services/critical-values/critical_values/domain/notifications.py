"""Delivery bookkeeping of queued notifications: claim one due, record acceptance or failure.

The sender (adapters/delivery_worker.py) holds the claimed row locked while it talks to the receiver, so
two replicas never send the same row at once; a crash before the commit leaves the row pending and
it is sent again under the same identifier, which the receiver drops as a duplicate.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
from imaging_common.delivery import backoff
from imaging_common.events import publish
from imaging_common.events.types import CriticalNotified

from critical_values.domain import lifecycle, states
from critical_values.domain.recipients import Person


async def claim_due(conn: asyncpg.Connection, at: datetime) -> asyncpg.Record | None:
    """The next due pending notification, locked for this transaction (SKIP LOCKED: replicas share)."""
    return await conn.fetchrow(
        """SELECT n.*, r.hl7_host, r.hl7_port, r.hl7_message_type, r.fhir_base_url, r.fhir_request
           FROM notification n JOIN receiver r USING (receiver_id)
           WHERE n.status = 'pending' AND n.next_attempt_at <= $1
           ORDER BY n.next_attempt_at LIMIT 1 FOR UPDATE OF n SKIP LOCKED""", at)


async def lease(conn: asyncpg.Connection, note: asyncpg.Record, until: datetime) -> asyncpg.Record | None:
    """Lease a claimed notification until `until` (other workers and replicas leave it alone; closing
    or re-routing the value lets it finish); returns its critical value, as sent."""
    await conn.execute("UPDATE notification SET next_attempt_at = $2, sending_until = $2 "
                       "WHERE notification_id = $1", note["notification_id"], until)
    return await conn.fetchrow("SELECT * FROM critical_value WHERE critical_id = $1", note["critical_id"])


async def lock_after_send(conn: asyncpg.Connection, note: asyncpg.Record) -> asyncpg.Record | None:
    """The notification as it is now, locked to record a send's outcome, its lease released; None if gone.
    The value is locked before its notification, as acknowledging, escalating and re-routing lock them:
    the other order deadlocked with them (and the outcome of a send was lost)."""
    await conn.execute("SELECT 1 FROM critical_value WHERE critical_id = $1 FOR UPDATE", note["critical_id"])
    current = await conn.fetchrow(
        """SELECT n.*, r.hl7_host, r.hl7_port, r.hl7_message_type, r.fhir_base_url, r.fhir_request
           FROM notification n JOIN receiver r USING (receiver_id)
           WHERE n.notification_id = $1 FOR UPDATE OF n""", note["notification_id"])
    if current is not None:
        await conn.execute("UPDATE notification SET sending_until = NULL WHERE notification_id = $1",
                           note["notification_id"])
    return current


async def lock_sent_hl7(conn: asyncpg.Connection, notification_id: str, receiver_id: str) -> asyncpg.Record | None:
    """The HL7 notification a (late) ACK from `receiver_id` refers to, locked (the value first)."""
    await conn.execute(
        "SELECT 1 FROM critical_value WHERE critical_id = (SELECT critical_id FROM notification "
        "WHERE notification_id = $1 AND receiver_id = $2) FOR UPDATE", notification_id, receiver_id)
    return await conn.fetchrow(
        "SELECT * FROM notification WHERE notification_id = $1 AND receiver_id = $2 AND channel = 'hl7' "
        "FOR UPDATE", notification_id, receiver_id)


async def accepted(conn: asyncpg.Connection, note: asyncpg.Record, *, at: datetime, remote_id: str | None = None,
                   task_id: str | None = None, late: bool = False) -> None:
    """The receiver accepted the message (HL7 AA/CA, FHIR 201): the clinician system has it.
    `late`: its ACK came after our send had timed out (attempts already counted that send)."""
    await conn.execute(
        """UPDATE notification SET status = 'accepted', accepted_at = $2,
               attempts = attempts + CASE WHEN $5 THEN 0 ELSE 1 END, remote_id = $3,
               task_id = $4, last_error = NULL WHERE notification_id = $1""",
        note["notification_id"], at, remote_id, task_id, late)
    cv = await lifecycle.get(conn, note["critical_id"], lock=True)
    await lifecycle.log_action(conn, cv["critical_id"], actor="system", action="delivered", channel=note["channel"],
                               recipient=note["recipient_name"] or note["recipient_id"],
                               detail={"notification_id": note["notification_id"], "receiver": note["receiver_id"],
                                       "step": note["step"], "remote_id": remote_id, "task_id": task_id,
                                       **({"late_ack": True} if late else {})}, at=at)
    if cv["state"] not in (states.NOTIFYING, states.NOTIFIED):
        return
    first = cv["first_notified_at"] is None
    await conn.execute(
        "UPDATE critical_value SET state = $2, first_notified_at = coalesce(first_notified_at, $3) "
        "WHERE critical_id = $1", cv["critical_id"], states.next_state(cv["state"], states.Action.DELIVERED), at)
    # One critical.notified per channel and step: enough for consumers, not one per receiver.
    already = await conn.fetchval(
        """SELECT count(*) FROM notification WHERE critical_id = $1 AND step = $2 AND channel = $3
           AND status = 'accepted' AND notification_id <> $4""",
        cv["critical_id"], note["step"], note["channel"], note["notification_id"])
    if first or not already:
        await publish(conn, CriticalNotified(
            critical_id=cv["critical_id"], accession_number=cv["accession_number"], channel=note["channel"],
            recipient=note["recipient_name"] or note["recipient_id"] or "", notified_at=at),
            source=lifecycle.SOURCE, subject=cv["accession_number"])


async def failed_attempt(conn: asyncpg.Connection, note: asyncpg.Record, *, at: datetime, error: str,
                         max_attempts: int, retry_seconds: float, slow_retry_seconds: float = 300.0) -> bool:
    """Record a failed attempt. Within the budget of `max_attempts` the next try backs off (doubling,
    at most 60 s); when the budget is spent a human is asked to phone (once), and the message is
    still tried every `slow_retry_seconds` until the receiver accepts it or the value is closed
    (closing cancels it). True = the budget was spent by this attempt."""
    attempts = note["attempts"] + 1
    spent_now = attempts == max_attempts
    if attempts < max_attempts:
        delay = backoff(attempts, base=retry_seconds, cap=60.0)
    else:
        delay = max(slow_retry_seconds, retry_seconds)
    await conn.execute(
        """UPDATE notification SET attempts = $2, last_error = $3, next_attempt_at = $4 WHERE notification_id = $1""",
        note["notification_id"], attempts, error[:500], at + timedelta(seconds=delay))
    if attempts < max_attempts or spent_now:  # the slow retries after that stay on the row, not the timeline
        await lifecycle.log_action(conn, note["critical_id"], actor="system",
                                   action="delivery-failed" if spent_now else "delivery-retry", channel=note["channel"],
                                   detail={"notification_id": note["notification_id"], "attempt": attempts,
                                           "error": error[:200],
                                           **({"slow_retry_seconds": delay} if spent_now else {})}, at=at)
    if spent_now:
        cv = await lifecycle.get(conn, note["critical_id"], lock=True)
        if cv["closed_at"] is None:
            # 7.1.3 (4): when the system cannot deliver, staff phone the clinical department.
            await lifecycle.create_phone_task(conn, cv, reason=f"{note['channel']} delivery to {note['receiver_id']} "
                                              "failed", whom=Person(note["recipient_id"], note["recipient_name"]),
                                              at=at)
    return spent_now


async def by_reference(conn: asyncpg.Connection, ref: str, *, receivers: list[str], remote: bool = False,
                       task: bool = False) -> asyncpg.Record | None:
    """A notification sent to one of `receivers` (the system that answers), by our identifier, or,
    when asked, by the id that receiver gave our Communication (`remote`) or Task (`task`). The
    receiver's ids are unique only within it: another receiver's id 1 is not this one's."""
    if not receivers:
        return None
    return await conn.fetchrow(
        """SELECT * FROM notification WHERE receiver_id = ANY($2::text[])
             AND (notification_id = $1 OR ($3 AND remote_id = $1) OR ($4 AND task_id = $1))
           ORDER BY (notification_id = $1) DESC, created_at DESC LIMIT 1""", ref, receivers, remote, task)
