"""The pool configured as data (5.3.1, 5.3.4): rooms and their working hours, closures, exam types,
technologists and their roster, wards, channel quotas and booking rules. The admin API's storage; the
booking engine reads the same tables through calendar.load_calendar."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, time
from typing import Any

import asyncpg

# ---- rooms and calendars ---------------------------------------------------------------------------


async def rooms(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM room ORDER BY campus, modality, id")


async def sessions(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every room's working hours, by weekday and start."""
    return await conn.fetch("SELECT room_id, weekday, starts, ends, label FROM room_session ORDER BY weekday, starts")


async def room_exists(conn: asyncpg.Connection, room_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM room WHERE id = $1", room_id))


async def put_room(
    conn: asyncpg.Connection,
    *,
    id: str,  # noqa: A002 - the room's column
    name: str,
    modality: str,
    campus: str,
    building: str,
    floor: str,
    location: str,
    route: str,
    station_ae_title: str | None,
    capabilities: list[str],
    slice_minutes: int,
    active: bool,
) -> None:
    await conn.execute(
        """INSERT INTO room (id, name, modality, campus, building, floor, location, route, station_ae_title,
                             capabilities, slice_minutes, active)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           ON CONFLICT (id) DO UPDATE SET name = $2, modality = $3, campus = $4, building = $5, floor = $6,
               location = $7, route = $8, station_ae_title = $9, capabilities = $10, slice_minutes = $11,
               active = $12""",
        id, name, modality, campus, building, floor, location, route, station_ae_title, capabilities,
        slice_minutes, active,
    )


async def replace_sessions(conn: asyncpg.Connection, room_id: str,
                           hours: Sequence[tuple[int, time, time, str]]) -> None:
    """A room's working hours replaced by (weekday, starts, ends, label) rows."""
    await conn.execute("DELETE FROM room_session WHERE room_id = $1", room_id)
    await conn.executemany(
        "INSERT INTO room_session (room_id, weekday, starts, ends, label) VALUES ($1, $2, $3, $4, $5)",
        [(room_id, *h) for h in hours],
    )


async def closures(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, room_id, campus, lower(during) AS start, upper(during) AS end, kind, reason "
        "FROM closure ORDER BY lower(during)"
    )


async def add_closure(conn: asyncpg.Connection, *, room_id: str | None, campus: str | None, start: datetime,
                      end: datetime, kind: str, reason: str) -> int:
    closure_id: int = await conn.fetchval(
        "INSERT INTO closure (room_id, campus, during, kind, reason) VALUES ($1, $2, tstzrange($3, $4), $5, $6) "
        "RETURNING id",
        room_id, campus, start, end, kind, reason,
    )
    return closure_id


async def delete_closure(conn: asyncpg.Connection, closure_id: int) -> None:
    await conn.execute("DELETE FROM closure WHERE id = $1", closure_id)


async def exam_types(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM exam_type ORDER BY code")


async def put_exam_type(conn: asyncpg.Connection, *, code: str, name: str, modality: str, body_part: str | None,
                        duration_minutes: int, preparation_minutes: int, contrast: str, fasting: bool,
                        required_capabilities: list[str], preparation: str) -> None:
    """An exam type as the admin set it (no longer one made up from an order: auto_created false)."""
    await conn.execute(
        """INSERT INTO exam_type (code, name, modality, body_part, duration_minutes, preparation_minutes, contrast,
                                  fasting, required_capabilities, preparation, auto_created)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, false)
           ON CONFLICT (code) DO UPDATE SET name = $2, modality = $3, body_part = $4, duration_minutes = $5,
               preparation_minutes = $6, contrast = $7, fasting = $8, required_capabilities = $9,
               preparation = $10, auto_created = false""",
        code, name, modality, body_part, duration_minutes, preparation_minutes, contrast, fasting,
        required_capabilities, preparation,
    )


async def put_technologist(conn: asyncpg.Connection, *, id: str, name: str) -> None:  # noqa: A002
    await conn.execute("INSERT INTO technologist (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = $2",
                       id, name)


async def technologist_ids(conn: asyncpg.Connection) -> set[str]:
    return {r["id"] for r in await conn.fetch("SELECT id FROM technologist")}


async def replace_roster(conn: asyncpg.Connection, room_id: str,
                         entries: Sequence[tuple[str, int, time, time]]) -> None:
    """A room's roster replaced by (technologist_id, weekday, starts, ends) rows."""
    await conn.execute("DELETE FROM roster WHERE room_id = $1", room_id)
    await conn.executemany(
        "INSERT INTO roster (technologist_id, room_id, weekday, starts, ends) VALUES ($1, $2, $3, $4, $5)",
        [(t, room_id, weekday, starts, ends) for t, weekday, starts, ends in entries],
    )


async def put_ward(conn: asyncpg.Connection, *, code: str, name: str, campus: str, building: str) -> None:
    await conn.execute(
        "INSERT INTO ward (code, name, campus, building) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (code) DO UPDATE SET name = $2, campus = $3, building = $4",
        code, name, campus, building,
    )


# ---- quotas and rules ------------------------------------------------------------------------------


async def quotas(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM channel_quota ORDER BY id")


async def add_quota(conn: asyncpg.Connection, *, channel: str, room_id: str | None, modality: str | None,
                    max_per_session: int, release_minutes_before: int) -> int:
    quota_id: int = await conn.fetchval(
        "INSERT INTO channel_quota (channel, room_id, modality, max_per_session, release_minutes_before) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id",
        channel, room_id, modality, max_per_session, release_minutes_before,
    )
    return quota_id


async def delete_quota(conn: asyncpg.Connection, quota_id: int) -> None:
    await conn.execute("DELETE FROM channel_quota WHERE id = $1", quota_id)


async def rules(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM rule ORDER BY name")


async def put_rule(conn: asyncpg.Connection, *, name: str, type: str, params: dict[str, Any],  # noqa: A002
                   reason: str, enabled: bool, updated_by: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        """INSERT INTO rule (name, type, params, reason, enabled, updated_by) VALUES ($1, $2, $3::jsonb, $4, $5, $6)
           ON CONFLICT (name) DO UPDATE SET type = $2, params = $3::jsonb, reason = $4, enabled = $5,
               updated_by = $6, updated_at = now()
           RETURNING *""",
        name, type, json.dumps(params, ensure_ascii=False), reason, enabled, updated_by,
    )
    assert row is not None  # INSERT ... RETURNING always returns the row
    return row


async def delete_rule(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute("DELETE FROM rule WHERE name = $1", name)


async def rooms_by_id(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM room ORDER BY id")


async def room(conn: asyncpg.Connection, room_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM room WHERE id = $1", room_id)


async def room_modality(conn: asyncpg.Connection, room_id: str) -> str | None:
    return await conn.fetchval("SELECT modality FROM room WHERE id = $1", room_id)
