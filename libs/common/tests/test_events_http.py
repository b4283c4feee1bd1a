"""The dead-letter admin API on a real service app: roles enforced, list/replay/purge over HTTP."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest
from fastapi import APIRouter
from imaging_common.config import CommonSettings
from imaging_common.events import CloudEvent
from imaging_common.events.deadletters import dead_letters_router
from imaging_common.events.topology import (
    DEAD_LETTERED_AT_HEADER,
    ERROR_HEADER,
    ERROR_KIND_HEADER,
    RETRIES_HEADER,
    ServiceQueues,
    dead_letter_queue_name,
    delete_namespace,
)
from imaging_common.events.types import OrderCancelled
from imaging_common.service import ServiceSpec, create_service_app
from imaging_testing import asgi_client
from imaging_testing.auth import issue_test_token

QUEUE_OF = "scheduling"  # whose DLQ the router shows (the test app itself has its own schema)


@pytest.fixture
async def app_and_settings(test_env: dict[str, str], tmp_path: Path) -> AsyncIterator[tuple[object, CommonSettings]]:
    suffix = uuid.uuid4().hex[:8]
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_init.sql").write_text("CREATE TABLE nothing (id int);")
    settings = CommonSettings(namespace=f"{test_env['IMAGING_NAMESPACE']}-dl{suffix}")
    spec = ServiceSpec(
        name=f"evhttp_{suffix}", prefix=f"evhttp-{suffix}", migrations=tmp_path / "migrations",
        routers=[_mounted(dead_letters_router(QUEUE_OF))],
    )
    try:
        yield create_service_app(spec, settings), settings
    finally:
        await delete_namespace(settings.amqp_url, settings.namespace)


def _mounted(router: APIRouter) -> APIRouter:
    # Every service app already has its own /admin/dead-letters; this one shows another queue.
    outer = APIRouter(prefix=f"/{QUEUE_OF}-queue")
    outer.include_router(router)
    return outer


async def _dead_letter(settings: CommonSettings, event: CloudEvent) -> None:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(event.to_json(), message_id=event.id, headers={
                ERROR_HEADER: "RuntimeError: boom", ERROR_KIND_HEADER: "handler", RETRIES_HEADER: 6,
                DEAD_LETTERED_AT_HEADER: "2026-11-23T12:00:00+00:00"}),
            routing_key=dead_letter_queue_name(settings.namespace, QUEUE_OF),
        )
    finally:
        await connection.close()


async def test_dead_letter_api_lists_replays_and_purges_for_it_ops_only(app_and_settings) -> None:  # type: ignore[no-untyped-def]
    app, settings = app_and_settings
    base = f"/api/{app.state.spec.prefix}/{QUEUE_OF}-queue/admin/dead-letters"  # type: ignore[attr-defined]
    ops = {"Authorization": f"Bearer {issue_test_token(settings, roles=['it-ops'], username='ops1')}"}
    clerk = {"Authorization": f"Bearer {issue_test_token(settings, roles=['clerk'], username='clerk1')}"}
    async with asgi_client(app) as client:
        first, second = (
            CloudEvent.from_data(OrderCancelled(order_id=f"O{i}", accession_number=f"A{i}"), source="/t")
            for i in (1, 2)
        )
        await _dead_letter(settings, first)
        await _dead_letter(settings, second)

        assert (await client.get(base)).status_code == 401
        assert (await client.get(base, headers=clerk)).status_code == 403
        assert (await client.post(f"{base}/replay", headers=clerk, json={})).status_code == 403

        listed = await client.get(base, headers=ops)
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["count"] == 2
        assert [d["event_id"] for d in body["data"]] == [first.id, second.id]
        assert body["data"][0] | {"error": "RuntimeError: boom", "attempts": 6, "type": "order.cancelled"} \
            == body["data"][0]

        replayed = await client.post(f"{base}/replay", headers=ops, json={"event_ids": [first.id]})
        assert replayed.status_code == 200 and replayed.json()["count"] == 1
        connection = await aio_pika.connect(settings.amqp_url)
        try:
            channel = await connection.channel()
            queue = await ServiceQueues(settings.namespace, QUEUE_OF).declare(channel, "main")
            back = await queue.get(no_ack=True, fail=False)
            assert back is not None and back.message_id == first.id
            assert back.headers[RETRIES_HEADER] == 0 and ERROR_HEADER not in back.headers
        finally:
            await connection.close()

        refused = await client.post(f"{base}/purge", headers=ops, json={})
        assert refused.status_code == 422
        purged = await client.post(f"{base}/purge", headers=ops, json={"all": True})
        assert purged.status_code == 200 and [d["event_id"] for d in purged.json()["data"]] == [second.id]
        assert (await client.get(base, headers=ops)).json() == {"data": [], "count": 0}

    # Each operator action is in the audit trail, with who did it and to which queue.
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        rows = await conn.fetch(
            "SELECT action, entity_id, detail FROM audit.audit_log WHERE entity = 'dead-letter' AND actor = 'ops1' "
            "AND entity_id = $1 ORDER BY seq", dead_letter_queue_name(settings.namespace, QUEUE_OF))
    finally:
        await conn.close()
    assert [r["action"] for r in rows] == ["read", "update", "delete", "read"]
    assert json.loads(rows[1]["detail"])["event_ids"] == [first.id]
