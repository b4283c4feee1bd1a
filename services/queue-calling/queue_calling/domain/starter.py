"""Queue calling's part of the starter department (imaging_common.starter): a waiting queue per modality
and campus, the rooms serving them (the ids scheduling books), placement rules sending a booked room's
exams to its queue (and exams without a room to the main campus' queue of their modality), a hall
screen per waiting area and a door screen per room. What an admin configured is kept as it is."""

from __future__ import annotations

import asyncpg
from imaging_common.starter import Department, Report, Tally

from queue_calling.domain import configuration, views
from queue_calling.domain.scope import Change

ROOM_RULE_RANK, WALK_IN_RANK = 100, 200  # a booked room's rule first, the modality's fallback after it


async def load(conn: asyncpg.Connection, department: Department) -> Report:
    queues, rooms, rules, screens = Tally(), Tally(), Tally(), Tally()
    change = Change()
    known_queues = {q["queue_id"] for q in await configuration.list_queues(conn)}
    for q in department.queues:
        if queues.add(q.id, q.id not in known_queues):
            change.merge(await configuration.put_queue(
                conn, queue_id=q.id, name=q.name, ticket_prefix=q.ticket_prefix, policy={},
                skip_rule={"mode": "after_n", "n": 3}, avg_service_minutes=q.avg_service_minutes))
    known_rooms = {r["room_id"] for r in await configuration.list_rooms(conn)}
    for room in department.rooms:
        served = [q.id for q in department.queues if room.id in q.rooms]
        if served and rooms.add(room.id, room.id not in known_rooms):
            change.merge(await configuration.put_room(conn, room_id=room.id, name=room.name, door_cap=room.door_cap,
                                                      active=True, queue_ids=served))
    # Where each room's exams wait, as configured now: a rule never sends a room's patients to a queue it does
    # not call (an admin's room of the same id keeps its own queues).
    serving = {r["room_id"]: set(r["queue_ids"]) for r in await configuration.list_rooms(conn)}
    existing = {_rule_key(r) for r in await configuration.list_rules(conn)}
    for q in department.queues:
        wanted = [{"rank": ROOM_RULE_RANK, "queue_id": q.id, "room_id": room_id} for room_id in q.rooms
                  if q.id in serving.get(room_id, set())]
        if q.walk_in and any(q.id in queue_ids for queue_ids in serving.values()):
            wanted.append({"rank": WALK_IN_RANK, "queue_id": q.id, "modality": q.modality})
        for rule in wanted:
            key = _rule_key(rule)
            if rules.add(f"{q.id}:{rule.get('room_id') or rule.get('modality')}", key not in existing):
                await configuration.add_rule(conn, **rule)
                existing.add(key)
    known_screens = {s["screen_id"] for s in await configuration.list_screens(conn)}
    for s in department.screens:
        shown = [room_id for room_id in s.rooms if room_id in serving]
        if shown and screens.add(s.id, s.id not in known_screens):
            await configuration.put_screen(conn, screen_id=s.id, kind=s.kind, title=s.title, room_ids=shown,
                                           layout={}, on_time=s.on_time, off_time=s.off_time,
                                           mask_rule={"mode": "middle"}, speech=True)
    await views.seal(conn, change)  # the new rooms' first views, as an admin's change would seal them
    return {"queues": queues, "rooms": rooms, "placement_rules": rules, "screens": screens}


def _rule_key(rule: dict[str, object]) -> tuple[object, ...]:
    """A placement rule by what it matches and where it sends (its rank aside): the same rule is not added twice."""
    return tuple(rule.get(k) for k in ("queue_id", "modality", "exam_code_prefix", "preparation", "room_id",
                                        "technologist"))
