"""Patient notifications (smart-imaging standard 6.2.2 (6)): number ahead and estimated wait,
pushed when they change, and "please go to room X" when called.

Inside the change's transaction this module only writes rows to `notification`; a sender
(adapters/notify_worker.py) delivers them through a channel (webhook out of the box; SMS and WeChat
plug in by registering a channel under their name) with bounded retries.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

from queue_calling.domain import views
from queue_calling.domain.scope import Change

# channel name -> async send(target, payload); raise to retry
Channel = Callable[[str, dict[str, Any]], Awaitable[None]]


async def subscribe(conn: asyncpg.Connection, *, entry_id: Any, channel: str, target: str) -> None:
    await conn.execute("INSERT INTO notify_target (entry_id, channel, target) VALUES ($1, $2, $3) "
                       "ON CONFLICT DO NOTHING", entry_id, channel, target)


async def _enqueue(conn: asyncpg.Connection, entry_id: Any, payload: dict[str, Any]) -> int:
    targets = await conn.fetch("SELECT channel, target FROM notify_target WHERE entry_id = $1", entry_id)
    for t in targets:
        await conn.execute(
            "INSERT INTO notification (entry_id, channel, target, payload) VALUES ($1, $2, $3, $4::jsonb)",
            entry_id, t["channel"], t["target"], json.dumps(payload, ensure_ascii=False, default=str))
    return len(targets)


async def queue_for(conn: asyncpg.Connection, change: Change, now: datetime) -> int:
    """Queue notifications for what this change did: calls, and new numbers ahead in touched queues."""
    count = 0
    for call in change.called:
        count += await _enqueue(conn, call["entry_id"], {
            "event": "called", "entry_id": call["entry_id"], "ticket": call["ticket"], "room_id": call["room_id"],
            "room_name": call["room_name"], "number_ahead": 0, "estimated_wait_minutes": 0, "at": now})
    for queue_id in sorted(change.queues):
        # Only patients who asked for notifications are ranked and remembered; most don't.
        subscribed = {r["entry_id"] for r in await conn.fetch(
            """SELECT DISTINCT t.entry_id FROM notify_target t JOIN queue_entry e USING (entry_id)
               WHERE e.queue_id = $1 AND e.state = 'waiting'""", queue_id)}
        if not subscribed:
            continue
        ranked, minutes, rooms = await views.number_ahead(conn, queue_id)
        changed = [(row, ahead) for row, ahead in ranked
                   if row["entry_id"] in subscribed and row["last_notified_ahead"] != ahead]
        for row, ahead in changed:
            await conn.execute("UPDATE queue_entry SET last_notified_ahead = $2 WHERE entry_id = $1",
                               row["entry_id"], ahead)
            count += await _enqueue(conn, row["entry_id"], {
                "event": "position", "entry_id": str(row["entry_id"]), "ticket": row["ticket"],
                "queue_id": queue_id, "number_ahead": ahead,
                "estimated_wait_minutes": views.estimated_wait_minutes(ahead, minutes, rooms), "at": now})
    return count


async def claim_due(conn: asyncpg.Connection, *, limit: int, now: datetime) -> list[asyncpg.Record]:
    """Pending notifications for this sender; SKIP LOCKED lets several replicas send side by side."""
    return list(await conn.fetch(
        """SELECT * FROM notification WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1
           ORDER BY notification_id LIMIT $2 FOR UPDATE SKIP LOCKED""", now, limit))


async def lease(conn: asyncpg.Connection, notification_id: int, until: datetime) -> None:
    """Hold a claimed notification until `until`: other senders skip it while it is being sent."""
    await conn.execute("UPDATE notification SET next_attempt_at = $2 WHERE notification_id = $1",
                       notification_id, until)


async def mark_sent(conn: asyncpg.Connection, notification_id: int, now: datetime) -> None:
    await conn.execute("UPDATE notification SET sent_at = $2, attempts = attempts + 1 WHERE notification_id = $1",
                       notification_id, now)


async def mark_failed(conn: asyncpg.Connection, notification_id: int, error: str, now: datetime, *,
                      retry_at: datetime | None) -> None:
    await conn.execute(
        """UPDATE notification SET attempts = attempts + 1, last_error = $2,
               next_attempt_at = coalesce($3, next_attempt_at),
               failed_at = CASE WHEN $3::timestamptz IS NULL THEN $4::timestamptz ELSE NULL END
           WHERE notification_id = $1""",
        notification_id, error[:500], retry_at, now)
