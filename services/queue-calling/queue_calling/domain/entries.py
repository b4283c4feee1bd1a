"""Queue entries: reading them, guarded state changes, and their operation log."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from queue_calling.domain.errors import Conflict, NotFound
from queue_calling.domain.states import Action, InvalidTransition, State, next_state, sources


async def get_entry(conn: asyncpg.Connection, entry_id: Any, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT * FROM queue_entry WHERE entry_id = $1" + (" FOR UPDATE" if lock else ""), entry_id
    )
    if row is None:
        raise NotFound(f"no queue entry {entry_id}")
    return row


async def log(
    conn: asyncpg.Connection, *, entry_id: Any, action: Action | str, from_state: str | None, to_state: str,
    actor: str, terminal: str | None = None, queue_id: str | None = None, room_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO entry_log (entry_id, action, from_state, to_state, actor, terminal, queue_id, room_id, detail)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)""",
        entry_id, str(action), from_state, to_state, actor, terminal, queue_id, room_id,
        json.dumps(dict(detail or {}), default=str, ensure_ascii=False),
    )


async def transition(
    conn: asyncpg.Connection, entry: asyncpg.Record, action: Action, *, actor: str, terminal: str | None,
    set_sql: str = "", args: tuple[Any, ...] = (), detail: Mapping[str, Any] | None = None,
    room_id: str | None = None,
) -> asyncpg.Record:
    """Apply `action` to an entry with the state guard in SQL, log it, and return the new row.

    The UPDATE only matches while the entry is still in a state the action may start from, so
    when two terminals act on one patient, the second finds no row and is refused.
    """
    allowed = sources(action)
    target = State(entry["state"])
    new_state = next_state(target, action) if entry["state"] in allowed else None
    if new_state is None:
        raise InvalidTransition(entry["state"], action)
    extra = (", " + set_sql) if set_sql else ""
    row = await conn.fetchrow(
        f"""UPDATE queue_entry SET state = $2, version = version + 1{extra}
            WHERE entry_id = $1 AND state = ANY($3::text[]) AND version = ${len(args) + 4}
            RETURNING *""",
        entry["entry_id"], str(new_state), allowed, *args, entry["version"],
    )
    if row is None:
        current = await conn.fetchval("SELECT state FROM queue_entry WHERE entry_id = $1", entry["entry_id"])
        if current in allowed:
            raise Conflict("the entry was changed by another terminal; reload and try again")
        raise InvalidTransition(current, action)
    await log(
        conn, entry_id=row["entry_id"], action=action, from_state=entry["state"], to_state=row["state"],
        actor=actor, terminal=terminal, queue_id=row["queue_id"], room_id=room_id or row["room_id"], detail=detail,
    )
    return row


async def entry_log(conn: asyncpg.Connection, entry_id: Any) -> list[dict[str, Any]]:
    await get_entry(conn, entry_id)
    rows = await conn.fetch("SELECT * FROM entry_log WHERE entry_id = $1 ORDER BY log_id", entry_id)
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


def public_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """An entry as terminals see it (staff only: full name, exam, categories)."""
    out = dict(row)
    out["entry_id"] = str(out["entry_id"])
    if isinstance(out.get("special"), str):
        out["special"] = json.loads(out["special"])
    out["priority_reasons"] = list(out.get("priority_reasons") or [])
    return out
