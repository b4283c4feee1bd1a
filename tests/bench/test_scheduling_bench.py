"""Scheduling benchmarks (issue 4): contended booking through two replicas, earliest-slot search over
90 days x 30 rooms with every rule type on, and three-exam auto-arrangement.

    make bench        # or: .venv/bin/python -m pytest tests/bench/test_scheduling_bench.py -s -p no:cacheprovider
SCHEDULING_BENCH_SECONDS (default 30) and SCHEDULING_BENCH_CLIENTS (default 100) size the booking run.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from imaging_common.config import CommonSettings
from imaging_testing import service_pool
from imaging_testing.auth import issue_test_token
from imaging_testing.replicas import replicas
from scheduling.app import SERVICE
from scheduling.domain import booking

from .conftest import summarize_ms

TZ = ZoneInfo("Asia/Shanghai")
API = "/api/scheduling"
SECONDS = float(os.environ.get("SCHEDULING_BENCH_SECONDS", "30"))
CLIENTS = int(os.environ.get("SCHEDULING_BENCH_CLIENTS", "100"))
random.seed(4)


@pytest.fixture(scope="module")
async def pool(test_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    async with service_pool(SERVICE, test_env["DATABASE_URL"], max_size=4) as p:
        yield p


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, dtime(hh, mm), TZ)


def today() -> date:
    return datetime.now(TZ).date()


async def add_rooms(
    conn: asyncpg.Connection, prefix: str, modality: str, n: int, *, hours=((8, 12), (13, 17)), slice_minutes: int = 10
) -> list[str]:
    rooms = []
    for i in range(n):
        room_id = f"{prefix}{i:02d}"
        campus = ("main", "east", "south")[i % 3]
        await conn.execute(
            "INSERT INTO room (id, name, modality, campus, building, slice_minutes, capabilities) "
            "VALUES ($1, $1, $2, $3, $4, $5, '{contrast}')",
            room_id,
            modality,
            campus,
            "A" if i % 2 else "B",
            slice_minutes,
        )
        await conn.executemany(
            "INSERT INTO room_session (room_id, weekday, starts, ends) VALUES ($1, $2, $3, $4)",
            [
                (room_id, wd, dtime(h0), dtime(h1 % 24) if h1 < 24 else dtime(23, 59))
                for wd in range(1, 8)
                for h0, h1 in hours
            ],
        )
        rooms.append(room_id)
    return rooms


async def add_exam(conn: asyncpg.Connection, code: str, modality: str, minutes: int, **kw: object) -> str:
    await conn.execute(
        "INSERT INTO exam_type (code, name, modality, duration_minutes, preparation_minutes, contrast, fasting, "
        "body_part) VALUES ($1, $1, $2, $3, $4, $5, $6, $7)",
        code,
        modality,
        minutes,
        kw.get("prep", 0),
        kw.get("contrast", "none"),
        kw.get("fasting", False),
        kw.get("body_part"),
    )
    return code


async def add_requests(conn: asyncpg.Connection, rows: list[tuple[str, str, str, str, str, dict]]) -> None:
    """(order_id, exam_code, modality, empi_id, patient_class, special) rows, by COPY."""
    records = [
        (
            o,
            code,
            f"A{o}"[:40],
            code,
            mod,
            empi,
            json.dumps({"empi_id": empi, "patient_id": f"P{empi}", "name": "测试"}),
            pclass,
            "W1" if pclass == "inpatient" else None,
            json.dumps(special),
            "routine",
        )
        for o, code, mod, empi, pclass, special in rows
    ]
    await conn.copy_records_to_table(
        "exam_request",
        records=records,
        columns=[
            "order_id",
            "exam_code",
            "accession_number",
            "exam_name",
            "modality",
            "empi_id",
            "patient",
            "patient_class",
            "ward",
            "special",
            "priority",
        ],
    )


ALL_RULES = [
    ("window", "booking_window", {"max_days_ahead": 90, "min_minutes_before": 30}),
    ("barium-after-ct", "sequence", {"first": {"body_part": "ABDOMEN"}, "then": {"contrast": "barium"}}),
    ("iodine-gap", "min_gap", {"a": {"contrast": "iodinated"}, "min_hours": 24}),
    ("fasting-morning", "latest_start", {"selector": {"fasting": True}, "latest": "10:00"}),
    ("near-ward", "inpatient_proximity", {"within": "campus"}),
    ("critical-first", "critical_reserve", {"reserved_minutes": 120}),
    ("mdr-last", "mdr_separation", {"tail_minutes": 60}),
    ("room-capacity", "capacity", {"per": "room", "max_per_day": 30, "modality": "CT"}),
    ("tech-capacity", "capacity", {"per": "technologist", "max_per_day": 40, "modality": "CT"}),
    ("no-shows", "no_show_limit", {"max_no_shows": 3, "window_days": 90, "channels": ["online", "kiosk"]}),
]


@pytest.fixture(scope="module")
async def pool_90x30(pool: asyncpg.Pool) -> dict[str, object]:
    """30 CT rooms on 3 campuses with 90 days of appointments (busier near today), 5 US and 5 RF rooms,
    a technologist roster, and one rule of every type enabled."""
    async with pool.acquire() as conn:
        ct_rooms = await add_rooms(conn, "BCT", "CT", 30)
        await add_rooms(conn, "BUS", "US", 5)
        await add_rooms(conn, "BRF", "RF", 5)
        await conn.execute("INSERT INTO ward (code, campus, building) VALUES ('W1', 'east', 'A')")
        for i in range(30):
            await conn.execute("INSERT INTO technologist (id, name) VALUES ($1, $1)", f"T{i:02d}")
            await conn.executemany(
                "INSERT INTO roster (technologist_id, room_id, weekday, starts, ends) "
                "VALUES ($1, $2, $3, '08:00', '17:00')",
                [(f"T{i:02d}", ct_rooms[i], wd) for wd in range(1, 8)],
            )
        ct = await add_exam(conn, "B-CT-CHEST", "CT", 15)
        ct_abd = await add_exam(conn, "B-CT-ABD", "CT", 15, body_part="ABDOMEN", contrast="iodinated")
        us = await add_exam(conn, "B-US-GB", "US", 20, fasting=True)
        rf = await add_exam(conn, "B-RF-BARIUM", "RF", 30, contrast="barium", prep=10)
        for name, type_, params in ALL_RULES:
            await conn.execute(
                "INSERT INTO rule (name, type, params, reason) VALUES ($1, $2, $3::jsonb, $4)",
                f"bench-{name}",
                type_,
                json.dumps(params),
                f"bench rule {name}",
            )
        # Occupancy: 90% of 20-minute grid places for two weeks, 45% after that, for 90 days.
        requests, appointments = [], []
        for d in range(0, 91):
            day = today() + timedelta(days=d)
            share = 0.9 if d < 14 else 0.45
            for i, room in enumerate(ct_rooms):
                for h0 in (8, 13):
                    for k in range(12):
                        if random.random() >= share:
                            continue
                        start = at(day, h0) + timedelta(minutes=20 * k)
                        o = f"F{d}-{i}-{h0}-{k}"
                        empi = f"FILL{random.randrange(20000)}"
                        special = {"mdr": True} if random.random() < 0.01 else {}
                        requests.append((o, ct, "CT", empi, "outpatient", special))
                        appointments.append(
                            (
                                o,
                                ct,
                                f"A{o}"[:40],
                                empi,
                                room,
                                f"T{i:02d}",
                                asyncpg.Range(start, start + timedelta(minutes=15)),
                                "booked",
                                "front-desk",
                                bool(special),
                            )
                        )
        await add_requests(conn, requests)
        await conn.copy_records_to_table(
            "appointment",
            records=appointments,
            columns=[
                "order_id",
                "exam_code",
                "accession_number",
                "empi_id",
                "room_id",
                "technologist_id",
                "during",
                "status",
                "channel",
                "mdr",
            ],
        )
        await conn.execute("ANALYZE")
        # Patients to search for: outpatients, inpatients, MDR, iodinated contrast; three-exam patients.
        searchers = []
        for n in range(200):
            kind = n % 4
            code = ct_abd if kind == 3 else ct
            searchers.append(
                (
                    f"S{n}",
                    code,
                    "CT",
                    f"SP{n}",
                    "inpatient" if kind == 1 else "outpatient",
                    {"mdr": True} if kind == 2 else {},
                )
            )
        triples = []
        for n in range(60):
            for code, mod in ((us, "US"), (ct_abd, "CT"), (rf, "RF")):
                triples.append((f"T{n}", code, mod, f"TP{n}", "outpatient", {}))
        await add_requests(conn, searchers + triples)
        # As the runner does after start-up (imaging_common.runner): what exists now is never garbage;
        # without this, a full collection over pytest's and fhir.resources' objects lands in ~5% of the
        # searches as a 70 ms pause.
        gc.collect()
        gc.freeze()
        return {
            "appointments": len(appointments),
            "searchers": [(o, c) for o, c, *_ in searchers],
            "triples": [[(f"T{n}", us), (f"T{n}", ct_abd), (f"T{n}", rf)] for n in range(60)],
        }


async def test_earliest_slot_search_90_days_30_rooms(bench, pool, pool_90x30) -> None:
    s = booking.Scheduler(tz=TZ, horizon_days=90)
    samples, cpu, offsets = [], [], []
    async with pool.acquire() as conn:
        for order_id, code in pool_90x30["searchers"]:  # type: ignore[attr-defined]
            started, cpu0 = time.perf_counter(), time.process_time()
            p = await booking.find_earliest(conn, s, order_id=order_id, exam_code=code, channel="front-desk")
            samples.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu0)
            assert p is not None
            offsets.append((p.start.astimezone(TZ).date() - today()).days)
    stats = summarize_ms(samples)
    bench.figure(
        "earliest-slot search p50",
        stats["p50"],
        "ms",
        note=f"{pool_90x30['appointments']} appointments, 10 rules, n={stats['n']}",
    )
    bench.figure("earliest-slot search p95", stats["p95"], "ms", target="<= 50 ms")
    # CPU of this process alone (search logic and decoding, not PostgreSQL): tells the code's cost
    # apart from waiting for a busy machine.
    bench.figure("earliest-slot search p95, CPU of the searching process", summarize_ms(cpu)["p95"], "ms")
    bench.figure("earliest slot found, median days ahead", sorted(offsets)[len(offsets) // 2], "days")


async def test_three_exam_auto_arrange(bench, pool, pool_90x30) -> None:
    s = booking.Scheduler(tz=TZ, horizon_days=90)
    samples, cpu, spans = [], [], []
    async with pool.acquire() as conn:
        for requests in pool_90x30["triples"]:  # type: ignore[attr-defined]
            started, cpu0 = time.perf_counter(), time.process_time()
            plan = await booking.plan_exams(conn, s, requests=requests, channel="front-desk")
            samples.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu0)
            assert plan is not None and plan.same_day
            codes = [p.exam.code for p in plan.placements]
            assert codes.index("B-CT-ABD") < codes.index("B-RF-BARIUM")  # the sequence rule holds
            spans.append(plan.span.total_seconds() / 60)
    stats = summarize_ms(samples)
    bench.figure("three-exam arrange p50", stats["p50"], "ms", note=f"n={stats['n']}")
    bench.figure("three-exam arrange p95", stats["p95"], "ms", target="<= 200 ms")
    bench.figure("three-exam arrange p95, CPU of the arranging process", summarize_ms(cpu)["p95"], "ms")
    bench.figure("three-exam plan span, median", sorted(spans)[len(spans) // 2], "min")


# ---- contended booking through two replicas -----------------------------------------------------------


async def test_contended_booking_two_replicas(bench, pool, test_env) -> None:
    tag = uuid.uuid4().hex[:4]
    modality = f"BK{tag}"
    async with pool.acquire() as conn:
        rooms = await add_rooms(conn, f"BK{tag}-", modality, 3, hours=((7, 21),), slice_minutes=10)
        exam = await add_exam(conn, f"BK-{tag}", modality, 10)
        n_orders = 40000
        await add_requests(
            conn, [(f"BO{tag}-{i}", exam, modality, f"BP{tag}-{i}", "outpatient", {}) for i in range(n_orders)]
        )
    # every slot of the three rooms, in time order; clients fight over the first 20 still free
    slots = [
        (room, at(today() + timedelta(days=d), 7) + timedelta(minutes=10 * k))
        for d in range(2, 80)
        for k in range(84)
        for room in rooms
    ]
    taken: set[int] = set()
    frontier = 0
    token = issue_test_token(CommonSettings(), roles=["clerk"], username="bench")
    headers = {"Authorization": f"Bearer {token}"}
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    next_order = iter(range(n_orders))
    async with replicas("scheduling", API, 2, env={"IMAGING_DB_POOL_MAX": "20",
                                                    "IMAGING_SCHEDULING_HOUSEKEEPING_SECONDS": "3600"}) as urls:
        deadline = time.perf_counter() + SECONDS

        async def client(n: int) -> None:
            nonlocal frontier
            async with httpx.AsyncClient(base_url=urls[n % 2], timeout=60, headers=headers) as c:
                while time.perf_counter() < deadline:
                    while frontier in taken:
                        frontier += 1
                    window = [i for i in range(frontier, frontier + 60) if i not in taken][:20]
                    i = random.choice(window)
                    room, start = slots[i]
                    body = {
                        "order_id": f"BO{tag}-{next(next_order)}",
                        "exam_code": exam,
                        "room_id": room,
                        "start": start.isoformat(),
                        "channel": "front-desk",
                    }
                    t0 = time.perf_counter()
                    r = await c.post(f"{API}/appointments", json=body)
                    latencies.append(time.perf_counter() - t0)
                    if r.status_code == 201:
                        outcomes["booked"] += 1
                        taken.add(i)
                    elif r.status_code == 409 or (r.status_code == 422 and "slot-taken" in r.text):
                        outcomes["lost the race"] += 1
                        taken.add(i)
                    elif r.status_code == 422:
                        outcomes["refused by a rule"] += 1
                        taken.add(i)  # e.g. the booking window: not a slot anybody can have
                    else:
                        outcomes[f"other {r.status_code}"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(CLIENTS)))
        elapsed = time.perf_counter() - started
        server_sum = server_count = 0.0
        async with httpx.AsyncClient() as c:
            for u in urls:  # the replicas' own request timing (prometheus), apart from queueing on this machine
                text = (await c.get(f"{u}{API}/metrics")).text
                for line in text.splitlines():
                    # the only POSTs of the run are the bookings
                    if line.startswith("http_request_duration_seconds_") and 'method="POST"' in line:
                        if line.startswith("http_request_duration_seconds_sum"):
                            server_sum += float(line.rsplit(" ", 1)[1])
                        elif line.startswith("http_request_duration_seconds_count"):
                            server_count += float(line.rsplit(" ", 1)[1])
    async with pool.acquire() as conn:
        double = await conn.fetchval(
            """SELECT count(*) FROM appointment a JOIN appointment b ON a.room_id = b.room_id AND a.id < b.id
                    AND a.during && b.during
                WHERE a.room_id = ANY($1) AND a.status = 'booked' AND b.status = 'booked'""",
            rooms,
        )
        stored = await conn.fetchval(
            "SELECT count(*) FROM appointment WHERE room_id = ANY($1) AND status = 'booked'", rooms
        )
    stats = summarize_ms(latencies)
    bench.figure(
        "contended booking: bookings/s",
        outcomes["booked"] / elapsed,
        "1/s",
        note=f"{CLIENTS} clients, 2 replicas, {elapsed:.0f} s, 20 contended slots at a time",
    )
    bench.figure(
        "contended booking: attempts/s",
        sum(outcomes.values()) / elapsed,
        "1/s",
        note=", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())),
    )
    bench.figure("contended booking: request p95 (client)", stats["p95"], "ms")
    if server_count:
        bench.figure("contended booking: mean time in the replica", 1000 * server_sum / server_count, "ms")
    bench.figure("contended booking: double bookings", double, "", target="0")
    assert double == 0
    assert stored == outcomes["booked"]
    assert not [k for k in outcomes if k.startswith("other")], outcomes  # no 5xx, no auth failures
