"""Before serving: are PostgreSQL, RabbitMQ and Redis reachable? Say which is not, and how to start it."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import redis.asyncio as aioredis

from imaging_common.config import CommonSettings

HOW_TO_START = {
    "postgresql": "start it with `make infra` (Debian/Ubuntu) or "
    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`",
    "rabbitmq": "start it with `make infra` or `rabbitmq-server -detached`",
    "redis": "start it with `make infra` or `redis-server --daemonize yes`",
}


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or ''}".rstrip(":")


async def _check_pg(settings: CommonSettings) -> None:
    parts = urlsplit(settings.database_url)
    # Connect to the server's maintenance database: the platform database may not exist yet.
    url = parts._replace(path="/postgres").geturl()
    conn = await asyncpg.connect(url, timeout=3)
    await conn.close()


async def _check_mq(settings: CommonSettings) -> None:
    conn = await aio_pika.connect(settings.amqp_url, timeout=3)
    await conn.close()


async def _check_redis(settings: CommonSettings) -> None:
    client = aioredis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def check_infrastructure(settings: CommonSettings) -> list[str]:
    """Return one message per unreachable dependency (empty when all answer), within ~4 s."""
    checks = {
        "postgresql": (_check_pg, settings.database_url),
        "rabbitmq": (_check_mq, settings.amqp_url),
        "redis": (_check_redis, settings.redis_url),
    }

    async def run(name: str) -> str | None:
        check, url = checks[name]
        try:
            await asyncio.wait_for(check(settings), 4)
            return None
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            return f"{name} at {_where(url)} is not reachable ({reason}); {HOW_TO_START[name]}"

    results = await asyncio.gather(*(run(name) for name in checks))
    return [r for r in results if r]
