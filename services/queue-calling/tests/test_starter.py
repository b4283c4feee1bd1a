"""Queue calling's part of the starter department: queues, rooms, placement rules and screens, added once;
an admin's room keeps its own queues (no rule sends its patients to a queue it does not call). Each test
rolls back: the session's database stays as the other tests expect it."""

from __future__ import annotations

import asyncpg
from imaging_common.starter import department
from imaging_testing import rolled_back_conn
from queue_calling.app import SERVICE
from queue_calling.domain import configuration, starter

conn = rolled_back_conn(SERVICE)  # each test in a transaction rolled back


async def test_loads_once_and_keeps_what_an_admin_configured(conn: asyncpg.Connection) -> None:
    dept = department()
    await configuration.put_queue(conn, queue_id="own-ct", name="本院CT队列", ticket_prefix="Z", policy={},
                                  skip_rule={"mode": "after_n", "n": 3}, avg_service_minutes=6)
    await configuration.put_room(conn, room_id="CT1", name="本院CT", door_cap=4, active=True, queue_ids=["own-ct"])
    rooms_before = {r["room_id"] for r in await configuration.list_rooms(conn)}

    first = await starter.load(conn, dept)

    assert set(first["rooms"].created) == {r.id for r in dept.rooms} - rooms_before
    assert "CT1" in first["rooms"].kept and "CT2" in first["rooms"].created
    rooms = {r["room_id"]: r for r in await configuration.list_rooms(conn)}
    assert (rooms["CT1"]["name"], rooms["CT1"]["queue_ids"], rooms["CT1"]["door_cap"]) == ("本院CT", ["own-ct"], 4)
    assert rooms["CT2"]["queue_ids"] == ["main-CT"] and rooms["CT3"]["queue_ids"] == ["east-CT"]
    rules = await configuration.list_rules(conn)
    assert not any(r["room_id"] == "CT1" and r["queue_id"] == "main-CT" for r in rules)  # CT1 does not call main-CT
    assert any(r["room_id"] == "CT2" and r["queue_id"] == "main-CT" for r in rules)
    assert any(r["modality"] == "CT" and r["room_id"] is None and r["queue_id"] == "main-CT" for r in rules)
    screens = {s["screen_id"]: s for s in await configuration.list_screens(conn)}
    assert screens["door-CT2"]["kind"] == "door" and screens["door-CT2"]["room_ids"] == ["CT2"]
    assert set(screens["east-hall"]["room_ids"]) == {"CT3", "DR3", "US3"} and len(screens["east-hall"]["token"]) >= 16
    queues = {q["queue_id"]: q for q in await configuration.list_queues(conn)}
    assert queues["main-US"]["name"] == "本部 超声 候诊" and queues["main-US"]["ticket_prefix"] == "U"

    second = await starter.load(conn, dept)
    for part in ("queues", "rooms", "placement_rules", "screens"):
        assert second[part].created == [], part
    assert set(second["screens"].kept) == {s.id for s in dept.screens}
    assert len(await configuration.list_rules(conn)) == len(rules)
