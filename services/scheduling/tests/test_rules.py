"""Each rule type, configured as data, refuses a booking with its name and the admin's reason;
built-in constraints refuse with theirs. Bookings go through `book_slot`, as the API does."""

from __future__ import annotations

from .conftest import at, book, day_after, put_appointment, refused


async def test_booking_window_refuses_too_far_ahead_and_too_late(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    order = await world.order(exam)
    name = await world.rule(
        "window",
        "booking_window",
        {"max_days_ahead": 3, "min_minutes_before": 60},
        "只能预约3天内、开始前1小时以前的号源",
    )
    got = await refused(conn, scheduler, order_id=order, exam_code=exam, room_id=room, start=at(day_after(5), 9))
    assert got == {name: "只能预约3天内、开始前1小时以前的号源"}


async def test_sequence_no_barium_before_abdominal_ct_same_day(conn, scheduler, world) -> None:
    ct_room = await world.room("CT1")
    rf_room = await world.room("RF1")
    ct = await world.exam("CT-ABD", body_part="ABDOMEN")
    barium = await world.exam("RF-BARIUM", contrast="barium", minutes=30)
    order = await world.order(ct, barium)
    name = await world.rule(
        "barium-after-ct",
        "sequence",
        {"first": {"body_part": "abdomen", "modality": world.modality}, "then": {"contrast": "barium"}},
        "钡剂检查须在腹部CT之后 / barium only after the abdominal CT",
    )
    day = day_after(3)
    await put_appointment(world, order, ct, ct_room, at(day, 10))
    got = await refused(conn, scheduler, order_id=order, exam_code=barium, room_id=rf_room, start=at(day, 9))
    assert got == {name: "钡剂检查须在腹部CT之后 / barium only after the abdominal CT"}
    # after the CT the same day is fine
    a = await book(conn, scheduler, order, barium, rf_room, at(day, 11))
    assert a["status"] == "booked"


async def test_min_gap_between_iodinated_contrast_exams(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    chest = await world.exam("CTA-CHEST", contrast="iodinated")
    abd = await world.exam("CTE-ABD", contrast="iodinated")
    order = await world.order(chest, abd)
    name = await world.rule(
        "iodine-24h", "min_gap", {"a": {"contrast": "iodinated"}, "min_hours": 24}, "两次碘对比剂检查至少间隔24小时"
    )
    day = day_after(3)
    await put_appointment(world, order, chest, room, at(day, 8))
    got = await refused(conn, scheduler, order_id=order, exam_code=abd, room_id=room, start=at(day, 14))
    assert got == {name: "两次碘对比剂检查至少间隔24小时"}
    got = await refused(conn, scheduler, order_id=order, exam_code=abd, room_id=room, start=at(day_after(2), 9))
    assert name in got


async def test_fasting_exams_first_in_the_morning(conn, scheduler, world) -> None:
    room = await world.room("US1")
    exam = await world.exam("US-GB", fasting=True, preparation="检查前禁食8小时")
    order = await world.order(exam)
    name = await world.rule(
        "fasting-morning",
        "latest_start",
        {"selector": {"fasting": True}, "latest": "10:00"},
        "空腹检查安排在上午10点前",
    )
    got = await refused(conn, scheduler, order_id=order, exam_code=exam, room_id=room, start=at(day_after(2), 11))
    assert got == {name: "空腹检查安排在上午10点前"}


async def test_inpatients_go_to_rooms_near_their_ward(conn, scheduler, world) -> None:
    far = await world.room("CT-MAIN", campus="main")
    near = await world.room("CT-EAST", campus="east", building="Inpatient")
    ward = world.id("W5")
    await conn.execute("INSERT INTO ward (code, campus, building) VALUES ($1, 'east', 'Inpatient')", ward)
    exam = await world.exam("CT-CHEST")
    order = await world.order(exam, patient_class="inpatient", ward=ward)
    name = await world.rule("near-ward", "inpatient_proximity", {"within": "campus"}, "住院病人就近安排本院区机房")
    got = await refused(conn, scheduler, order_id=order, exam_code=exam, room_id=far, start=at(day_after(2), 9))
    assert got == {name: "住院病人就近安排本院区机房"}
    a = await book(conn, scheduler, order, exam, near, at(day_after(2), 9), "ward-nurse")
    assert a["room_id"] == near


async def test_critical_reserve_keeps_near_slots_for_critical_patients(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    routine = await world.order(exam)
    critical = await world.order(exam, special={"critical": True})
    name = await world.rule(
        "critical-first", "critical_reserve", {"reserved_minutes": 3 * 24 * 60}, "近期号源留给危重病人"
    )
    start = at(day_after(1), 9)
    got = await refused(conn, scheduler, order_id=routine, exam_code=exam, room_id=room, start=start)
    assert got == {name: "近期号源留给危重病人"}
    a = await book(conn, scheduler, critical, exam, room, start)
    assert a["special"]["critical"] is True


async def test_mdr_patients_at_the_end_of_a_session_and_nobody_after_them(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-CHEST")
    mdr = await world.order(exam, special={"mdr": True})
    other = await world.order(exam)
    name = await world.rule("mdr-last", "mdr_separation", {"tail_minutes": 60}, "多重耐药菌病人安排在时段末尾")
    day = day_after(2)
    got = await refused(conn, scheduler, order_id=mdr, exam_code=exam, room_id=room, start=at(day, 9))
    assert got == {name: "多重耐药菌病人安排在时段末尾"}
    await book(conn, scheduler, mdr, exam, room, at(day, 11, 10))
    got = await refused(conn, scheduler, order_id=other, exam_code=exam, room_id=room, start=at(day, 11, 30))
    assert got == {name: "多重耐药菌病人安排在时段末尾"}


async def test_capacity_per_room_per_day(conn, scheduler, world) -> None:
    room = await world.room("MR1")
    exam = await world.exam("MR-KNEE", minutes=30)
    first = await world.order(exam)
    second = await world.order(exam)
    name = await world.rule(
        "mr-capacity", "capacity", {"per": "room", "max_per_day": 1, "modality": world.modality}, "该机房当日检查量已满"
    )
    day = day_after(2)
    await put_appointment(world, first, exam, room, at(day, 8))
    got = await refused(conn, scheduler, order_id=second, exam_code=exam, room_id=room, start=at(day, 10))
    assert got == {name: "该机房当日检查量已满"}


async def test_capacity_per_technologist(conn, scheduler, world) -> None:
    r1 = await world.room("DX1")
    r2 = await world.room("DX2")
    tech = world.id("tech")
    await conn.execute("INSERT INTO technologist (id, name) VALUES ($1, '李技师')", tech)
    for room in (r1, r2):
        for weekday in range(1, 8):
            await conn.execute(
                "INSERT INTO roster (technologist_id, room_id, weekday, starts, ends) "
                "VALUES ($1, $2, $3, '08:00', '17:00')",
                tech,
                room,
                weekday,
            )
    exam = await world.exam("DX-CHEST", minutes=10)
    a, b = await world.order(exam), await world.order(exam)
    day = day_after(2)
    booked = await book(conn, scheduler, a, exam, r1, at(day, 9))
    assert booked["technologist_id"] == tech
    # one technologist for both rooms: the same time in the other room has nobody to do it
    got = await refused(conn, scheduler, order_id=b, exam_code=exam, room_id=r2, start=at(day, 9))
    assert "technologist" in got
    name = await world.rule(
        "tech-capacity", "capacity", {"per": "technologist", "max_per_day": 1}, "技师当日工作量已满"
    )
    got = await refused(conn, scheduler, order_id=b, exam_code=exam, room_id=r2, start=at(day, 10))
    assert got == {name: "技师当日工作量已满"}


async def test_repeated_no_shows_block_online_booking(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    patient = world.id("P-noshow")
    for d in (10, 20):
        old = await world.order(exam, patient=patient)
        await put_appointment(world, old, exam, room, at(day_after(-d), 9), status="noshow")
    order = await world.order(exam, patient=patient)
    name = await world.rule(
        "no-shows",
        "no_show_limit",
        {"max_no_shows": 2, "window_days": 90, "channels": ["online", "kiosk"]},
        "90天内爽约2次，请到预约中心人工预约",
    )
    got = await refused(
        conn, scheduler, order_id=order, exam_code=exam, room_id=room, start=at(day_after(2), 9), channel="online"
    )
    assert got == {name: "90天内爽约2次，请到预约中心人工预约"}
    a = await book(conn, scheduler, order, exam, room, at(day_after(2), 9), "booking-center")
    assert a["channel"] == "booking-center"


async def test_built_in_constraints_refuse_with_their_names(conn, scheduler, world) -> None:
    plain = await world.room("CT1")
    contrast_room = await world.room("CT2", capabilities=("contrast",))
    exam = await world.exam("CTE", caps=("contrast",), minutes=20)
    order = await world.order(exam)
    day = day_after(2)
    got = await refused(conn, scheduler, order_id=order, exam_code=exam, room_id=plain, start=at(day, 18))
    assert {"room-capability", "working-hours"} <= set(got)
    got = await refused(conn, scheduler, order_id=order, exam_code=exam, room_id=contrast_room, start=at(day, 9, 5))
    assert set(got) == {"time-slice"}
    await conn.execute(
        "INSERT INTO closure (room_id, during, reason) VALUES ($1, tstzrange($2, $3), '年检')",
        contrast_room,
        at(day, 8),
        at(day, 12),
    )
    got = await refused(conn, scheduler, order_id=order, exam_code=exam, room_id=contrast_room, start=at(day, 9))
    assert set(got) == {"closure"}


async def test_channel_quota_until_release(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    first, second = await world.order(exam), await world.order(exam)
    await conn.execute(
        "INSERT INTO channel_quota (channel, room_id, max_per_session, release_minutes_before) "
        "VALUES ('online', $1, 1, 60)",
        room,
    )
    day = day_after(3)
    await put_appointment(world, first, exam, room, at(day, 8), channel="online")
    got = await refused(
        conn, scheduler, order_id=second, exam_code=exam, room_id=room, start=at(day, 9), channel="online"
    )
    assert set(got) == {"channel-quota"} and "online" in got["channel-quota"]
    # the afternoon session has its own quota; the desk is not limited
    a = await book(conn, scheduler, second, exam, room, at(day, 9))
    assert a["status"] == "booked"


async def test_unused_channel_quota_is_released_at_its_time(conn, scheduler, world) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    first, second = await world.order(exam), await world.order(exam, patient=world.id("P2"))
    # released 3 days before the session: the session in 2 days is already open to every channel
    await conn.execute(
        "INSERT INTO channel_quota (channel, room_id, max_per_session, release_minutes_before) "
        "VALUES ('kiosk', $1, 1, $2)",
        room,
        3 * 24 * 60,
    )
    day = day_after(2)
    await put_appointment(world, first, exam, room, at(day, 8), channel="kiosk")
    a = await book(conn, scheduler, second, exam, room, at(day, 9), "kiosk")
    assert a["channel"] == "kiosk"
