"""Scheduling's part of the starter department: rooms with hours and the exam catalogue, added once,
an admin's room and exam type kept as configured. Each test rolls back: the session's database stays as
the other tests expect it."""

from __future__ import annotations

from datetime import time

import asyncpg
from imaging_common.starter import department
from imaging_testing import rolled_back_conn
from scheduling.app import SERVICE
from scheduling.domain import configuration, starter

conn = rolled_back_conn(SERVICE)  # each test in a transaction rolled back


async def test_loads_once_and_keeps_what_an_admin_configured(conn: asyncpg.Connection) -> None:
    dept = department()
    await configuration.put_room(conn, id="CT1", name="本院CT（管理员）", modality="CT", campus="本部", building="",
                                 floor="", location="", route="", station_ae_title=None, capabilities=[],
                                 slice_minutes=15, active=True)
    await configuration.replace_sessions(conn, "CT1", [(1, time(9), time(10), "管理员")])
    await configuration.put_exam_type(conn, code="CT-HEAD", name="头颅CT（本院）", modality="CT", body_part="HEAD",
                                      duration_minutes=12, preparation_minutes=0, contrast="none", fasting=False,
                                      required_capabilities=[], preparation="")
    # An exam type made up from an order (auto_created) is the catalogue's to replace.
    await conn.execute("INSERT INTO exam_type (code, name, modality, duration_minutes, auto_created) "
                       "VALUES ('MR-KNEE', 'MR-KNEE', 'MR', 30, true) ON CONFLICT (code) DO NOTHING")
    rooms_before = {r["id"] for r in await configuration.rooms_by_id(conn)}
    types_before = {r["code"]: r["auto_created"] for r in await configuration.exam_types(conn)}

    first = await starter.load(conn, dept)

    assert set(first["rooms"].created) == {r.id for r in dept.rooms} - rooms_before
    assert "CT1" in first["rooms"].kept and "CT2" in first["rooms"].created
    assert set(first["exam_types"].kept) == {c for c, auto in types_before.items() if not auto} & {
        e.code for e in dept.exam_types}
    assert "CT-HEAD" in first["exam_types"].kept and "MR-KNEE" in first["exam_types"].created
    ct1 = await configuration.room(conn, "CT1")
    assert ct1 is not None and ct1["name"] == "本院CT（管理员）" and ct1["slice_minutes"] == 15
    hours = [s for s in await configuration.sessions(conn) if s["room_id"] == "CT1"]
    assert [(s["weekday"], s["starts"], s["label"]) for s in hours] == [(1, time(9), "管理员")]
    head = next(r for r in await configuration.exam_types(conn) if r["code"] == "CT-HEAD")
    assert head["name"] == "头颅CT（本院）" and head["duration_minutes"] == 12
    knee = next(r for r in await configuration.exam_types(conn) if r["code"] == "MR-KNEE")
    assert knee["name"] == "膝关节MR平扫" and not knee["auto_created"] and "金属" in knee["preparation"]
    ct2 = await configuration.room(conn, "CT2")
    assert ct2 is not None and ct2["campus"] == "本部" and ct2["modality"] == "CT"
    ct2_hours = {(s["weekday"], s["starts"], s["ends"]) for s in await configuration.sessions(conn)
                 if s["room_id"] == "CT2"}
    assert (1, time(8), time(12)) in ct2_hours and (5, time(13, 30), time(17, 30)) in ct2_hours
    assert not any(d == 7 for d, _, _ in ct2_hours)  # Sunday closed; the emergency CT1 of the starter is not
    enhanced = next(r for r in await configuration.exam_types(conn) if r["code"] == "CT-CHEST-C")
    assert enhanced["contrast"] == "iodinated" and enhanced["fasting"] and enhanced["required_capabilities"] == [
        "contrast"]

    second = await starter.load(conn, dept)
    assert second["rooms"].created == [] and set(second["rooms"].kept) == {r.id for r in dept.rooms}
    assert second["exam_types"].created == [] and set(second["exam_types"].kept) == {e.code for e in dept.exam_types}
