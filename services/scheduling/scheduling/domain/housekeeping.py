"""Work that time triggers: holds expire, reminders go out before appointments, and appointments
long past their end without an arrival become no-shows. Safe to run in every replica at once:
rows are claimed with FOR UPDATE SKIP LOCKED, and each appointment is reminded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from imaging_common import events
from imaging_common.events.types import AppointmentReminder

from scheduling.domain import appointments, booking
from scheduling.domain.states import Action


@dataclass(frozen=True)
class Housekeeping:
    reminder_hours: float = 24.0  # remind this long before the start; e.g. 24
    no_show_after_minutes: int | None = 120  # booked, never arrived, this long after the end: a no-show


async def send_reminders(conn: asyncpg.Connection, s: booking.Scheduler, hk: Housekeeping, *, limit: int = 200) -> int:
    now = s.now()
    async with conn.transaction():
        ids = await conn.fetch(
            """SELECT id::text AS id FROM appointment
                WHERE status = 'booked' AND reminded_at IS NULL AND lower(during) > $1 AND lower(during) <= $2
                ORDER BY lower(during) LIMIT $3 FOR UPDATE SKIP LOCKED""",
            now,
            now + timedelta(hours=hk.reminder_hours),
            limit,
        )
        for r in ids:
            a = await appointments.get(conn, r["id"])
            assert a is not None
            await events.publish(
                conn,
                AppointmentReminder(appointment=appointments.info(a), preparation=a["preparation"] or None),
                source=booking.SOURCE,
                subject=a["id"],
            )
            await conn.execute("UPDATE appointment SET reminded_at = $2 WHERE id = $1::uuid", r["id"], now)
        return len(ids)


async def record_no_shows(conn: asyncpg.Connection, s: booking.Scheduler, hk: Housekeeping, *, limit: int = 200) -> int:
    if hk.no_show_after_minutes is None:
        return 0
    now = s.now()
    rows = await conn.fetch(
        "SELECT id::text AS id FROM appointment WHERE status = 'booked' AND upper(during) < $1 "
        "ORDER BY lower(during) LIMIT $2",
        now - timedelta(minutes=hk.no_show_after_minutes),
        limit,
    )
    done = 0
    for r in rows:
        try:
            await booking.transition(
                conn, s, r["id"], Action.NO_SHOW, actor=booking.SYSTEM, reason="did not arrive (recorded automatically)"
            )
            done += 1
        except booking.InvalidTransition:
            continue  # another replica or the desk got there first
    return done


async def run_once(pool: asyncpg.Pool, s: booking.Scheduler, hk: Housekeeping) -> dict[str, int]:
    async with pool.acquire() as conn:
        async with conn.transaction():
            expired = await booking.expire_holds(conn, s.now())
        reminded = await send_reminders(conn, s, hk)
        no_shows = await record_no_shows(conn, s, hk)
    return {"expired": expired, "reminded": reminded, "no_shows": no_shows}
