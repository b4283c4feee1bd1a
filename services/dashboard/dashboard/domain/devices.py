"""Modalities and printers on the status board (standard 9.1.2): registered here with where they answer
C-ECHO, watched by the poller (adapters/echo_worker.py) and by their activity (MPPS, films).

State: "unreachable" when its last C-ECHO failed; else "in_exam" while an exam it started today has no
completion; else "online" when it did something (an exam, a film) within the idle time; else "idle".
"unknown" until its first C-ECHO. An alert (device.disconnected) goes out once when it stops answering
within its opening hours, device.reconnected when it answers again after such an alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from imaging_common.events import publish
from imaging_common.events.types import DeviceDisconnected, DeviceReconnected

from dashboard.domain.errors import NotFound

SOURCE = "/imaging/dashboard"
State = Literal["unknown", "unreachable", "in_exam", "online", "idle"]
FIELDS = ("kind", "name", "ae_title", "host", "port", "modality", "room_id", "campus", "opens", "closes", "active")


async def put_device(conn: asyncpg.Connection, device_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """Register or change a device (its state and history are kept)."""
    names = [n for n in FIELDS if n in values]
    sets = ", ".join(f"{n} = EXCLUDED.{n}" for n in names)
    row = await conn.fetchrow(
        f"INSERT INTO device (device_id, {', '.join(names)}) VALUES ($1, "
        + ", ".join(f"${i}" for i in range(2, len(names) + 2))
        + f") ON CONFLICT (device_id) DO UPDATE SET {sets}, updated_at = now() RETURNING *",
        device_id, *(values[n] for n in names))
    return dict(row)


async def active_devices(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(
        "SELECT device_id, ae_title, host, port FROM device WHERE active ORDER BY device_id")]


async def touch(conn: asyncpg.Connection, ae_title: str, at: datetime) -> None:
    """Activity of the device with this AE title (an MPPS, a film): it is there."""
    await conn.execute("UPDATE device SET last_activity_at = greatest(last_activity_at, $2) WHERE ae_title = $1",
                       ae_title, at)


def in_opening_hours(device: dict[str, Any], at: datetime, timezone: str) -> bool:
    local = at.astimezone(ZoneInfo(timezone)).time()
    return bool(device["opens"] <= local < device["closes"])


async def record_echo(conn: asyncpg.Connection, device_id: str, *, ok: bool, at: datetime,
                      timezone: str) -> str | None:
    """Note a C-ECHO's outcome; publish the alert it calls for. Returns "disconnected", "reconnected" or None.
    The row is locked, so two replicas polling the same device send one alert."""
    row = await conn.fetchrow("SELECT * FROM device WHERE device_id = $1 FOR UPDATE", device_id)
    if row is None:
        return None
    device = dict(row)
    alert: str | None = None
    if not ok and not device["alerted"] and in_opening_hours(device, at, timezone):
        alert = "disconnected"
        await publish(conn, DeviceDisconnected(
            device_id=device_id, kind=device["kind"], name=device["name"], ae_title=device["ae_title"],
            last_seen_at=_last_seen(device), detected_at=at), source=SOURCE, subject=device_id)
    elif ok and device["alerted"]:
        alert = "reconnected"
        await publish(conn, DeviceReconnected(device_id=device_id, kind=device["kind"], name=device["name"],
                                              ae_title=device["ae_title"], detected_at=at),
                      source=SOURCE, subject=device_id)
    await conn.execute(
        """UPDATE device SET reachable = $2, last_echo_at = $3, last_ok_at = CASE WHEN $2 THEN $3 ELSE last_ok_at END,
                  alerted = CASE WHEN $4::text = 'disconnected' THEN true WHEN $4::text = 'reconnected' THEN false
                                 ELSE alerted END
           WHERE device_id = $1""", device_id, ok, at, alert)
    return alert


def _last_seen(device: dict[str, Any]) -> datetime | None:
    seen = [t for t in (device["last_ok_at"], device["last_activity_at"]) if t is not None]
    return max(seen) if seen else None


def state_of(device: dict[str, Any], *, now: datetime, idle_minutes: float) -> State:
    if device["reachable"] is None:
        return "unknown"
    if not device["reachable"]:
        return "unreachable"
    if device["open_exams"]:
        return "in_exam"
    active = device["last_activity_at"]
    return "online" if active is not None and now - active <= timedelta(minutes=idle_minutes) else "idle"


async def board(conn: asyncpg.Connection, *, now: datetime, timezone: str, idle_minutes: float) -> list[dict[str, Any]]:
    """Every registered device with its state, last seen, today's exams and open maintenance."""
    midnight = now.astimezone(ZoneInfo(timezone)).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = await conn.fetch(
        """SELECT v.*,
                  (SELECT count(*) FROM exam_fact e WHERE e.station_ae_title = v.ae_title AND e.started_at >= $1)
                      AS today_exams,
                  (SELECT count(*) FROM exam_fact e WHERE e.station_ae_title = v.ae_title AND e.started_at >= $1
                      AND e.completed_at IS NULL) AS open_exams,
                  (SELECT to_jsonb(m) - 'device_id' FROM maintenance m WHERE m.device_id = v.device_id
                      AND m.started_at <= $2 AND (m.ended_at IS NULL OR m.ended_at > $2)
                    ORDER BY m.started_at DESC LIMIT 1) AS maintenance
           FROM device v ORDER BY v.device_id""", midnight.astimezone(UTC), now)
    out = []
    for r in rows:
        d = dict(r)
        d["state"] = state_of(d, now=now, idle_minutes=idle_minutes)
        d["last_seen_at"] = _last_seen(d)
        d["maintenance"] = json.loads(d["maintenance"]) if d["maintenance"] else None
        d["opens"], d["closes"] = d["opens"].isoformat("minutes"), d["closes"].isoformat("minutes")
        del d["open_exams"], d["alerted"]
        out.append(d)
    return out


async def add_maintenance(conn: asyncpg.Connection, device_id: str, *, kind: str, started_at: datetime,
                          ended_at: datetime | None, note: str, recorded_by: str) -> dict[str, Any]:
    if not await conn.fetchval("SELECT true FROM device WHERE device_id = $1", device_id):
        raise NotFound(f"no device {device_id}")
    row = await conn.fetchrow(
        "INSERT INTO maintenance (device_id, kind, started_at, ended_at, note, recorded_by) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING *", device_id, kind, started_at, ended_at, note, recorded_by)
    return dict(row)


async def maintenance_of(conn: asyncpg.Connection, device_id: str) -> list[dict[str, Any]]:
    if not await conn.fetchval("SELECT true FROM device WHERE device_id = $1", device_id):
        raise NotFound(f"no device {device_id}")
    return [dict(r) for r in await conn.fetch(
        "SELECT * FROM maintenance WHERE device_id = $1 ORDER BY started_at DESC", device_id)]
