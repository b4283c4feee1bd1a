"""Check-in rules in the domain: placement by preparation/device, ticket numbers per local day,
identifiers that match several patients, masked ID numbers, the late window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from queue_calling.domain import checkin
from queue_calling.domain.errors import Conflict, NotFound

from .conftest import World, now


async def _check_in(world: World, **kw: object) -> checkin.CheckInResult:
    async with world.pool.acquire() as conn, conn.transaction():
        return await checkin.check_in(conn, actor="clerk", **kw)  # type: ignore[arg-type]


async def test_placement_by_preparation_and_device(world: World) -> None:
    plain = await world.queue("ct-plain")
    injected = await world.queue("ct-injection")
    device = await world.queue("ct-device")
    code = f"{world.uid}-CTX"
    await world.rule(injected, rank=10, exam_code_prefix=code, preparation="injection")
    await world.rule(device, rank=20, exam_code_prefix=code, room_id=f"DEV-{world.uid}")
    await world.rule(plain, rank=30, exam_code_prefix=code)
    contrast = await world.exam(code=code, contrast=True)
    booked = await world.exam(code=code)
    await world.book(booked, start=now(), room_id=f"DEV-{world.uid}")
    walk_in = await world.exam(code=code)
    assert (await world.check_in(contrast))["queue_id"] == injected  # contrast -> injection preparation
    assert (await world.check_in(booked))["queue_id"] == device
    assert (await world.check_in(walk_in))["queue_id"] == plain
    anaesthesia = await world.exam(code=code, contrast=True)
    entry = await world.check_in(anaesthesia, preparation="anaesthesia")
    assert entry["queue_id"] == plain and entry["preparation"] == "anaesthesia"


async def test_ticket_numbers_restart_on_the_local_day(world: World) -> None:
    await world.queue("ct", prefix="CT")
    # 23:50 and 00:10 Beijing time are different days, though the same UTC day
    before = datetime(2030, 3, 1, 15, 50, tzinfo=UTC)
    after = before + timedelta(minutes=20)
    a = await _check_in(world, kind="barcode", value=(await world.exam()).accession_number, now=before)
    b = await _check_in(world, kind="barcode", value=(await world.exam()).accession_number, now=before)
    c = await _check_in(world, kind="barcode", value=(await world.exam()).accession_number, now=after)
    assert [r.arrivals[0].entry["ticket"] for r in (a, b, c)] == ["CT001", "CT002", "CT001"]


async def test_masked_id_number_matches_only_one_patient(world: World) -> None:
    await world.queue("ct")
    one = await world.exam()
    found = await _check_in(world, kind="id_number", value="110101199001011234",
                            accession_numbers=[one.accession_number], now=now())
    assert found.arrivals[0].entry["accession_number"] == one.accession_number
    await world.exam()
    await world.exam()
    # the masked form (first 4, last 4) now fits several patients: refuse rather than guess
    with pytest.raises(Conflict, match="several patients"):
        await _check_in(world, kind="id_number", value="110101199001011234", now=now())


async def test_passed_appointment_and_unknown_identifier(world: World) -> None:
    await world.queue("ct")
    late = await world.exam()
    await world.book(late, start=now() - timedelta(hours=6))
    with pytest.raises(Conflict, match="has passed"):
        await _check_in(world, kind="appointment", value=f"AP-{late.order_id}", now=now())
    with pytest.raises(NotFound):
        await _check_in(world, kind="card", value=f"nobody-{world.uid}", now=now())
