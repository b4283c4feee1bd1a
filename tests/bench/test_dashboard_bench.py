"""The dashboard's read model (issue 25, 6): how far behind the bus it runs, and a 12-month query.

Lag: order.created events published at DASHBOARD_BENCH_RATE per second (default 100, above the day bench's
average event rate) for DASHBOARD_BENCH_SECONDS (default 20) by another service's outbox and relay through
RabbitMQ; for each, the time from its publication (the order's ordered_at, set as it is sent) to its row in
the read model (exam_fact.updated_at). Target p99 <= 1 s.
Query: DASHBOARD_BENCH_EXAMS exams (default 1,000,000) over 12 months in a database of their own; each
figure over the 12 months by month and modality (volumes) or by modality (the others), the median of 3 runs.
Target <= 500 ms. Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from dashboard.app import SERVICE, create_app
from dashboard.domain import stats
from dashboard.settings import Settings
from imaging_common.events.types import ExamItem, OrderCreated, PatientRef
from imaging_testing import asgi_client, event_producer, scratch_database, service_pool

from .conftest import summarize_ms

RATE = float(os.environ.get("DASHBOARD_BENCH_RATE", 100))
SECONDS = float(os.environ.get("DASHBOARD_BENCH_SECONDS", 20))
EXAMS = int(os.environ.get("DASHBOARD_BENCH_EXAMS", 1_000_000))


async def test_read_model_lag(bench, test_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    uid = uuid.uuid4().hex[:6]
    app = create_app(Settings(dashboard_echo_seconds=3600))
    count = int(RATE * SECONDS)
    async with asgi_client(app), event_producer(test_env["DATABASE_URL"], service="registration",
                                                schema="dashboard_bench_producer") as emit:
        started = time.monotonic()
        for i in range(count):
            acc = f"LAG{uid}{i:06d}"
            await emit(OrderCreated(
                order_id=f"O{acc}", accession_number=acc, requested_procedure_id="RP", study_instance_uid="1.2",
                patient=PatientRef(empi_id=f"E{acc}", patient_id=f"P{acc}", name="张三"), version=1,
                items=[ExamItem(code="CT-X", name="CT", modality="CT")], ordered_at=datetime.now(UTC)), acc)
            await asyncio.sleep(max(0.0, started + (i + 1) / RATE - time.monotonic()))
        sent_s = time.monotonic() - started
        pool = app.state.ctx.pool
        deadline = time.monotonic() + 120
        while await pool.fetchval("SELECT count(*) FROM exam_fact WHERE accession_number LIKE $1",
                                  f"LAG{uid}%") < count and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        lags = [r["lag"] for r in await pool.fetch(
            "SELECT extract(epoch FROM updated_at - ordered_at)::float8 AS lag FROM exam_fact "
            "WHERE accession_number LIKE $1", f"LAG{uid}%")]
    ms = summarize_ms(lags)
    bench.figure("events sent", count, "events", note=f"in {sent_s:.1f} s ({count / sent_s:.0f}/s)")
    bench.figure("events in the read model", len(lags), "events", target=str(count))
    bench.figure("read-model lag p50", ms["p50"], "ms")
    bench.figure("read-model lag p99", ms["p99"], "ms", target="<= 1000 ms")


async def test_twelve_month_query(bench, test_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    end = datetime(2026, 1, 1, tzinfo=UTC)
    start = end - timedelta(days=365)
    async with scratch_database(test_env["DATABASE_URL"], "dashboard_bench") as url, \
            service_pool(SERVICE, url, max_size=2) as pool, pool.acquire() as conn:
        t0 = time.monotonic()
        await conn.execute(
            """INSERT INTO exam_fact (accession_number, order_id, modality, room_id, campus, department, patient_class,
                   station_ae_title, ordered_at, booked_at, appointment_start, arrived_at, started_at, completed_at,
                   exam_status, preliminary_at, final_at, positive, preliminary_kept)
               SELECT 'B' || i, 'O' || i, (ARRAY['CT','MR','DX','US','MG'])[1 + i % 5], 'R' || i % 12, 'C' || i % 3,
                      'D' || i % 20, (ARRAY['outpatient','inpatient','emergency'])[1 + i % 3], 'AE' || i % 12,
                      o, o + (i % 48) * interval '1 hour', o + interval '2 days',
                      o + interval '2 days' - interval '10 min',
                      o + interval '2 days' + (i % 60) * interval '1 min', o + interval '2 days' + interval '75 min',
                      'completed', o + interval '2 days' + (90 + i % 120) * interval '1 min',
                      o + interval '2 days' + (240 + i % 300) * interval '1 min', i % 3 = 0, i % 10 < 8
               FROM (SELECT i, $1::timestamptz + (i::float8 / $2) * interval '363 days' AS o
                     FROM generate_series(1, $2::int) i) g""", start, EXAMS)
        await conn.execute("ANALYZE exam_fact")
        bench.figure("exams loaded", EXAMS, "exams", note=f"in {time.monotonic() - t0:.0f} s")
        for metric, period in (("volumes", "month"), ("turnaround", "all"), ("waiting", "all"), ("reports", "all")):
            q = stats.Query(start=start, end=end, period=period, group_by="modality")
            runs = []
            for _ in range(3):
                t = time.perf_counter()
                rows = await stats.figures(conn, metric, q, now=end)
                runs.append(time.perf_counter() - t)
            assert rows
            bench.figure(f"12 months, {metric} by {period} and modality", statistics.median(runs) * 1000, "ms",
                         target="<= 500 ms", note=f"({len(rows)} rows, {EXAMS} exams)")
