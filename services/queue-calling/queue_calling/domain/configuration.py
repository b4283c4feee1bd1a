"""Central configuration of rooms, queues, placement rules and screens (smart-imaging standard 6.2.2 (4), (7))."""

from __future__ import annotations

import json
import secrets
from datetime import time
from typing import Any

import asyncpg

from queue_calling.domain.calling import check_skip_rule
from queue_calling.domain.errors import Invalid, NotFound
from queue_calling.domain.scope import Change, lock_scope


async def put_room(conn: asyncpg.Connection, *, room_id: str, name: str, door_cap: int, active: bool,
                   queue_ids: list[str]) -> Change:
    """Create or replace a room and the queues it serves (in calling order)."""
    missing = set(queue_ids) - {r["queue_id"] for r in await conn.fetch(
        "SELECT queue_id FROM queue WHERE queue_id = ANY($1::text[])", queue_ids)}
    if missing:
        raise Invalid(f"unknown queue(s): {', '.join(sorted(missing))}")
    await conn.execute(
        """INSERT INTO room (room_id, name, door_cap, active) VALUES ($1, $2, $3, $4)
           ON CONFLICT (room_id) DO UPDATE SET name = $2, door_cap = $3, active = $4""",
        room_id, name, door_cap, active)
    change = await lock_scope(conn, queue_ids=queue_ids, room_ids=[room_id])
    await conn.execute("DELETE FROM room_queue WHERE room_id = $1", room_id)
    for pos, qid in enumerate(queue_ids):
        await conn.execute("INSERT INTO room_queue (room_id, queue_id, position) VALUES ($1, $2, $3)",
                           room_id, qid, pos)
    await conn.execute("UPDATE room SET rr_cursor = -1 WHERE room_id = $1", room_id)
    return change


async def put_queue(conn: asyncpg.Connection, *, queue_id: str, name: str, ticket_prefix: str,
                    policy: dict[str, Any], skip_rule: dict[str, Any], avg_service_minutes: float) -> Change:
    check_skip_rule(skip_rule)
    change = await lock_scope(conn, queue_ids=[queue_id])
    await conn.execute(
        """INSERT INTO queue (queue_id, name, ticket_prefix, policy, skip_rule, avg_service_minutes)
           VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6)
           ON CONFLICT (queue_id) DO UPDATE SET name = $2, ticket_prefix = $3, policy = $4::jsonb,
           skip_rule = $5::jsonb, avg_service_minutes = $6""",
        queue_id, name, ticket_prefix, json.dumps(policy), json.dumps(skip_rule), avg_service_minutes)
    return change


async def list_queues(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT q.*, coalesce((SELECT array_agg(room_id ORDER BY room_id) FROM room_queue rq
                                 WHERE rq.queue_id = q.queue_id), '{}') AS room_ids
           FROM queue q ORDER BY queue_id""")
    return [{**dict(r), "policy": json.loads(r["policy"]), "skip_rule": json.loads(r["skip_rule"]),
             "avg_service_minutes": float(r["avg_service_minutes"]), "room_ids": list(r["room_ids"])} for r in rows]


async def list_rooms(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT r.*, coalesce((SELECT array_agg(queue_id ORDER BY position, queue_id) FROM room_queue rq
                                 WHERE rq.room_id = r.room_id), '{}') AS queue_ids
           FROM room r ORDER BY room_id""")
    return [{**dict(r), "queue_ids": list(r["queue_ids"])} for r in rows]


async def add_rule(conn: asyncpg.Connection, **fields: Any) -> int:
    if not await conn.fetchval("SELECT true FROM queue WHERE queue_id = $1", fields["queue_id"]):
        raise Invalid(f"unknown queue {fields['queue_id']}")
    return int(await conn.fetchval(
        """INSERT INTO placement_rule (rank, queue_id, modality, exam_code_prefix, preparation, room_id, technologist)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING rule_id""",
        fields.get("rank", 100), fields["queue_id"], fields.get("modality"), fields.get("exam_code_prefix"),
        fields.get("preparation"), fields.get("room_id"), fields.get("technologist")))


async def list_rules(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch("SELECT * FROM placement_rule ORDER BY rank, rule_id")]


async def delete_rule(conn: asyncpg.Connection, rule_id: int) -> None:
    if await conn.execute("DELETE FROM placement_rule WHERE rule_id = $1", rule_id) == "DELETE 0":
        raise NotFound(f"no placement rule {rule_id}")


SCREEN_KINDS = ("hall", "door")


async def put_screen(conn: asyncpg.Connection, *, screen_id: str, kind: str, title: str, room_ids: list[str],
                     layout: dict[str, Any], on_time: time | None, off_time: time | None,
                     mask_rule: dict[str, Any], speech: bool, token: str | None = None) -> dict[str, Any]:
    if kind not in SCREEN_KINDS:
        raise Invalid("screen kind must be hall or door")
    if kind == "door" and len(room_ids) != 1:
        raise Invalid("a door screen shows exactly one room")
    if mask_rule.get("mode", "middle") not in ("middle", "keep_first", "none"):
        raise Invalid("mask_rule.mode must be middle, keep_first or none")
    known = {r["room_id"] for r in await conn.fetch("SELECT room_id FROM room WHERE room_id = ANY($1::text[])",
                                                    room_ids)}
    if set(room_ids) - known:
        raise Invalid(f"unknown room(s): {', '.join(sorted(set(room_ids) - known))}")
    row = await conn.fetchrow(
        """INSERT INTO screen (screen_id, token, kind, title, room_ids, layout, on_time, off_time, mask_rule, speech)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9::jsonb, $10)
           ON CONFLICT (screen_id) DO UPDATE SET kind = $3, title = $4, room_ids = $5, layout = $6::jsonb,
             on_time = $7, off_time = $8, mask_rule = $9::jsonb, speech = $10,
             token = CASE WHEN $11 THEN $2 ELSE screen.token END, updated_at = now()
           RETURNING *""",
        screen_id, token or secrets.token_urlsafe(24), kind, title, room_ids, json.dumps(layout), on_time, off_time,
        json.dumps(mask_rule), speech, token is not None)
    return screen_dict(row)


def screen_dict(row: asyncpg.Record) -> dict[str, Any]:
    d = dict(row)
    d["layout"] = json.loads(d["layout"])
    d["mask_rule"] = json.loads(d["mask_rule"])
    d["room_ids"] = list(d["room_ids"])
    return d


async def get_screen(conn: asyncpg.Connection, screen_id: str) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM screen WHERE screen_id = $1", screen_id)
    if row is None:
        raise NotFound(f"no screen {screen_id}")
    return screen_dict(row)


async def list_screens(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [screen_dict(r) for r in await conn.fetch("SELECT * FROM screen ORDER BY screen_id")]
