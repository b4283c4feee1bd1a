"""Reporting's part of the starter department: templates and department phrases, added once; an admin's
template for the same exam and an admin's phrase of the same label are kept. Each test rolls back: the
session's database stays as the other tests expect it."""

from __future__ import annotations

import asyncpg
from imaging_common.starter import department
from imaging_testing import rolled_back_conn
from reporting.app import SERVICE
from reporting.domain import phrases, reports, starter, templates

conn = rolled_back_conn(SERVICE)  # each test in a transaction rolled back


async def test_loads_once_and_keeps_what_an_admin_configured(conn: asyncpg.Connection) -> None:
    dept = department()
    own = templates.TemplateCreate(id="own-chest-ct", name="本院胸部CT", modality="CT", body_part="CHEST")
    await templates.store(conn, own, "native", "admin")
    await phrases.add(conn, owner=None, department="放射科", modality="CT", section="impression",
                      label="胸部CT未见异常", text="本院写法：胸部CT未见异常。")
    ids_before = {r["id"] for r in await templates.listing(conn, None)}

    first = await starter.load(conn, dept)

    assert "starter-CT-CHEST" in first["templates"].kept  # the admin's chest CT template stands
    assert await templates.stored(conn, "starter-CT-CHEST") is None or "starter-CT-CHEST" in ids_before
    assert "starter-MR-KNEE" in first["templates"].created or "starter-MR-KNEE" in ids_before
    knee = await templates.stored(conn, "starter-MR-KNEE")
    assert knee is not None and knee["modality"] == "MR" and knee["body_part"] == "KNEE"
    definition = await reports.template_of(conn, "starter-MR-KNEE")
    side = definition.field("side")
    assert side is not None and side.laterality and side.required == "blocker"
    assert "CT/impression/胸部CT未见异常" in first["phrases"].kept
    mine = [r for r in await phrases.visible_to(conn, "someone", modality="CT", section="impression")
            if r["label"] == "胸部CT未见异常"]
    assert [r["text"] for r in mine] == ["本院写法：胸部CT未见异常。"]
    us = [r for r in await phrases.visible_to(conn, "someone", modality="US", section="findings")
          if r["label"] == "肝胆胰脾未见异常"]
    assert len(us) == 1 and us[0]["owner"] is None and "肝脏" in us[0]["text"]

    second = await starter.load(conn, dept)
    assert second["templates"].created == [] and second["phrases"].created == []
    assert set(second["phrases"].kept) == set(first["phrases"].kept) | set(first["phrases"].created)
