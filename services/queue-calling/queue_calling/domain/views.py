"""What screens show of a room (smart-imaging standard 6.2.2 (5), 6.3 (2), (4)).

A room view: name, number waiting, current patients (called to the door or in the exam) and the
next ones, with a version (`seq`) that orders views of one room. Views here carry full names;
screens mask them per their rule (masking.py) before anything leaves the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import asyncpg

from queue_calling.domain import priority
from queue_calling.domain.scope import Change

NEXT_SHOWN = 5  # next patients a view carries
CURRENT_SHOWN = 4  # most recent calls a view carries (a busy door may hold more)


def _person(row: asyncpg.Record, policy: dict[str, Any]) -> dict[str, Any]:
    level = row["priority_level"]
    flags = []
    if level >= int(policy["fairness_exempt"]):
        flags.append("urgent")
    elif level > 0:
        flags.append("priority")
    return {"ticket": row["ticket"], "name": row["patient_name"], "state": row["state"], "flags": flags,
            "queue_id": row["queue_id"]}


async def room_views(conn: asyncpg.Connection, room_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Current views of rooms (at their current view_seq)."""
    ids = sorted(set(room_ids))
    rooms = await conn.fetch("SELECT * FROM room WHERE room_id = ANY($1::text[]) ORDER BY room_id", ids)
    links = await conn.fetch(
        """SELECT rq.room_id, q.* FROM room_queue rq JOIN queue q USING (queue_id)
           WHERE rq.room_id = ANY($1::text[]) ORDER BY rq.room_id, rq.position, q.queue_id""", ids)
    queue_ids = sorted({r["queue_id"] for r in links})
    waiting_rows = await conn.fetch(
        "SELECT * FROM queue_entry WHERE queue_id = ANY($1::text[]) AND state = 'waiting'", queue_ids)
    current_rows = await conn.fetch(
        """SELECT * FROM queue_entry WHERE room_id = ANY($1::text[]) AND state IN ('called', 'in_exam')
           ORDER BY called_at DESC NULLS LAST""", ids)
    policies = {r["queue_id"]: priority.effective_policy(json.loads(r["policy"])) for r in links}
    views = []
    for room in rooms:
        rid = room["room_id"]
        qs = [r for r in links if r["room_id"] == rid]
        qids = {r["queue_id"] for r in qs}
        waiting = [w for w in waiting_rows if w["queue_id"] in qids]
        waiting.sort(key=lambda w: priority.ordering_key(
            priority.Candidate(w["entry_id"], w["priority_level"], w["on_time"], w["sort_key"]),
            policies[w["queue_id"]]))
        current = [c for c in current_rows if c["room_id"] == rid]
        views.append({
            "room_id": rid,
            "room_name": room["name"],
            "seq": room["view_seq"],
            "paused": bool(qs) and all(q["paused"] for q in qs),
            "queues": [{"queue_id": q["queue_id"], "name": q["name"], "paused": q["paused"]} for q in qs],
            "waiting": len(waiting),
            "current": [_person(c, policies.get(c["queue_id"], priority.DEFAULT_POLICY))
                        for c in current[:CURRENT_SHOWN]],
            "next": [_person(w, policies[w["queue_id"]]) for w in waiting[:NEXT_SHOWN]],
        })
    return views


async def seal(conn: asyncpg.Connection, change: Change) -> Change:
    """Last step of a change, inside its transaction: bump the rooms' versions and take their views."""
    if change.rooms:
        await conn.execute("UPDATE room SET view_seq = view_seq + 1 WHERE room_id = ANY($1::text[])",
                           sorted(change.rooms))
        change.views = await room_views(conn, change.rooms)
    return change


async def number_ahead(conn: asyncpg.Connection, queue_id: str) -> tuple[list[tuple[asyncpg.Record, int]], float, int]:
    """Each waiting entry of a queue with how many are ahead; the queue's minutes per patient; rooms serving it."""
    q = await conn.fetchrow("SELECT * FROM queue WHERE queue_id = $1", queue_id)
    policy = priority.effective_policy(json.loads(q["policy"]))
    rows = await conn.fetch("SELECT * FROM queue_entry WHERE queue_id = $1 AND state = 'waiting'", queue_id)
    ordered = sorted(rows, key=lambda w: priority.ordering_key(
        priority.Candidate(w["entry_id"], w["priority_level"], w["on_time"], w["sort_key"]), policy))
    rooms = await conn.fetchval("SELECT count(*) FROM room_queue rq JOIN room r USING (room_id) "
                                "WHERE rq.queue_id = $1 AND r.active", queue_id)
    return [(row, i) for i, row in enumerate(ordered)], await minutes_per_patient(conn, q), max(1, int(rooms))


async def minutes_per_patient(conn: asyncpg.Connection, queue: asyncpg.Record) -> float:
    """Room time per patient (called -> finished): the median of the queue's last 20 recent exams
    once there are 5 of them, else the configured `avg_service_minutes`."""
    observed = await conn.fetchval(
        """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY minutes) FROM (
               SELECT extract(epoch FROM finished_at - called_at) / 60 AS minutes FROM queue_entry
               WHERE queue_id = $1 AND state = 'done' AND called_at IS NOT NULL
                 AND finished_at > now() - interval '4 hours'
               ORDER BY finished_at DESC LIMIT 20) recent
           HAVING count(*) >= 5""", queue["queue_id"])
    return float(observed) if observed is not None else float(queue["avg_service_minutes"])


def estimated_wait_minutes(ahead: int, minutes_per_patient: float, rooms: int) -> float:
    return round(ahead * minutes_per_patient / max(1, rooms), 1)


# ---- a calling terminal's view ---------------------------------------------------------------------

async def terminal_room(conn: asyncpg.Connection, room_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT room_id, name, door_cap FROM room WHERE room_id = $1", room_id)


async def room_queues(conn: asyncpg.Connection, room_id: str) -> list[asyncpg.Record]:
    """The queues a room calls from, in the room's order."""
    return await conn.fetch("""SELECT q.queue_id, q.name, q.paused FROM room_queue rq JOIN queue q USING (queue_id)
                               WHERE rq.room_id = $1 ORDER BY rq.position, q.queue_id""", room_id)


async def called_entries(conn: asyncpg.Connection, queue_id: str) -> list[asyncpg.Record]:
    """A queue's entries past waiting (called, skipped, in the exam), the latest called first."""
    return await conn.fetch(
        """SELECT * FROM queue_entry WHERE queue_id = $1 AND state IN ('called', 'skipped', 'in_exam')
           ORDER BY called_at DESC NULLS LAST, sort_key""", queue_id)
