"""Messages to patients: what is said (Chinese templates), when (quiet hours), to whom (opt-out), once.

A message is queued in the transaction of the event that caused it, keyed by its cause (`dedup_key`),
so a redelivered event queues nothing new; a sender claims due rows with a lease and records each
outcome (see adapters/message_worker.py for how a stop mid-send keeps it to one delivery).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

# kind -> template; {signature} first, as Chinese carriers require. No finding, no full name: an SMS is
# read on a lock screen.
TEMPLATES = {
    "appointment-booked": "{signature}您好，您的{exam}检查已预约在{time}，地点：{room}。请提前15分钟到达签到。",
    "appointment-rescheduled": "{signature}您好，您的{exam}检查已改约到{time}，地点：{room}。",
    "appointment-reminder": "{signature}提醒：您的{exam}检查在{time}，地点：{room}。{preparation}",
    "checked-in": "{signature}您已签到，排队号{ticket}，请在候诊区留意叫号。检查进度可在手机上查看：{url}",
    "report-ready": "{signature}您好，您的{exam}检查报告已出，可在手机上登录查看：{url}",
    "report-amended": "{signature}您好，您的{exam}检查报告已更正（第{version}版），请登录查看最新报告：{url}",
    "critical": "{signature}您好，您的{exam}检查结果需要尽快处理，请尽快联系{department}或到院就诊。",
}
# Sent even in quiet hours and to an opted-out phone (per department policy): it cannot wait.
URGENT = frozenset({"critical"})


@dataclass(frozen=True)
class QuietHours:
    start: time  # e.g. 21:00
    end: time  # e.g. 08:00 (the next morning when before start)
    tz: ZoneInfo

    @classmethod
    def parse(cls, text: str, tz: str) -> QuietHours | None:
        """"21:00-08:00" -> QuietHours; "" -> None (no quiet hours)."""
        if not text.strip():
            return None
        start, _, end = text.partition("-")
        return cls(time.fromisoformat(start.strip()), time.fromisoformat(end.strip()), ZoneInfo(tz))

    def release(self, now: datetime) -> datetime:
        """`now`, or the end of the quiet hours `now` falls in."""
        local = now.astimezone(self.tz)
        t = local.time()
        overnight = self.start > self.end
        quiet = (t >= self.start or t < self.end) if overnight else (self.start <= t < self.end)
        if not quiet:
            return now
        end = datetime.combine(local.date(), self.end, self.tz)
        if end <= local:
            end += timedelta(days=1)
        return end


def render(kind: str, **values: Any) -> str:
    return TEMPLATES[kind].format(**values)


async def enqueue(conn: asyncpg.Connection, *, dedup_key: str, kind: str, empi_id: str, body: str,
                  accession_number: str | None, now: datetime, quiet: QuietHours | None) -> bool:
    """Queue one message to the patient's phone; False when there is nothing to queue (no phone,
    already queued for this cause). An opted-out phone's message is kept as `opted-out`, never sent."""
    phone = await conn.fetchval("SELECT phone FROM patient WHERE empi_id = $1", empi_id)
    if phone is None:
        return False
    urgent = kind in URGENT
    opted_out = not urgent and await conn.fetchval("SELECT 1 FROM opt_out WHERE phone = $1", phone) is not None
    due = now if urgent or quiet is None else quiet.release(now)
    done = await conn.execute(
        """INSERT INTO message (dedup_key, kind, phone, empi_id, accession_number, body, status, next_attempt_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dedup_key) DO NOTHING""",
        dedup_key, kind, phone, empi_id, accession_number, body, "opted-out" if opted_out else "queued", due)
    if done == "INSERT 0 1" and not opted_out:
        await conn.execute("SELECT pg_notify('patient_portal_messages', 'due')")
        return True
    return False


async def claim(conn: asyncpg.Connection, *, now: datetime, lease: timedelta, limit: int) -> list[dict[str, Any]]:
    """Due messages, leased to this sender (SKIP LOCKED: replicas send side by side)."""
    rows = await conn.fetch(
        """UPDATE message SET lease_until = $1 + $2::interval, attempts = attempts + 1
            WHERE message_id IN (SELECT message_id FROM message
                                  WHERE status = 'queued' AND next_attempt_at <= $1
                                    AND (lease_until IS NULL OR lease_until < $1)
                                  ORDER BY next_attempt_at, message_id LIMIT $3 FOR UPDATE SKIP LOCKED)
        RETURNING message_id, phone, body, attempts""", now, lease, limit)
    return [dict(r) for r in rows]


async def sent(conn: asyncpg.Connection, message_id: int, *, provider_message_id: str, now: datetime) -> None:
    await conn.execute(
        """UPDATE message SET status = 'sent', sent_at = $3, provider_message_id = $2, lease_until = NULL,
                  last_error = NULL WHERE message_id = $1""", message_id, provider_message_id, now)


async def not_sent(conn: asyncpg.Connection, message_id: int, *, error: str, retry_at: datetime | None) -> None:
    """A failed attempt: tried again at `retry_at`, or failed for good when None."""
    await conn.execute(
        """UPDATE message SET status = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE status END,
                  next_attempt_at = COALESCE($3, next_attempt_at), lease_until = NULL, last_error = $2
            WHERE message_id = $1""", message_id, error[:500], retry_at)


COLUMNS = "message_id, kind, accession_number, body, status, attempts, last_error, created_at, next_attempt_at, sent_at"


async def of_phone(conn: asyncpg.Connection, phone: str, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = await conn.fetch(f"SELECT {COLUMNS} FROM message WHERE phone = $1 "
                            "ORDER BY created_at DESC, message_id DESC LIMIT $2", phone, limit)
    return [dict(r) for r in rows]


async def with_status(conn: asyncpg.Connection, status: str | None, *, limit: int) -> list[dict[str, Any]]:
    """For staff following delivery: the newest messages, of one status or all."""
    rows = await conn.fetch(f"SELECT {COLUMNS}, empi_id FROM message WHERE $1::text IS NULL OR status = $1 "
                            "ORDER BY created_at DESC, message_id DESC LIMIT $2", status, limit)
    return [dict(r) for r in rows]


async def set_opt_out(conn: asyncpg.Connection, phone: str, opted_out: bool) -> None:
    """The phone's owner stops (or resumes) messages; messages queued and not yet sent stop too."""
    if opted_out:
        await conn.execute("INSERT INTO opt_out (phone) VALUES ($1) ON CONFLICT DO NOTHING", phone)
        await conn.execute(
            "UPDATE message SET status = 'opted-out' WHERE phone = $1 AND status = 'queued' AND kind <> ALL($2)",
            phone, list(URGENT))
    else:
        await conn.execute("DELETE FROM opt_out WHERE phone = $1", phone)


async def is_opted_out(conn: asyncpg.Connection, phone: str) -> bool:
    return await conn.fetchval("SELECT 1 FROM opt_out WHERE phone = $1", phone) is not None
