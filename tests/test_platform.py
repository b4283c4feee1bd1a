"""The all-in-one platform: every service mounted, alive, ready, measured."""

from __future__ import annotations

import httpx
import pytest
from imaging_common.allinone import build_platform, discover_services
from imaging_testing import http_server

PREFIXES = ["print", "registration", "worklist", "scheduling", "reporting", "critical-values", "queue", "patient",
            "dashboard"]


def test_every_service_is_installed() -> None:
    assert sorted(spec.prefix for spec, _ in discover_services()) == sorted(PREFIXES)


@pytest.fixture(scope="module")
async def platform_url(test_env):
    async with http_server(build_platform()) as url:
        yield url


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_health_ready_metrics(platform_url: str, prefix: str) -> None:
    async with httpx.AsyncClient(base_url=platform_url) as client:
        alive = await client.get(f"/api/{prefix}/healthz", headers={"x-correlation-id": f"cid-{prefix}"})
        assert alive.status_code == 200 and alive.json()["status"] == "alive"
        assert alive.headers["x-correlation-id"] == f"cid-{prefix}"  # carried through, for the logs
        assert (await client.get(f"/api/{prefix}/readyz")).headers["x-correlation-id"]  # or made up
        ready = await client.get(f"/api/{prefix}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"postgresql": "ok", "rabbitmq": "ok", "redis": "ok"}
        metrics = await client.get(f"/api/{prefix}/metrics")
        assert metrics.status_code == 200
        assert 'route="/healthz",service=' in metrics.text  # counted by route template, per service
        openapi = await client.get(f"/api/{prefix}/openapi.json")
        assert openapi.status_code == 200


async def test_unknown_prefix_is_a_problem_document(platform_url: str) -> None:
    async with httpx.AsyncClient(base_url=platform_url) as client:
        r = await client.get("/api/nonexistent/healthz")
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")



@pytest.mark.parametrize("prefix", PREFIXES)
async def test_event_metrics_and_dead_letter_admin_on_every_service(platform_url: str, prefix: str) -> None:
    from imaging_common.config import CommonSettings
    from imaging_testing.auth import issue_test_token

    settings = CommonSettings()
    clerk = issue_test_token(settings, roles=["clerk"], username="dlq-clerk")
    ops = issue_test_token(settings, roles=["it-ops"], username="dlq-ops")
    async with httpx.AsyncClient(base_url=platform_url) as client:
        metrics = (await client.get(f"/api/{prefix}/metrics")).text
        assert "events_outbox_backlog" in metrics
        url = f"/api/{prefix}/admin/dead-letters"
        assert (await client.get(url)).status_code == 401
        assert (await client.get(url, headers={"authorization": f"Bearer {clerk}"})).status_code == 403
        listed = await client.get(url, headers={"authorization": f"Bearer {ops}"})
        assert listed.status_code == 200 and listed.json()["count"] == 0


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_an_oversized_body_is_refused_before_it_is_read(platform_url: str, prefix: str) -> None:
    """413 problem+json for a body over IMAGING_MAX_BODY_BYTES, announced or streamed, even without a token."""
    from imaging_common.config import CommonSettings

    limit = CommonSettings().max_body_bytes
    big = b"[" + b"1," * (limit // 2) + b"1]"

    async def streamed():  # no Content-Length: refused once the limit is passed
        for i in range(0, len(big), 1 << 16):
            yield big[i:i + (1 << 16)]

    # Streamed bodies reach a route that reads its JSON body: one per service, taken from its OpenAPI.
    async with httpx.AsyncClient(base_url=platform_url, timeout=30) as client:
        paths = (await client.get(f"/api/{prefix}/openapi.json")).json()["paths"]
        reads_json = [p for p, ops in paths.items() if "{" not in p and "requestBody" in ops.get("post", {})]
        assert reads_json, prefix
        for path, content in ((f"/api/{prefix}/session", big), (reads_json[0], streamed())):
            r = await client.post(path, content=content, headers={"content-type": "application/json"})
            assert r.status_code == 413, (path, r.status_code, r.text[:200])
            assert r.headers["content-type"].startswith("application/problem+json"), r.headers
