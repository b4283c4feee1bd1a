"""Critical values' part of the starter department: the items the migrations' dictionary lacks, published
once as a new version holding the current items; an item an admin changed or retired and the admin's
escalation chain are kept. Each test rolls back: the session's database stays as the other tests expect it."""

from __future__ import annotations

import asyncpg
from critical_values.app import SERVICE
from critical_values.domain import dictionary, escalation, starter
from imaging_common.starter import department
from imaging_testing import rolled_back_conn

conn = rolled_back_conn(SERVICE)  # each test in a transaction rolled back


async def test_loads_once_and_keeps_what_an_admin_configured(conn: asyncpg.Connection) -> None:
    dept = department()
    # The admin's edit: tension pneumothorax acknowledged within 5 minutes, the malignancy item retired
    # (left out of the version), a chain of their own.
    _, current = await dictionary.items(conn)
    edited = [{**{k: v for k, v in i.public().items() if k != "version"},
               **({"ack_minutes": 5.0} if i.code == "TPTX" else {})} for i in current if i.code != "MALIG"]
    await dictionary.publish_version(conn, new_items=edited, by="admin", note="本院调整")
    await escalation.set_chain(conn, [{"action": "phone-task", "after_minutes": 3}], by="admin")
    ever = {r["code"] for r in await conn.fetch("SELECT DISTINCT code FROM dictionary_item")}
    version_before = await dictionary.current_version(conn)

    first = await starter.load(conn, dept)

    assert set(first["dictionary_items"].created) == {i.code for i in dept.critical_items} - ever
    assert {"ABRUPT", "INTUS", "SAP"} <= set(first["dictionary_items"].created) | ever
    assert {"TPTX", "MALIG", "PE", "GIPERF", "AOD"} <= set(first["dictionary_items"].kept)
    version, items = await dictionary.items(conn)
    by_code = {i.code: i for i in items}
    assert version == version_before + (1 if first["dictionary_items"].created else 0)
    assert by_code["TPTX"].ack_minutes == 5.0  # the admin's deadline, not the starter's
    assert "MALIG" not in by_code  # retired by the admin: not added back
    assert by_code["ABRUPT"].name == "胎盘早剥" and by_code["ABRUPT"].modalities == ["US"]
    assert first["escalation_chain"].kept == ["default"]
    assert await escalation.chain(conn) == [{"action": "phone-task", "after_minutes": 3}]

    second = await starter.load(conn, dept)
    assert second["dictionary_items"].created == [] and second["escalation_chain"].created == []
    assert await dictionary.current_version(conn) == version


async def test_a_missing_chain_is_set(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM escalation_chain WHERE chain_id = 'default'")
    report = await starter.load(conn, department())
    assert report["escalation_chain"].created == ["default"]
    assert [s["action"] for s in await escalation.chain(conn)] == [
        "repeat", "backup-clinician", "phone-task", "department-head"]
