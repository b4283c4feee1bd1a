"""The platform as one process per service (as deployed): a patient's journey across seven processes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from e2e.cluster import cluster_site
from e2e.journey import STEPS, Journey, clear_of_local_midnight, set_up_department, steps


async def test_journey_across_service_processes(test_env: dict[str, str], tmp_path: Path) -> None:
    await clear_of_local_midnight()
    async with cluster_site(test_env, tmp_path / "cluster") as (cluster, site):
        dept = await set_up_department(site, uuid.uuid4().hex[:6].upper())
        j = Journey(site, dept, tmp_path)
        await steps(j, STEPS[0], STEPS[-1])
        j.assert_every_hop_on_bus()
        usage = cluster.usage()
        assert set(usage) == set(cluster.services), usage
        await an_idle_connection_outlives_uvicorns_default(cluster.services["scheduling"].port)


async def an_idle_connection_outlives_uvicorns_default(port: int) -> None:
    """A gateway reuses idle upstream connections: one idle longer than uvicorn's default 5 s still
    answers on the same socket (IMAGING_HTTP_KEEP_ALIVE, 75 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /api/scheduling/healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
    try:
        for pause in (0.0, 6.0):
            await asyncio.sleep(pause)
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
    finally:
        writer.close()
