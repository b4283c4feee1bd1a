"""The slip link (issue 23 item 3): the printable receipt opens without an Authorization header through a
short-lived link a booker asked for; a tampered, expired or borrowed link is refused; each step is audited."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from imaging_testing import free_port
from scheduling.adapters import slip_links

from .conftest import API, at, book, day_after


async def audit_rows(conn, appointment_id: str) -> list[tuple[str, str, str]]:
    rows = await conn.fetch(
        "SELECT action, actor, outcome FROM audit.audit_log WHERE entity = 'appointment' AND entity_id = $1"
        " ORDER BY seq", appointment_id)
    return [(r["action"], r["actor"], r["outcome"]) for r in rows]


async def test_slip_link_opens_one_receipt_for_minutes_without_a_header(client, settings, clerk, conn, world,
                                                                       scheduler) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    first = await book(conn, scheduler, await world.order(exam), exam, room, at(day_after(2), 9))
    other = await book(conn, scheduler, await world.order(exam), exam, room, at(day_after(2), 10))
    receipt = f"{API}/appointments/{first['id']}/receipt.html"

    # Without a token or a slip: refused, as before.
    assert (await client.get(receipt)).status_code == 401
    # A slip link needs a reader's token; a clinician may read, an unknown appointment has none.
    assert (await client.post(f"{API}/appointments/{first['id']}/slip-link")).status_code == 401
    assert (await client.post(f"{API}/appointments/nope/slip-link", headers=clerk)).status_code == 404
    r = await client.post(f"{API}/appointments/{first['id']}/slip-link", headers=clerk)
    assert r.status_code == 201, r.text
    link = r.json()
    assert link["expires_in"] == slip_links.SLIP_SECONDS <= 900
    assert link["url"].startswith(receipt + "?slip=")

    # The link, no header: the receipt, not kept in caches, the token not passed on.
    r = await client.get(link["url"])
    assert r.status_code == 200 and "预约回执" in r.text and "张三" in r.text
    assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"

    token = link["url"].split("slip=")[1]
    # Tampered: one character changed.
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    r = await client.get(f"{receipt}?slip={tampered}", headers=browser)  # a person: a page saying what to do
    assert r.status_code == 403 and "无效或已过期" in r.text and "张三" not in r.text
    r = await client.get(f"{receipt}?slip={tampered}")  # a program: a problem document
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    # Borrowed for another appointment.
    r = await client.get(f"{API}/appointments/{other['id']}/receipt.html?slip={token}")
    assert r.status_code == 403
    # Expired: a link issued for one second, opened after it.
    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    short = await slip_links.issue(ctx.redis, settings.namespace, appointment_id=first["id"], user_id="u1",
                                   username="x", seconds=1)
    assert (await client.get(f"{receipt}?slip={short}")).status_code == 200
    await asyncio.sleep(1.5)
    assert (await client.get(f"{receipt}?slip={short}")).status_code == 403
    # With the bearer it still works as before.
    assert (await client.get(receipt, headers=clerk)).status_code == 200

    # Audited: the link issued, each opening (as the issuer), each refusal.
    rows = await audit_rows(conn, first["id"])
    actions = [(action, outcome) for action, _, outcome in rows]
    assert actions.count(("slip-link", "success")) == 1
    assert actions.count(("read", "failure")) == 3 and ("read", "success") in actions
    issuer = next(actor for action, actor, _ in rows if action == "slip-link")
    assert issuer in {actor for action, actor, outcome in rows if action == "read" and outcome == "success"}


async def test_slip_link_without_redis_is_a_503(client, clerk, conn, world, scheduler, monkeypatch) -> None:
    room = await world.room("CT1")
    exam = await world.exam("CT-HEAD")
    a = await book(conn, scheduler, await world.order(exam), exam, room, at(day_after(2), 9))
    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    away = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    monkeypatch.setattr(ctx, "redis", away)
    try:
        r = await client.post(f"{API}/appointments/{a['id']}/slip-link", headers=clerk)
        assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json"), r.text
        r = await client.get(f"{API}/appointments/{a['id']}/receipt.html?slip=whatever")
        assert r.status_code == 503
    finally:
        await away.aclose()
