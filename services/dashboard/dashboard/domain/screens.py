"""The wall screen (big screen): its token, and today's figures as it shows them, names masked."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg


async def put_screen(conn: asyncpg.Connection, screen_id: str, title: str, *, new_token: bool) -> dict[str, Any]:
    """Register a screen, or rename it; a new token on creation or when asked (the old one stops working)."""
    row = await conn.fetchrow(
        """INSERT INTO screen (screen_id, title, token) VALUES ($1, $2, $3)
           ON CONFLICT (screen_id) DO UPDATE SET title = EXCLUDED.title, updated_at = now(),
             token = CASE WHEN $4 THEN EXCLUDED.token ELSE screen.token END
           RETURNING screen_id, title, token, created_at, updated_at""",
        screen_id, title, secrets.token_urlsafe(24), new_token)
    return dict(row)


async def screen_token(conn: asyncpg.Connection, screen_id: str) -> str | None:
    token: str | None = await conn.fetchval("SELECT token FROM screen WHERE screen_id = $1", screen_id)
    return token


def masked(name: str | None) -> str:
    """A public screen shows the surname only (张三丰 -> 张**, SMITH^JOHN -> S****)."""
    first = (name or "").replace("^", " ").strip()
    return first[:1] + "*" * max(len(first.split(" ")[0]) - 1, 1) if first else ""


async def today(conn: asyncpg.Connection, *, now: datetime, timezone: str) -> dict[str, Any]:
    """Today's flow per modality (local day), the exams under way and the open critical values."""
    midnight = now.astimezone(ZoneInfo(timezone)).replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    flow = await conn.fetch(
        """SELECT coalesce(modality, '(未知)') AS modality,
                  count(*) FILTER (WHERE appointment_start >= $1 AND cancelled_at IS NULL) AS booked,
                  count(*) FILTER (WHERE arrived_at >= $1) AS arrived,
                  count(*) FILTER (WHERE started_at >= $1 AND completed_at IS NULL) AS in_exam,
                  count(*) FILTER (WHERE completed_at >= $1 AND exam_status = 'completed') AS completed,
                  count(*) FILTER (WHERE final_at >= $1) AS reported
           FROM exam_fact WHERE greatest(appointment_start, arrived_at, started_at, completed_at, final_at) >= $1
           GROUP BY 1 ORDER BY 1""", midnight)
    under_way = await conn.fetch(
        """SELECT coalesce(room_name, station_ae_title, '') AS room, modality, p.patient ->> 'name' AS patient_name,
                  started_at
           FROM exam_fact LEFT JOIN patient p USING (empi_id)
           WHERE started_at >= $1 AND completed_at IS NULL ORDER BY started_at LIMIT 30""", midnight)
    open_critical = await conn.fetchval(
        "SELECT count(*) FROM critical_fact WHERE raised_at >= $1 AND acknowledged_at IS NULL", midnight)
    return {"flow": [dict(r) for r in flow], "open_critical": open_critical,
            "under_way": [{"room": r["room"], "modality": r["modality"], "name": masked(r["patient_name"]),
                           "started_at": r["started_at"].isoformat()} for r in under_way]}
