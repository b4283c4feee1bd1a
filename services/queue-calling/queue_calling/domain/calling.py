"""Terminal actions (smart-imaging standard 6.2.2 (3)-(4)): call next (顺呼), recall (重呼),
skip (跳呼/过号), select-call (选呼), transfer, manual reorder, status changes; cross-queue
round-robin calling for a room serving several queues, a cap of patients staged at the door.

Each action runs in the caller's transaction: it locks its scope (scope.lock_scope), re-reads the
entry under the lock and changes it through entries.transition, whose SQL guard refuses a second
terminal acting on a patient already taken.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from queue_calling.domain import entries, priority
from queue_calling.domain.errors import Conflict, Invalid, NotFound
from queue_calling.domain.scope import Change, lock_scope
from queue_calling.domain.states import Action, State


@dataclass(frozen=True)
class Who:
    actor: str  # username of the staff member, or "system"
    terminal: str | None = None


SKIP_MODES = ("after_n", "end_of_session", "end_of_slice")


def check_skip_rule(rule: dict[str, Any]) -> dict[str, Any]:
    mode = rule.get("mode")
    if mode not in SKIP_MODES:
        raise Invalid(f"skip rule mode must be one of {', '.join(SKIP_MODES)}")
    if mode == "after_n" and int(rule.get("n", 0)) < 1:
        raise Invalid("skip rule after_n needs n >= 1")
    if mode == "end_of_slice" and float(rule.get("slice_minutes", 30)) <= 0:
        raise Invalid("skip rule end_of_slice needs slice_minutes > 0")
    return rule


def _slice_end(now: datetime, minutes: float) -> datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (now - day).total_seconds()
    step = minutes * 60
    return day + timedelta(seconds=(math.floor(elapsed / step) + 1) * step)


async def _room(conn: asyncpg.Connection, room_id: str) -> asyncpg.Record:
    room = await conn.fetchrow("SELECT * FROM room WHERE room_id = $1", room_id)
    if room is None:
        raise NotFound(f"no room {room_id}")
    return room


async def _room_queue_ids(conn: asyncpg.Connection, room_id: str) -> list[str]:
    rows = await conn.fetch("SELECT queue_id FROM room_queue WHERE room_id = $1 ORDER BY position, queue_id", room_id)
    return [r["queue_id"] for r in rows]


async def _check_door(conn: asyncpg.Connection, room: asyncpg.Record) -> None:
    staged = await conn.fetchval("SELECT count(*) FROM queue_entry WHERE room_id = $1 AND state = 'called'",
                                 room["room_id"])
    if staged >= room["door_cap"]:
        raise Conflict(f"{staged} patient(s) already called to {room['name']} (cap {room['door_cap']}); "
                       "start or skip one first")


def _announce(change: Change, row: asyncpg.Record, room: asyncpg.Record, *, recall: bool = False) -> None:
    item = {"entry_id": str(row["entry_id"]), "ticket": row["ticket"], "name": row["patient_name"],
            "room_id": room["room_id"], "room_name": room["name"], "queue_id": row["queue_id"], "recall": recall,
            "call_count": row["call_count"]}
    change.announcements.append(item)
    change.called.append(item)


async def return_due_skipped(conn: asyncpg.Connection, queue: asyncpg.Record, now: datetime, *,
                             queue_empty: bool) -> int:
    """Bring passed patients back to waiting when their queue's skip rule says so."""
    rule = json.loads(queue["skip_rule"])
    mode = rule.get("mode")
    args: tuple[Any, ...]
    if mode == "after_n":
        cond, args = "return_at_seq <= $2", (queue["call_seq"],)
    elif mode == "end_of_slice":
        cond, args = "return_at <= $2", (now,)
    elif mode == "end_of_session" and queue_empty:
        cond, args = "true", ()
    else:
        return 0
    rows = await conn.fetch(
        f"SELECT * FROM queue_entry WHERE queue_id = $1 AND state = 'skipped' AND {cond} ORDER BY sort_key",
        queue["queue_id"], *args)
    for row in rows:
        await entries.transition(conn, row, Action.RETURN, actor="system",
                                 terminal=None, set_sql="return_at_seq = NULL, return_at = NULL",
                                 detail={"rule": mode})
    return len(rows)


async def _candidates(conn: asyncpg.Connection, queue_id: str,
                      rows: dict[Any, asyncpg.Record]) -> list[priority.Candidate]:
    """Waiting entries of a queue as candidates; their full rows go into `rows` (read under the queue lock)."""
    found = await conn.fetch("SELECT * FROM queue_entry WHERE queue_id = $1 AND state = 'waiting'", queue_id)
    rows.update((r["entry_id"], r) for r in found)
    return [priority.Candidate(r["entry_id"], r["priority_level"], r["on_time"], r["sort_key"]) for r in found]


async def _mark_called(conn: asyncpg.Connection, entry: asyncpg.Record, room: asyncpg.Record, who: Who,
                       now: datetime, mode: str) -> asyncpg.Record:
    return await entries.transition(
        conn, entry, Action.CALL, actor=who.actor, terminal=who.terminal,
        set_sql="room_id = $4, call_count = call_count + 1, called_at = $5, "
                "first_called_at = coalesce(first_called_at, $5), return_at_seq = NULL, return_at = NULL",
        args=(room["room_id"], now), detail={"mode": mode}, room_id=room["room_id"],
    )


Result = tuple[dict[str, Any], Change]


async def call_next(conn: asyncpg.Connection, *, room_id: str, who: Who, now: datetime) -> Result:
    """顺呼: the next patient for this room; round robin over its queues, emergencies first."""
    queue_ids = await _room_queue_ids(conn, room_id)
    if not queue_ids:
        await _room(conn, room_id)  # 404 for an unknown room
        raise Conflict(f"room {room_id} serves no queue")
    change = await lock_scope(conn, queue_ids=queue_ids, room_ids=[room_id])
    room = change.locked_rooms[room_id]
    await _check_door(conn, room)
    queues = change.locked_queues
    # Round robin starts after the queue called last, over the queues that are not paused.
    n = len(queue_ids)
    order = [(room["rr_cursor"] + 1 + i) % n for i in range(n)]
    options: list[tuple[int, str, priority.Candidate, list[priority.Candidate], dict[str, Any]]] = []
    rows: dict[Any, asyncpg.Record] = {}
    for rank, idx in enumerate(order):
        q = queues[queue_ids[idx]]
        if q["paused"]:
            continue
        waiting = await _candidates(conn, q["queue_id"], rows)
        if await return_due_skipped(conn, q, now, queue_empty=not waiting):
            waiting = await _candidates(conn, q["queue_id"], rows)
        policy = priority.effective_policy(json.loads(q["policy"]))
        chosen = priority.choose_next(waiting, policy, q["priority_streak"])
        if chosen is not None:
            options.append((rank, q["queue_id"], chosen, waiting, policy))
    if not options:
        raise Conflict("nobody is waiting in the queues of this room" +
                       (" (some queues are paused)" if any(q["paused"] for q in queues.values()) else ""))
    # An exempt (emergency) patient in any queue goes before the round robin's turn.
    exempt = [o for o in options if o[2].priority_level >= int(o[4]["fairness_exempt"])]
    rank, queue_id, chosen, waiting, policy = (
        max(exempt, key=lambda o: (o[2].priority_level, -o[0])) if exempt else options[0])
    row = await _mark_called(conn, rows[chosen.entry_id], room, who, now, "next")
    q = queues[queue_id]
    normal_waiting = any(c.priority_level == 0 for c in waiting)
    await conn.execute(
        "UPDATE queue SET priority_streak = $2, call_seq = call_seq + 1 WHERE queue_id = $1",
        queue_id, priority.next_streak(chosen, q["priority_streak"], normal_waiting, policy))
    await conn.execute("UPDATE room SET rr_cursor = $2 WHERE room_id = $1", room_id, queue_ids.index(queue_id))
    _announce(change, row, room)
    return dict(row), change


async def _entry_in_scope(conn: asyncpg.Connection, entry_id: Any, *, extra_queues: tuple[str, ...] = (),
                          extra_rooms: tuple[str, ...] = ()) -> tuple[asyncpg.Record, Change]:
    """Lock the scope of an entry, then re-read it (its queue may have changed while we waited)."""
    for _ in range(3):
        entry = await entries.get_entry(conn, entry_id)
        change = await lock_scope(conn, queue_ids=(entry["queue_id"], *extra_queues),
                                  room_ids=(entry["room_id"], *extra_rooms))
        fresh = await entries.get_entry(conn, entry_id, lock=True)
        if fresh["queue_id"] == entry["queue_id"] and fresh["room_id"] in change.rooms | {None}:
            return fresh, change
    raise Conflict("the entry keeps moving; try again")


async def select_call(conn: asyncpg.Connection, *, entry_id: Any, room_id: str, who: Who,
                      now: datetime) -> tuple[dict[str, Any], Change]:
    """选呼: call this patient now, to this room (which must serve the patient's queue)."""
    await _room(conn, room_id)
    entry, change = await _entry_in_scope(conn, entry_id, extra_rooms=(room_id,))
    if room_id not in await conn.fetchval(
            "SELECT coalesce(array_agg(room_id), '{}') FROM room_queue WHERE queue_id = $1", entry["queue_id"]):
        raise Conflict(f"room {room_id} does not serve queue {entry['queue_id']}; transfer the patient first")
    room = await _room(conn, room_id)
    await _check_door(conn, room)
    row = await _mark_called(conn, entry, room, who, now, "select")
    await conn.execute("UPDATE queue SET call_seq = call_seq + 1 WHERE queue_id = $1", entry["queue_id"])
    _announce(change, row, room)
    return dict(row), change


async def recall(conn: asyncpg.Connection, *, entry_id: Any, who: Who, now: datetime) -> tuple[dict[str, Any], Change]:
    """重呼: announce a called patient again."""
    entry, change = await _entry_in_scope(conn, entry_id)
    row = await entries.transition(conn, entry, Action.RECALL, actor=who.actor, terminal=who.terminal,
                                   set_sql="call_count = call_count + 1, called_at = $4", args=(now,))
    _announce(change, row, await _room(conn, row["room_id"]), recall=True)
    return dict(row), change


async def skip(conn: asyncpg.Connection, *, entry_id: Any, who: Who, now: datetime) -> tuple[dict[str, Any], Change]:
    """跳呼/过号: pass a patient who is not here; the queue's skip rule decides when they come back."""
    entry, change = await _entry_in_scope(conn, entry_id)
    q = await conn.fetchrow("SELECT * FROM queue WHERE queue_id = $1", entry["queue_id"])
    rule = json.loads(q["skip_rule"])
    return_seq = q["call_seq"] + int(rule.get("n", 3)) if rule.get("mode") == "after_n" else None
    return_at = _slice_end(now, float(rule.get("slice_minutes", 30))) if rule.get("mode") == "end_of_slice" else None
    row = await entries.transition(
        conn, entry, Action.SKIP, actor=who.actor, terminal=who.terminal,
        set_sql="skip_count = skip_count + 1, return_at_seq = $4, return_at = $5",
        args=(return_seq, return_at), detail={"rule": rule, "return_at_seq": return_seq, "return_at": return_at})
    return dict(row), change


async def _simple(conn: asyncpg.Connection, action: Action, entry_id: Any, who: Who, set_sql: str = "",
                  args: tuple[Any, ...] = (), detail: dict[str, Any] | None = None) -> tuple[dict[str, Any], Change]:
    entry, change = await _entry_in_scope(conn, entry_id)
    row = await entries.transition(conn, entry, action, actor=who.actor, terminal=who.terminal,
                                   set_sql=set_sql, args=args, detail=detail)
    return dict(row), change


async def restore(conn: asyncpg.Connection, *, entry_id: Any, who: Who) -> tuple[dict[str, Any], Change]:
    """Put a passed, called or cancelled patient back to waiting (keeping their place by arrival)."""
    return await _simple(conn, Action.RESTORE, entry_id, who, "return_at_seq = NULL, return_at = NULL")


async def start(conn: asyncpg.Connection, *, entry_id: Any, who: Who, now: datetime,
                room_id: str | None = None) -> tuple[dict[str, Any], Change]:
    entry, change = await _entry_in_scope(conn, entry_id, extra_rooms=(room_id,) if room_id else ())
    row = await entries.transition(conn, entry, Action.START, actor=who.actor, terminal=who.terminal,
                                   set_sql="started_at = $4, room_id = coalesce($5, room_id)", args=(now, room_id))
    return dict(row), change


async def finish(conn: asyncpg.Connection, *, entry_id: Any, who: Who, now: datetime) -> tuple[dict[str, Any], Change]:
    return await _simple(conn, Action.FINISH, entry_id, who, "finished_at = $4", (now,))


async def cancel(conn: asyncpg.Connection, *, entry_id: Any, who: Who, reason: str) -> tuple[dict[str, Any], Change]:
    return await _simple(conn, Action.CANCEL, entry_id, who, detail={"reason": reason})


async def transfer(conn: asyncpg.Connection, *, entry_id: Any, to_queue_id: str, who: Who,
                   reason: str | None = None) -> tuple[dict[str, Any], Change]:
    """Move a patient to another queue (another room's), keeping ticket, arrival order and history."""
    if not await conn.fetchval("SELECT true FROM queue WHERE queue_id = $1", to_queue_id):
        raise NotFound(f"no queue {to_queue_id}")
    entry, change = await _entry_in_scope(conn, entry_id, extra_queues=(to_queue_id,))
    if entry["queue_id"] == to_queue_id:
        raise Conflict("the patient is already in that queue")
    row = await entries.transition(
        conn, entry, Action.TRANSFER, actor=who.actor, terminal=who.terminal,
        set_sql="queue_id = $4, room_id = NULL, return_at_seq = NULL, return_at = NULL", args=(to_queue_id,),
        detail={"from_queue": entry["queue_id"], "to_queue": to_queue_id, "from_room": entry["room_id"],
                "reason": reason})
    return dict(row), change


async def reorder(conn: asyncpg.Connection, *, entry_id: Any, before_entry_id: Any, who: Who) -> Result:
    """Manual reorder: place the patient just before another waiting patient of the same queue."""
    entry, change = await _entry_in_scope(conn, entry_id)
    other = await entries.get_entry(conn, before_entry_id)
    if (other["queue_id"] != entry["queue_id"] or other["state"] != State.WAITING
            or other["entry_id"] == entry["entry_id"]):
        raise Conflict("reorder needs another waiting patient of the same queue")
    prev = await conn.fetchval(
        """SELECT max(sort_key) FROM queue_entry WHERE queue_id = $1 AND state = 'waiting' AND entry_id <> $2
           AND priority_level = $3 AND on_time = $4 AND sort_key < $5""",
        entry["queue_id"], entry["entry_id"], other["priority_level"], other["on_time"], other["sort_key"])
    key = (prev + other["sort_key"]) / 2 if prev is not None else other["sort_key"] - 1.0
    # Taking the level and on-time mark of the patient it goes before puts it exactly there in the order.
    row = await entries.transition(
        conn, entry, Action.REORDER, actor=who.actor, terminal=who.terminal,
        set_sql="sort_key = $4, priority_level = $5, on_time = $6",
        args=(key, other["priority_level"], other["on_time"]),
        detail={"before": str(other["entry_id"]), "old_level": entry["priority_level"],
                "old_sort_key": entry["sort_key"]})
    return dict(row), change


async def set_paused(conn: asyncpg.Connection, *, queue_id: str, paused: bool, who: Who) -> Change:
    change = await lock_scope(conn, queue_ids=[queue_id])
    done = await conn.fetchval("UPDATE queue SET paused = $2 WHERE queue_id = $1 RETURNING true", queue_id, paused)
    if not done:
        raise NotFound(f"no queue {queue_id}")
    return change


async def live_entry_by_accession(conn: asyncpg.Connection, accession_number: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM queue_entry WHERE accession_number = $1 AND state NOT IN ('done', 'cancelled')",
        accession_number)
