"""readyz answers 503 naming exactly the dependency that went away, and 200 again once it is back."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import httpx
from imaging_common.testing import asgi_client
from imaging_common.testing_proxy import TcpProxy
from worklist.app import create_app
from worklist.settings import Settings


def _via(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def _port(url: str, default: int) -> int:
    return urlsplit(url).port or default


async def _wait_for(client: httpx.AsyncClient, status: int, within: float = 20) -> dict:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        r = await client.get("/api/worklist/readyz")
        if r.status_code == status or asyncio.get_running_loop().time() > deadline:
            assert r.status_code == status, r.text
            return r.json()
        await asyncio.sleep(0.2)


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
            assert (await _wait_for(client, 200))["checks"] == {"postgresql": "ok", "rabbitmq": "ok", "redis": "ok"}
            for name, proxy in proxies.items():
                await proxy.cut()
                body = await _wait_for(client, 503)
                assert body["failing"] == [name], body
                assert body["checks"][name].startswith("unreachable")
                await proxy.restore()
                await _wait_for(client, 200)
    finally:
        for proxy in proxies.values():
            await proxy.close()
