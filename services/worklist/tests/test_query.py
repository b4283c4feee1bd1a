"""Worklist matching in SQL: wildcards by character, PN groups, case, ranges, lists; index use."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
from imaging_common.dicom import combined_datetime_range
from worklist.domain.query import StepQuery, explain, find_steps

from .conftest import World


async def names(w: World, **criteria: object) -> list[str]:
    rows = await find_steps(w.conn, StepQuery(station_ae_title=w.station, **criteria))  # type: ignore[arg-type]
    return sorted(r["patient_name"] for r in rows)


async def test_person_name_groups_wildcards_and_case(world: World) -> None:
    await world.step(1, patient_name="ZHANG^SAN=张^三")
    await world.step(2, patient_name="张三丰")  # Han characters in the first group, as many modalities do
    await world.step(3, patient_name="Smith^John")
    await world.step(4, patient_name="WANG^WU=王^五=wang^wu")
    assert await names(world, patient_name="张*") == ["ZHANG^SAN=张^三", "张三丰"]
    assert await names(world, patient_name="zhang*") == ["ZHANG^SAN=张^三"]
    assert await names(world, patient_name="SMITH^JOHN") == ["Smith^John"]  # Latin: case-insensitive
    assert await names(world, patient_name="张?") == []  # 张^三 has a caret; 张三丰 has 3 characters
    assert await names(world, patient_name="张?丰") == ["张三丰"]  # ? is one character, not one byte
    assert await names(world, patient_name="张??") == ["ZHANG^SAN=张^三", "张三丰"]
    assert await names(world, patient_name="张^?") == ["ZHANG^SAN=张^三"]
    assert await names(world, patient_name="ZHANG*=张*") == ["ZHANG^SAN=张^三"]  # both groups must match
    assert await names(world, patient_name="ZHANG*=王*") == []
    assert await names(world, patient_name="=王^五") == ["WANG^WU=王^五=wang^wu"]
    assert await names(world, patient_name="*") == await names(world)  # universal


async def test_identifier_wildcards_lists_and_sql_metacharacters(world: World) -> None:
    await world.step(1, patient_id=world.id("P1"), modality="CT")
    await world.step(2, patient_id=world.id("P2"), modality="MR")
    await world.step(3, patient_id=world.id("P_3"), modality="DX")
    assert len(await names(world, patient_id=world.id("P?"))) == 2
    assert len(await names(world, patient_id=world.id("P_?"))) == 1  # _ is literal, not a SQL wildcard
    assert len(await names(world, modality="CT\\MR")) == 2  # list of values
    assert len(await names(world, modality="?R")) == 1
    assert len(await find_steps(world.conn, StepQuery(station_ae_title=world.station[:6] + "*"))) >= 3


async def test_combined_date_time_range(world: World) -> None:
    base = datetime(2031, 1, 1, 23, 30)
    await world.step(1, start_at=base)  # 01-01 23:30
    await world.step(2, start_at=base + timedelta(hours=1))  # 01-02 00:30
    await world.step(3, start_at=base + timedelta(hours=3))  # 01-02 02:30
    across_midnight = combined_datetime_range("20310101-20310102", "2300-0100")
    assert len(await names(world, start=across_midnight)) == 2
    assert len(await names(world, start=combined_datetime_range("20310102", ""))) == 2
    assert len(await names(world, start=combined_datetime_range("20310102-", "0200-"))) == 1
    assert len(await names(world, start=combined_datetime_range("-20310101", ""))) == 1


async def test_finished_and_cancelled_steps_leave_the_worklist_unless_asked_for(world: World) -> None:
    await world.step(1)
    await world.step(2)
    await world.conn.execute("UPDATE scheduled_procedure_steps SET status = 'completed' WHERE accession_number = $1",
                             world.id("A2"))
    assert len(await names(world)) == 1
    assert len(await names(world, sps_status="COMPLETED")) == 1
    assert len(await names(world, sps_status="SCHEDULED\\COMPLETED")) == 2


async def test_selective_queries_use_an_index(pool: asyncpg.Pool, world: World) -> None:
    # Enough rows that the planner would rather scan the table if no index fitted.
    await world.conn.execute(
        """INSERT INTO scheduled_procedure_steps (accession_number, protocol_code, source, patient_id, patient_name,
               pn_alpha, modality, station_ae_title, start_at)
           SELECT 'X' || $1 || g, 'C', 'import', 'Q' || $1 || g, 'NAME^' || g, 'NAME^' || g, 'CT',
                  'BULK' || (g % 20),
                  timestamp '2032-01-01' + (g % 30) * interval '1 day' + (g % 600) * interval '1 minute'
           FROM generate_series(1, 20000) g""", world.tag)
    await world.conn.execute("ANALYZE scheduled_procedure_steps")
    today = combined_datetime_range("20320105", "")
    for query in (
        StepQuery(station_ae_title="BULK7", start=today),
        StepQuery(patient_id=f"Q{world.tag}123"),
        StepQuery(patient_id=f"Q{world.tag}12*"),
        StepQuery(accession_number=f"X{world.tag}77"),
        StepQuery(patient_name="NAME^1234*"),
    ):
        plan = await explain(world.conn, query)
        assert "Seq Scan" not in plan, plan
        assert "Index" in plan, plan
    await world.conn.execute("DELETE FROM scheduled_procedure_steps WHERE accession_number LIKE $1", f"X{world.tag}%")
