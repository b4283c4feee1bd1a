"""A service started with neither RabbitMQ nor Redis reachable: it serves, says it is degraded, answers
what needs Redis (sessions, login throttling) with a 503 problem, and recovers when Redis answers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import pytest
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends
from imaging_common.auth import Principal, SessionStore, require_roles
from imaging_common.auth.sessions import SessionStoreUnavailable
from imaging_common.auth.throttle import LoginThrottle
from imaging_common.config import CommonSettings
from imaging_common.service import ServiceSpec, create_service_app
from imaging_testing import asgi_client, free_port
from imaging_testing.auth import issue_test_token
from imaging_testing.proxy import TcpProxy

router = APIRouter()


@router.get("/desk")
async def desk(user: Annotated[Principal, Depends(require_roles("clerk"))]) -> dict[str, str]:
    return {"user": user.username}


async def test_session_store_and_throttle_raise_503_while_redis_is_away(  # type: ignore[no-untyped-def]
        common_settings: CommonSettings, caplog) -> None:
    caplog.set_level(logging.INFO, "imaging_common.auth.sessions")
    proxy = TcpProxy("127.0.0.1", int(common_settings.redis_url.rsplit(":", 1)[1].split("/")[0]))
    client = aioredis.from_url(f"redis://127.0.0.1:{proxy.port}/0", decode_responses=True, socket_connect_timeout=1)
    try:
        store, throttle = SessionStore(client, common_settings), LoginThrottle(client, common_settings)
        for call in (store.touch("sid"), store.create(user_id="u", username="n"), store.rotate("sid.secret"),
                     throttle.refusal("n", "10.0.0.1"), throttle.failed("n", "10.0.0.1")):
            with pytest.raises(SessionStoreUnavailable) as refused:
                await call
            assert refused.value.status == 503 and "Redis" in str(refused.value)
        # One line when it goes away (per store), not one per call; one when it is back.
        assert len([r for r in caplog.records if "Redis unreachable" in r.getMessage()]) == 2
        await proxy.start()
        session = await store.create(user_id="u", username="n")  # a pipeline, through the same client
        assert await store.touch(session.session_id)
        assert await throttle.refusal("n", "10.0.0.1") is None
        assert len([r for r in caplog.records if "Redis answers again" in r.getMessage()]) == 2
        await store.revoke(session.session_id)
    finally:
        await client.aclose()
        await proxy.close()


async def test_a_service_starts_without_broker_and_redis_and_recovers_when_redis_answers(
    common_settings: CommonSettings, tmp_path: Path
) -> None:
    redis_port = common_settings.redis_url.rsplit(":", 1)[1].split("/")[0]
    proxy = TcpProxy("127.0.0.1", int(redis_port))  # not started: refused, as a Redis not up yet
    settings = common_settings.model_copy(update={
        "amqp_url": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        "redis_url": f"redis://127.0.0.1:{proxy.port}/0",
        "amqp_reconnect_interval": 0.2,
    })
    spec = ServiceSpec(name="outagetest", prefix="outagetest", migrations=tmp_path, routers=[router])
    token = issue_test_token(common_settings, roles=["clerk"])  # written to the real Redis
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with asgi_client(create_service_app(spec, settings)) as client:
            ready = await client.get("/api/outagetest/readyz")
            assert ready.status_code == 200, ready.text
            body = ready.json()
            assert body["status"] == "degraded" and sorted(body["degraded"]) == ["rabbitmq", "redis"], body

            refused = await client.get("/api/outagetest/desk", headers=headers)
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert "session store (Redis) is unreachable" in refused.json()["detail"]

            await proxy.start()  # Redis answers now: the same client connects at the next call
            served = await client.get("/api/outagetest/desk", headers=headers)
            assert served.status_code == 200 and served.json() == {"user": "tester"}, served.text
            body = (await client.get("/api/outagetest/readyz")).json()
            assert body["degraded"] == ["rabbitmq"] and body["checks"]["redis"] == "ok", body
    finally:
        await proxy.close()
