"""Every call mode against PostgreSQL: next, recall, skip (each return rule), select, transfer,
reorder, status changes, round robin across queues, the door cap, pause, and racing terminals."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from queue_calling.domain import calling, entries
from queue_calling.domain.errors import Conflict
from queue_calling.domain.states import InvalidTransition

from .conftest import World, now


async def test_call_next_is_fifo_and_logged(world: World) -> None:
    q = await world.queue("ct")
    room = await world.room("CT1", [q], door_cap=5)
    a, b = await world.patient(), await world.patient()
    first = await world.call_next(room)
    assert first["entry_id"] == a["entry_id"] and first["state"] == "called" and first["room_id"] == room
    assert (await world.call_next(room))["entry_id"] == b["entry_id"]
    with pytest.raises(Conflict, match="nobody is waiting"):
        await world.call_next(room)
    async with world.pool.acquire() as conn:
        log = await entries.entry_log(conn, a["entry_id"])
    assert [(e["action"], e["to_state"]) for e in log] == [("check_in", "waiting"), ("call", "called")]
    assert log[1]["actor"] == "nurse1" and log[1]["terminal"] == "T1" and log[1]["detail"] == {"mode": "next"}


async def test_recall_announces_again(world: World) -> None:
    q = await world.queue("ct")
    room = await world.room("CT1", [q])
    a = await world.patient()
    await world.call_next(room)
    row, change = await world.do(calling.recall, entry_id=a["entry_id"], now=now())
    assert row["call_count"] == 2 and change.announcements[0]["recall"] is True
    b = await world.patient()
    with pytest.raises(InvalidTransition):  # only a called patient can be recalled
        await world.do(calling.recall, entry_id=b["entry_id"], now=now())


async def test_skip_returns_after_n_calls(world: World) -> None:
    q = await world.queue("ct", skip_rule={"mode": "after_n", "n": 2})
    room = await world.room("CT1", [q], door_cap=10)
    a, b, c, d = [await world.patient() for _ in range(4)]
    await world.call_next(room)  # a
    row, _ = await world.do(calling.skip, entry_id=a["entry_id"], now=now())
    assert row["state"] == "skipped"
    assert (await world.call_next(room))["entry_id"] == b["entry_id"]
    assert (await world.call_next(room))["entry_id"] == c["entry_id"]
    # two calls after the skip: a is back, and ahead of d (it arrived first)
    assert (await world.call_next(room))["entry_id"] == a["entry_id"]
    assert (await world.call_next(room))["entry_id"] == d["entry_id"]


async def test_skip_end_of_session_returns_when_queue_is_empty(world: World) -> None:
    q = await world.queue("ct", skip_rule={"mode": "end_of_session"})
    room = await world.room("CT1", [q], door_cap=10)
    a, b = await world.patient(), await world.patient()
    await world.do(calling.skip, entry_id=a["entry_id"], now=now())  # passed while still waiting
    assert (await world.call_next(room))["entry_id"] == b["entry_id"]
    assert (await world.call_next(room))["entry_id"] == a["entry_id"]


async def test_skip_end_of_slice_returns_at_slice_boundary(world: World) -> None:
    q = await world.queue("ct", skip_rule={"mode": "end_of_slice", "slice_minutes": 30})
    room = await world.room("CT1", [q], door_cap=10)
    a, b, c = [await world.patient() for _ in range(3)]
    row, _ = await world.do(calling.skip, entry_id=a["entry_id"], now=now())
    assert row["return_at"] > now() and row["return_at"] <= now() + timedelta(minutes=30)
    assert (await world.call_next(room))["entry_id"] == b["entry_id"]
    later, _ = await world.do(calling.call_next, room_id=room, now=row["return_at"] + timedelta(seconds=1))
    assert later["entry_id"] == a["entry_id"]
    assert await world.state(c["entry_id"]) == "waiting"


async def test_select_call_specific_patient_and_skipped(world: World) -> None:
    q = await world.queue("ct")
    room = await world.room("CT1", [q], door_cap=5)
    a, b, c = [await world.patient() for _ in range(3)]
    row, change = await world.do(calling.select_call, entry_id=c["entry_id"], room_id=room, now=now())
    assert row["state"] == "called" and change.announcements[0]["ticket"] == c["ticket"]
    await world.do(calling.skip, entry_id=b["entry_id"], now=now())
    row, _ = await world.do(calling.select_call, entry_id=b["entry_id"], room_id=room, now=now())
    assert row["state"] == "called"
    other = await world.room("CT2", [await world.queue("mr")])
    with pytest.raises(Conflict, match="does not serve"):
        await world.do(calling.select_call, entry_id=a["entry_id"], room_id=other, now=now())


async def test_transfer_keeps_ticket_order_and_history(world: World) -> None:
    q1, q2 = await world.queue("ct"), await world.queue("ct-enh")
    r1, r2 = await world.room("CT1", [q1]), await world.room("CT2", [q2], door_cap=5)
    early = await world.patient(queue=q1)
    other = await world.patient(queue=q1)
    await world.patient(queue=q2)  # arrived after `early`, yet `early` keeps its place by arrival
    row, change = await world.do(calling.transfer, entry_id=early["entry_id"], to_queue_id=q2, reason="需增强")
    assert row["queue_id"] == q2 and row["ticket"] == early["ticket"] and {r1, r2} <= change.rooms
    assert (await world.call_next(r2))["entry_id"] == early["entry_id"]
    assert (await world.call_next(r1))["entry_id"] == other["entry_id"]
    async with world.pool.acquire() as conn:
        log = await entries.entry_log(conn, early["entry_id"])
    assert [e["action"] for e in log] == ["check_in", "transfer", "call"]
    assert log[1]["detail"]["from_queue"] == q1 and log[1]["detail"]["reason"] == "需增强"
    assert other["queue_id"] == q1


async def test_reorder_moves_before_another(world: World) -> None:
    q = await world.queue("ct")
    room = await world.room("CT1", [q], door_cap=5)
    a, b, c = [await world.patient() for _ in range(3)]
    await world.do(calling.reorder, entry_id=c["entry_id"], before_entry_id=b["entry_id"])
    order = [(await world.call_next(room))["entry_id"] for _ in range(3)]
    assert order == [a["entry_id"], c["entry_id"], b["entry_id"]]


async def test_status_changes_follow_the_state_table(world: World) -> None:
    q = await world.queue("ct")
    room = await world.room("CT1", [q])
    a = await world.patient()
    await world.call_next(room)
    row, _ = await world.do(calling.start, entry_id=a["entry_id"], now=now())
    assert row["state"] == "in_exam"
    row, _ = await world.do(calling.finish, entry_id=a["entry_id"], now=now())
    assert row["state"] == "done"
    with pytest.raises(InvalidTransition):
        await world.do(calling.cancel, entry_id=a["entry_id"], reason="x")
    b = await world.patient()
    row, _ = await world.do(calling.cancel, entry_id=b["entry_id"], reason="left")
    assert row["state"] == "cancelled"
    row, _ = await world.do(calling.restore, entry_id=b["entry_id"])
    assert row["state"] == "waiting"


async def test_room_serving_two_queues_calls_round_robin(world: World) -> None:
    q1, q2 = await world.queue("plain"), await world.queue("enh")
    room = await world.room("CT1", [q1, q2], door_cap=10)
    for _ in range(2):
        await world.patient(queue=q1)
        await world.patient(queue=q2)
    calls = [(await world.call_next(room))["queue_id"] for _ in range(4)]
    assert calls == [q1, q2, q1, q2]


async def test_several_rooms_share_one_queue(world: World) -> None:
    q = await world.queue("dx")
    r1, r2 = await world.room("DX1", [q]), await world.room("DX2", [q])
    a, b = await world.patient(), await world.patient()
    assert (await world.call_next(r1))["entry_id"] == a["entry_id"]
    assert (await world.call_next(r2))["entry_id"] == b["entry_id"]


async def test_door_cap_and_pause(world: World) -> None:
    q = await world.queue("ct")
    room = await world.room("CT1", [q], door_cap=1)
    a, _b = await world.patient(), await world.patient()
    await world.call_next(room)
    with pytest.raises(Conflict, match="cap 1"):
        await world.call_next(room)
    await world.do(calling.start, entry_id=a["entry_id"], now=now())
    async with world.pool.acquire() as conn, conn.transaction():
        await calling.set_paused(conn, queue_id=q, paused=True, who=calling.Who("n"))
    with pytest.raises(Conflict, match="paused"):
        await world.call_next(room)
    async with world.pool.acquire() as conn, conn.transaction():
        await calling.set_paused(conn, queue_id=q, paused=False, who=calling.Who("n"))
    assert (await world.call_next(room))["state"] == "called"


async def test_priority_with_fairness_through_the_database(world: World) -> None:
    q = await world.queue("ct", policy={"fairness_after": 2})
    room = await world.room("CT1", [q], door_cap=10)
    n1, n2 = await world.patient(), await world.patient()
    p = [await world.patient(categories=("disabled",)) for _ in range(3)]
    old = await world.patient(birth=__import__("datetime").date(1940, 1, 1))
    emergency = await world.patient(patient_class="emergency")
    assert old["priority_reasons"] == ["elderly"] and old["priority_level"] == 20
    order = [(await world.call_next(room))["entry_id"] for _ in range(7)]
    assert order == [emergency["entry_id"], p[0]["entry_id"], p[1]["entry_id"], n1["entry_id"],
                     p[2]["entry_id"], old["entry_id"], n2["entry_id"]]


async def test_two_terminals_racing_for_the_same_patient(world: World) -> None:
    q = await world.queue("ct")
    r1, r2 = await world.room("CT1", [q], door_cap=50), await world.room("CT2", [q], door_cap=50)
    only = await world.patient()
    results = await asyncio.gather(
        *[world.do(calling.select_call, entry_id=only["entry_id"], room_id=r, now=now()) for r in (r1, r2) * 4],
        return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and all(isinstance(e, InvalidTransition | Conflict) for e in lost), results
    # call-next from many terminals at once: every patient called exactly once
    patients = [await world.patient() for _ in range(10)]
    called = await asyncio.gather(*[world.call_next(r) for r in (r1, r2) * 5])
    assert sorted(str(c["entry_id"]) for c in called) == sorted(str(p["entry_id"]) for p in patients)
    log_calls = await world.pool.fetchval(
        "SELECT count(*) FROM entry_log WHERE entry_id = $1 AND action = 'call'", only["entry_id"])
    assert log_calls == 1


async def test_guard_is_in_sql_not_only_in_python(world: World) -> None:
    """A stale read (the row changed after it was read) is refused by the UPDATE itself."""
    q = await world.queue("ct")
    room = await world.room("CT1", [q])
    a = await world.patient()
    async with world.pool.acquire() as conn:
        stale = await entries.get_entry(conn, a["entry_id"])
    await world.call_next(room)
    async with world.pool.acquire() as conn, conn.transaction():
        with pytest.raises(InvalidTransition):
            await entries.transition(conn, stale, calling.Action.CALL, actor="x", terminal=None)


async def test_estimated_wait_learns_from_recent_exams(world: World) -> None:
    from queue_calling.domain import views

    q = await world.queue("ct", minutes=10)
    room = await world.room("CT1", [q], door_cap=10)
    for _ in range(8):
        await world.patient()
    async with world.pool.acquire() as conn:
        _, minutes, rooms = await views.number_ahead(conn, q)
    assert (minutes, rooms) == (10.0, 1)  # nothing observed yet: the configured figure
    t0 = now() - timedelta(minutes=60)
    for i in range(5):
        row, _ = await world.do(calling.call_next, room_id=room, now=t0 + timedelta(minutes=6 * i))
        await world.do(calling.start, entry_id=row["entry_id"], now=t0 + timedelta(minutes=6 * i + 1))
        await world.do(calling.finish, entry_id=row["entry_id"], now=t0 + timedelta(minutes=6 * i + 6))
    async with world.pool.acquire() as conn:
        ranked, minutes, rooms = await views.number_ahead(conn, q)
    assert minutes == 6.0 and [a for _, a in ranked] == [0, 1, 2]
    assert views.estimated_wait_minutes(2, minutes, rooms) == 12.0
