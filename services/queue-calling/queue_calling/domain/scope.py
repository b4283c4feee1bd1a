"""Row locks that serialize changes a screen shows, and the record of what a change touched.

Every change first locks the rooms whose screens it alters, then the queues it reads or writes,
each set in sorted order, so concurrent changes never deadlock and a room's view version
(`room.view_seq`) orders its views exactly: the view computed under the lock at version v is the
state after the v-th change of that room.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg


@dataclass
class Change:
    """What one transaction did, for screens, announcements and notifications after commit."""

    rooms: set[str] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)
    announcements: list[dict[str, Any]] = field(default_factory=list)
    called: list[dict[str, Any]] = field(default_factory=list)  # entries called (patient notification)
    views: list[dict[str, Any]] = field(default_factory=list)  # filled by views.seal()
    # The rows as locked (fresh under the lock), so callers need not read them again.
    locked_rooms: dict[str, asyncpg.Record] = field(default_factory=dict)
    locked_queues: dict[str, asyncpg.Record] = field(default_factory=dict)

    def merge(self, other: Change) -> None:
        self.rooms |= other.rooms
        self.queues |= other.queues
        self.announcements += other.announcements
        self.called += other.called


async def rooms_serving(conn: asyncpg.Connection, queue_ids: Iterable[str]) -> set[str]:
    rows = await conn.fetch("SELECT DISTINCT room_id FROM room_queue WHERE queue_id = ANY($1::text[])", list(queue_ids))
    return {r["room_id"] for r in rows}


async def lock_scope(
    conn: asyncpg.Connection, *, queue_ids: Iterable[str], room_ids: Iterable[str] = (), change: Change | None = None
) -> Change:
    """Lock the rooms serving `queue_ids` (plus `room_ids`), then the queues; must run in a transaction."""
    change = change or Change()
    queues = set(queue_ids) - {None}  # type: ignore[arg-type]
    rooms = (await rooms_serving(conn, queues)) | {r for r in room_ids if r}
    new_rooms = rooms - change.rooms
    new_queues = queues - change.queues
    # Adding to a scope already held could break the sorted order; callers lock once, up front.
    for row in await conn.fetch("SELECT * FROM room WHERE room_id = ANY($1::text[]) ORDER BY room_id FOR UPDATE",
                                sorted(new_rooms)):
        change.locked_rooms[row["room_id"]] = row
    for row in await conn.fetch(
            "SELECT * FROM queue WHERE queue_id = ANY($1::text[]) ORDER BY queue_id FOR UPDATE", sorted(new_queues)):
        change.locked_queues[row["queue_id"]] = row
    change.rooms |= rooms
    change.queues |= queues
    return change
