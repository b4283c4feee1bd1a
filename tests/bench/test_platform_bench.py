"""Platform overhead: readiness round trip through the all-in-one app over real HTTP."""

from __future__ import annotations

import time

import httpx
from imaging_common.allinone import build_platform
from imaging_testing import http_server

from .conftest import summarize_ms


async def test_readyz_latency(bench, test_env) -> None:
    async with http_server(build_platform()) as url, httpx.AsyncClient(base_url=url) as client:
        samples = []
        for _ in range(200):
            started = time.perf_counter()
            r = await client.get("/api/worklist/readyz")
            samples.append(time.perf_counter() - started)
            assert r.status_code == 200
    s = summarize_ms(samples)
    bench.figure("readyz p50", s["p50"], "ms")
    bench.figure("readyz p95", s["p95"], "ms")
