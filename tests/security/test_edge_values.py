"""Edge values in every typed parameter: the first and last dates, integers past 32 and 64 bits.

Generated from the OpenAPI documents like the other sweeps: each GET route's date and date-time
query parameters get the calendar's ends, each integer parameter (query or path) gets values
PostgreSQL's integer columns cannot hold. A refusal is fine; a 5xx is a bug.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from security.conftest import Sandbox
from security.openapi_routes import Operation
from security.unavailable import send

DATES = ["0001-01-01", "0235-03-16", "9999-12-31"]  # 0235: strftime("%Y") gives 3 digits
DATETIMES = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-12:00"]
INTEGERS = [str(2**31), str(2**63), str(-(2**63) - 1), "-1"]


def _kind(schema: dict[str, Any]) -> tuple[str | None, str | None]:
    for s in [schema, *schema.get("anyOf", [])]:
        if s.get("type") and s.get("type") != "null":
            return s.get("type"), s.get("format")
    return None, None


def _edge_cases(op: Operation) -> list[tuple[str, dict[str, str]]]:
    """(url, query) pairs: one parameter at an edge, the others left out or plausible."""
    cases = []
    for name, schema in op.query_params.items():
        kind, fmt = _kind(schema)
        values = DATES if fmt == "date" else DATETIMES if fmt == "date-time" else INTEGERS if kind == "integer" else []
        cases += [(op.url(), {name: v}) for v in values]
    for name, schema in op.path_params.items():
        if _kind(schema)[0] == "integer":
            cases += [(op.url(**{name: v}), {}) for v in INTEGERS]
    return cases


async def test_edge_values_never_get_a_server_error(sandbox: Sandbox) -> None:
    everyone = sandbox.everyone
    operations = [op for ops in (await sandbox.operations()).values() for op in ops if op.method == "GET"]
    problems: list[str] = []
    gate = asyncio.Semaphore(4)
    sent = 0

    async def call(client: httpx.AsyncClient, op: Operation, url: str, query: dict[str, str]) -> None:
        nonlocal sent
        async with gate:
            r = await send(client, "GET", url, params=query)
        sent += 1
        if r.status_code >= 500:
            problems.append(f"{op} {url} {query}: {r.status_code} {r.text[:200]}")

    async with httpx.AsyncClient(base_url=sandbox.url, timeout=60, headers=everyone) as client:
        await asyncio.gather(*(call(client, op, url, query) for op in operations for url, query in _edge_cases(op)))
    print(f"\nedge-value requests: {sent} over {len(operations)} GET routes")
    assert not problems, "\n".join(problems)
    assert sent >= 60


async def test_worklist_days_before_the_year_1000_and_the_last_day(sandbox: Sandbox) -> None:
    """Regression: ?date=0235-03-16 and ?date=9999-12-31 answered 500 (found by the fuzz pass)."""
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=30, headers=sandbox.everyone) as client:
        r = await client.get("/api/worklist/items", params={"date": "0235-03-16"})
        assert r.status_code == 200 and r.json()["count"] == 0, r.text
        for url in ("/api/worklist/items", "/api/worklist/rooms"):
            r = await client.get(url, params={"date": "9999-12-31"})
            assert r.status_code == 422, (url, r.text)


async def test_statistics_ending_in_the_first_month_of_year_one(sandbox: Sandbox) -> None:
    """Regression: the default start (end - 30 days) overflowed, a 500 (found by the edge-value sweep)."""
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=30, headers=sandbox.everyone) as client:
        for url, params in (("/api/critical-values/stats", {"end": "0001-01-01T00:00:00Z"}),
                            ("/api/reporting/statistics", {"until": "0001-01-01T00:00:00Z"})):
            r = await send(client, "GET", url, params=params)
            assert r.status_code == 422, (url, r.text)
