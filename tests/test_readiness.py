"""readyz answers 503 only when PostgreSQL went away (the pod cannot accept work); RabbitMQ or Redis away
leaves it ready, 200 with status "degraded" naming which (issue 22, 2: a broker outage must not take
the MLLP listeners and DICOM SCPs out of their Service). Each state is on /metrics as dependency_up."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import httpx
from imaging_testing import asgi_client
from imaging_testing.proxy import TcpProxy
from worklist.app import create_app
from worklist.settings import Settings


def _via(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def _port(url: str, default: int) -> int:
    return urlsplit(url).port or default


async def _wait_for(client: httpx.AsyncClient, status: int, state: str, within: float = 20) -> dict:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        r = await client.get("/api/worklist/readyz")
        if (r.status_code == status and r.json()["status"] == state) or asyncio.get_running_loop().time() > deadline:
            assert r.status_code == status and r.json()["status"] == state, r.text
            return r.json()
        await asyncio.sleep(0.2)


async def _dependency_up(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/api/worklist/metrics")).text
    up = {}
    for line in text.splitlines():
        if line.startswith("dependency_up{"):
            labels, value = line.rsplit(" ", 1)
            assert 'service="worklist"' in labels, line
            up[labels.split('dependency="')[1].split('"')[0]] = float(value)
    return up


async def test_readyz_names_the_failing_dependency(test_env) -> None:
    base = Settings()
    proxies = {
        "postgresql": TcpProxy("127.0.0.1", _port(base.database_url, 5432)),
        "rabbitmq": TcpProxy("127.0.0.1", _port(base.amqp_url, 5672)),
        "redis": TcpProxy("127.0.0.1", _port(base.redis_url, 6379)),
    }
    for proxy in proxies.values():
        await proxy.start()
    settings = Settings(
        database_url=_via(base.database_url, proxies["postgresql"]),
        amqp_url=_via(base.amqp_url, proxies["rabbitmq"]),
        redis_url=_via(base.redis_url, proxies["redis"]),
        readiness_timeout=1.0,
        amqp_reconnect_interval=0.5,
    )
    try:
        async with asgi_client(create_app(settings)) as client:
            assert (await _wait_for(client, 200, "ready"))["checks"] == {
                "postgresql": "ok", "rabbitmq": "ok", "redis": "ok"}
            assert await _dependency_up(client) == {"postgresql": 1, "rabbitmq": 1, "redis": 1}
            for name, proxy in proxies.items():
                await proxy.cut()
                if name == "postgresql":
                    body = await _wait_for(client, 503, "not ready")
                    assert body["failing"] == [name] and "degraded" not in body, body
                else:
                    body = await _wait_for(client, 200, "degraded")
                    assert body["degraded"] == [name] and "failing" not in body, body
                assert body["checks"][name] == "unreachable", body
                assert (await _dependency_up(client))[name] == 0
                await proxy.restore()
                await _wait_for(client, 200, "ready")
                assert (await _dependency_up(client))[name] == 1
    finally:
        for proxy in proxies.values():
            await proxy.close()
