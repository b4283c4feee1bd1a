"""Auto-arrangement (6.1.5): the earliest allowed slot for one exam; three exams of one patient on
one day, as close as the rules allow, in a valid order; days apart when a rule demands it."""

from __future__ import annotations

from datetime import timedelta

from scheduling.domain import booking

from .conftest import ACTOR, at, day_after, put_appointment


async def test_earliest_slot_skips_taken_closed_and_ruled_out_times(conn, scheduler, world) -> None:
    room = await world.room("US1")
    exam = await world.exam("US-GB", minutes=20, fasting=True)
    order = await world.order(exam)
    other = await world.order(exam, patient=world.id("other"))
    day = day_after(2)
    await put_appointment(world, other, exam, room, at(day, 8))  # 08:00-08:20 taken
    await conn.execute(
        "INSERT INTO closure (room_id, during, reason) VALUES ($1, tstzrange($2, $3), 'QC')",
        room,
        at(day, 8, 20),
        at(day, 9),
    )
    p = await booking.find_earliest(
        conn, scheduler, order_id=order, exam_code=exam, channel="front-desk", not_before=at(day, 0)
    )
    assert p is not None and p.start == at(day, 9)
    # a fasting exam only by 08:50: the 09:00 slot is refused, so the next morning
    await world.rule("fasting", "latest_start", {"selector": {"codes": [exam]}, "latest": "08:50"}, "空腹检查8:50前")
    p = await booking.find_earliest(
        conn, scheduler, order_id=order, exam_code=exam, channel="front-desk", not_before=at(day, 8, 30)
    )
    assert p is not None and p.start == at(day + timedelta(days=1), 8)


async def test_three_exams_same_day_in_valid_order_as_close_as_rules_allow(conn, scheduler, world) -> None:
    ct_room = await world.room("CT1", modality=world.modality + "C")
    rf_room = await world.room("RF1", modality=world.modality + "R")
    us_room = await world.room("US1", modality=world.modality + "U")
    ct = await world.exam("CT-ABD", minutes=15, body_part="ABDOMEN", modality=world.modality + "C")
    barium = await world.exam("RF-BARIUM", minutes=30, contrast="barium", prep=10, modality=world.modality + "R")
    us = await world.exam("US-GB", minutes=20, fasting=True, modality=world.modality + "U")
    order = await world.order(ct, barium, us)
    await world.rule(
        "barium-after-ct",
        "sequence",
        {"first": {"codes": [ct]}, "then": {"contrast": "barium", "codes": [barium]}},
        "钡剂须在CT之后",
    )
    await world.rule(
        "fasting-first", "latest_start", {"selector": {"codes": [us]}, "latest": "08:00"}, "空腹检查排在最早"
    )
    await world.rule("us-before-ct", "sequence", {"first": {"codes": [us]}, "then": {"codes": [ct]}}, "超声在CT之前")
    day = day_after(2)
    # the CT room is busy until 09:00 that day
    filler = await world.order(ct, patient=world.id("filler"))
    await conn.execute("UPDATE exam_type SET duration_minutes = 60 WHERE code = $1", ct)
    await put_appointment(world, filler, ct, ct_room, at(day, 8))
    await conn.execute("UPDATE exam_type SET duration_minutes = 15 WHERE code = $1", ct)

    plan = await booking.plan_exams(
        conn,
        scheduler,
        requests=[(order, barium), (order, ct), (order, us)],
        channel="front-desk",
        not_before=at(day, 0),
    )
    assert plan is not None and plan.same_day
    got = [(p.exam.code, p.room.id, p.start, p.end) for p in plan.placements]
    assert [g[0] for g in got] == [us, ct, barium]  # valid order: fasting first, CT before barium
    assert [g[1] for g in got] == [us_room, ct_room, rf_room]
    assert got[0][2] == at(day, 8)  # US at 08:00
    assert got[1][2] == at(day, 9)  # CT when its room frees up
    assert got[2][2] == at(day, 9, 30)  # barium after the CT's end (09:15) plus its 10 min preparation, on a slice
    assert plan.span == timedelta(minutes=120)  # 08:00 to 10:00: no gap the rules do not force
    for before, after in zip(plan.placements, plan.placements[1:], strict=False):
        assert after.start >= before.end + timedelta(minutes=after.exam.preparation_minutes)

    booked = await booking.book_plan(conn, scheduler, plan, actor=ACTOR)
    assert [a["status"] for a in booked] == ["booked"] * 3


async def test_rules_that_forbid_one_day_spread_the_exams(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    a = await world.exam("CTA", contrast="iodinated")
    b = await world.exam("CTE", contrast="iodinated")
    order = await world.order(a, b)
    await world.rule("iodine-gap", "min_gap", {"a": {"codes": [a, b]}, "min_hours": 24}, "碘对比剂间隔24小时")
    day = day_after(2)
    plan = await booking.plan_exams(
        conn, scheduler, requests=[(order, a), (order, b)], channel="front-desk", not_before=at(day, 0), days=5
    )
    assert plan is not None and not plan.same_day
    first, second = plan.placements
    assert first.start == at(day, 8)
    assert second.start - first.end >= timedelta(hours=24)
    assert room == first.room.id
