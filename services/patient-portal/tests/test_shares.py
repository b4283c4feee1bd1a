"""Share links: the patient shares a report for 1 to 30 days; whoever holds the link reads it (masked
name), every opening logged; revoked or expired links refuse and log that too; only the patient who
made a link lists and revokes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from imaging_testing import eventually
from imaging_testing.smsc import TestSmsc

from .conftest import API, new_phone, registered, sign_in
from .test_exams import signed


async def test_share_open_log_and_revoke(client: httpx.AsyncClient, smsc: TestSmsc, emit: Any,
                                         pool: asyncpg.Pool) -> None:
    phone = new_phone()
    order = await registered(emit, pool, phone, name="欧阳娜娜")
    await emit(signed(order, impression="未见异常。"), order.accession_number)
    await eventually(lambda: pool.fetchval("SELECT status = 'reported' FROM exam WHERE accession_number = $1",
                                           order.accession_number), "reported")
    headers = await sign_in(client, smsc, phone)
    for days in (0, 31):
        r = await client.post(f"{API}/exams/{order.accession_number}/shares", json={"days": days}, headers=headers)
        assert r.status_code == 422, days
    r = await client.post(f"{API}/exams/{order.accession_number}/shares", json={"days": 7}, headers=headers)
    assert r.status_code == 201, r.text
    share = r.json()
    token = share["url"].split("#", 1)[1]
    lasts = datetime.fromisoformat(share["expires_at"]) - datetime.fromisoformat(share["created_at"])
    assert lasts == timedelta(days=7)
    assert not await pool.fetchval("SELECT count(*) FROM share WHERE token_sha256 = $1", token), "only its hash"

    opened = await client.post(f"{API}/shared", json={"token": token}, headers={"User-Agent": "doctor-phone"})
    assert opened.status_code == 200 and opened.headers["cache-control"] == "no-store"
    assert opened.json()["impression"] == "未见异常。" and "娜娜" not in opened.text

    # Another patient neither sees nor revokes it.
    other = await sign_in(client, smsc, (await _other(emit, pool)))
    assert share["share_id"] not in (await client.get(f"{API}/shares", headers=other)).text
    assert (await client.delete(f"{API}/shares/{share['share_id']}", headers=other)).status_code == 404

    assert (await client.delete(f"{API}/shares/{share['share_id']}", headers=headers)).status_code == 204
    refused = await client.post(f"{API}/shared", json={"token": token}, headers={"Accept-Language": "zh-CN"})
    assert refused.status_code == 410 and refused.json()["detail"] == "分享链接已被撤销"
    [mine] = (await client.get(f"{API}/shares", headers=headers)).json()["data"]
    assert mine["revoked_at"] and [a["outcome"] for a in mine["accesses"]] == ["revoked", "opened"]
    assert mine["accesses"][1]["user_agent"] == "doctor-phone"

    # An expired link refuses (its end moved to the past) and logs it.
    r = await client.post(f"{API}/exams/{order.accession_number}/shares", json={"days": 1}, headers=headers)
    token = r.json()["url"].split("#", 1)[1]
    await pool.execute("UPDATE share SET expires_at = $2 WHERE share_id = $1::uuid", r.json()["share_id"],
                       datetime.now(UTC) - timedelta(seconds=1))
    assert (await client.post(f"{API}/shared", json={"token": token})).status_code == 410
    assert (await client.post(f"{API}/shared", json={"token": "x" * 32})).status_code == 404


async def _other(emit: Any, pool: asyncpg.Pool) -> str:
    phone = new_phone()
    await registered(emit, pool, phone)
    return phone
