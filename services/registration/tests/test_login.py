"""Staff login over HTTP: password + TOTP, lockout, rotating refresh, logout, JWKS, every attempt audited."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
from imaging_common import audit
from imaging_common.auth import TokenVerifier
from imaging_common.auth import credentials as cred
from imaging_testing import asgi_client, http_server
from imaging_testing.auth import issue_test_token
from jose import jwt
from registration.app import create_app
from registration.domain import staff
from registration.settings import Settings

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
async def app(settings_for):
    application = create_app(settings_for(Settings, login_lock_seconds=2))
    async with asgi_client(application) as client:
        yield application, client


@pytest.fixture
def client(app) -> httpx.AsyncClient:
    return app[1]


async def make_user(app, roles: tuple[str, ...] | list[str] = ("clerk",)) -> tuple[str, str]:
    """A fresh account (one per test: a TOTP code can only be used once)."""
    username = f"u{uuid.uuid4().hex[:10]}"
    async with app[0].state.ctx.pool.acquire() as conn:
        new = await staff.create_user(conn, username=username, roles=list(roles), password=PASSWORD)
    return username, new.totp_secret


async def login(client: httpx.AsyncClient, username: str, secret: str, *, password: str = PASSWORD,
                offset: int = 0, code: str | None = None) -> httpx.Response:
    totp = code or cred.totp_code(secret, time.time() + offset)
    return await client.post("/api/registration/auth/login",
                             json={"username": username, "password": password, "totp": totp})


async def start_of_totp_step(margin: float = 10.0) -> None:
    """Wait until at least `margin` seconds remain in the current 30 s TOTP step, so a test that
    reasons about "this step" and "the previous step" is not split by a step boundary."""
    remaining = 30 - time.time() % 30
    if remaining < margin:
        await asyncio.sleep(remaining + 0.1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit_rows(app, actor: str) -> list[audit.AuditEntry]:
    async with app[0].state.ctx.pool.acquire() as conn:
        return list(reversed(await audit.entries(conn, actor=actor, action="login")))


async def test_login_with_password_and_totp(app, client) -> None:
    username, secret = await make_user(app, ["clerk", "nurse"])
    r = await login(client, username, secret)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600 and body["refresh_token"]
    claims = jwt.get_unverified_claims(body["access_token"])
    assert claims["username"] == username and claims["roles"] == ["clerk", "nurse"]
    me = await client.get("/api/registration/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["account"]["username"] == username
    assert me.json()["account"]["last_login_at"]
    rows = await audit_rows(app, username)
    assert [(r.outcome, r.source_ip) for r in rows] == [("success", "127.0.0.1")]


async def test_wrong_password_wrong_totp_and_replayed_code_are_refused(app, client) -> None:
    username, secret = await make_user(app)
    await start_of_totp_step()
    assert (await login(client, username, secret, password="wrong password")).status_code == 401
    assert (await login(client, username, secret, code="000000" if cred.totp_code(secret) != "000000"
                        else "111111")).status_code == 401
    code = cred.totp_code(secret)
    assert (await login(client, username, secret, code=code)).status_code == 200
    replay = await login(client, username, secret, code=code)
    assert replay.status_code == 401 and replay.headers["content-type"].startswith("application/problem+json")
    # The previous step's code is still accepted (±1 step), once.
    assert (await login(client, username, secret, offset=-30)).status_code == 200
    unknown = await login(client, "nobody-" + username, secret)
    assert unknown.status_code == 401
    rows = await audit_rows(app, username)
    assert [r.outcome for r in rows] == ["failure", "failure", "success", "failure", "success"]
    assert [r.detail.get("reason") for r in rows if r.outcome == "failure"] == [
        "wrong password", "wrong TOTP code", "TOTP code already used"]
    assert (await audit_rows(app, "nobody-" + username))[0].detail["reason"] == "unknown user"


async def test_five_failures_pause_the_name_from_that_address_and_release(app, client) -> None:
    """No 423 and no account lock: five failures pause this name from this address (429, Retry-After),
    the same whether the account exists or not; the owner from another address still logs in, and
    the pause ends by itself (login_lock_seconds=2 caps it in this module)."""
    username, secret = await make_user(app)
    await start_of_totp_step()
    statuses = [(await login(client, username, secret, password=f"wrong-{i}")).status_code for i in range(5)]
    assert statuses == [401] * 5
    paused = await login(client, username, secret)  # even the right credentials, from this address
    assert paused.status_code == 429 and int(paused.headers["retry-after"]) <= 2
    assert paused.json()["code"] == "login-throttled" and paused.json()["detail"] == "登录失败次数过多，请稍后再试"
    ghost = "nobody-" + username
    assert [(await login(client, ghost, secret)).status_code for _ in range(6)] == [401] * 5 + [429]
    async with app[0].state.ctx.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT locked_until FROM registration.staff_users WHERE username = $1", username)
    assert row["locked_until"] is None  # nothing anyone can renew on the account itself
    elsewhere = httpx.AsyncClient(transport=httpx.ASGITransport(app=app[0], client=("10.1.2.3", 50000)),
                                  base_url="http://registration.test")
    async with elsewhere:
        r = await login(elsewhere, username, secret, offset=-30)
        assert r.status_code == 200, r.text  # slowed (progressive delay), never locked out
    await asyncio.sleep(2.1)
    assert (await login(client, username, secret)).status_code == 200
    rows = await audit_rows(app, username)
    assert [r.outcome for r in rows] == ["failure"] * 5 + ["denied", "success", "success"]
    assert rows[4].detail["paused_for"] == 2 and rows[5].detail["reason"] == "throttled"


async def test_refresh_rotates_and_reuse_revokes_the_session(app, client) -> None:
    username, secret = await make_user(app)
    first = (await login(client, username, secret)).json()
    r = await client.post("/api/registration/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert (await client.get("/api/registration/auth/me", headers=bearer(second["access_token"]))).status_code == 200
    # The old refresh token again: a thief (or the owner) replays it -> the whole session is revoked.
    reuse = await client.post("/api/registration/auth/refresh", json={"refresh_token": first["refresh_token"]},
                              headers={"Accept-Language": "en"})
    assert reuse.status_code == 401 and "already used" in reuse.json()["detail"]
    assert reuse.json()["code"] == "refresh-reused"
    assert (await client.post("/api/registration/auth/refresh",
                              json={"refresh_token": second["refresh_token"]})).status_code == 401
    assert (await client.get("/api/registration/auth/me", headers=bearer(second["access_token"]))).status_code == 401
    bad = await client.post("/api/registration/auth/refresh", json={"refresh_token": "garbage"})
    assert bad.status_code == 401


async def test_logout_revokes_access_and_refresh(app, client) -> None:
    username, secret = await make_user(app)
    tokens = (await login(client, username, secret)).json()
    headers = bearer(tokens["access_token"])
    assert (await client.get("/api/registration/auth/me", headers=headers)).status_code == 200
    assert (await client.post("/api/registration/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/api/registration/auth/me", headers=headers)).status_code == 401
    assert (await client.get("/api/registration/session", headers=headers)).status_code == 401
    assert (await client.post("/api/registration/auth/refresh",
                              json={"refresh_token": tokens["refresh_token"]})).status_code == 401


async def test_idle_session_ends(settings_for) -> None:
    application = create_app(settings_for(Settings, session_idle_seconds=1))
    async with asgi_client(application) as client:
        username, secret = await make_user((application, client))
        tokens = (await login(client, username, secret)).json()
        await asyncio.sleep(1.3)
        r = await client.get("/api/registration/auth/me",
                             headers={**bearer(tokens["access_token"]), "Accept-Language": "en"})
        assert r.status_code == 401 and "idle" in r.json()["detail"] and r.json()["code"] == "session-ended"
        assert (await client.post("/api/registration/auth/refresh",
                                  json={"refresh_token": tokens["refresh_token"]})).status_code == 401


async def test_jwks_over_http_verifies_an_issued_token(settings_for) -> None:
    async with http_server(create_app(settings_for(Settings))) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            keys = (await client.get("/api/registration/auth/jwks")).json()
            assert (await client.get("/api/registration/.well-known/jwks.json")).json() == keys
            assert keys["keys"][0]["kty"] == "RSA" and keys["keys"][0]["alg"] == "RS256"
            assert "d" not in keys["keys"][0]  # public half only
            admin = issue_test_token(settings_for(Settings), roles=["admin"], username="test-admin")
            created = await client.post("/api/registration/auth/users", headers=bearer(admin),
                                        json={"username": f"j{uuid.uuid4().hex[:8]}", "roles": ["technologist"]})
            assert created.status_code == 201, created.text
            user = created.json()
            r = await login(client, user["user"]["username"], user["totp_secret"], password=user["password"])
            token = r.json()["access_token"]
            kid = jwt.get_unverified_header(token)["kid"]
            jwk = next(k for k in keys["keys"] if k["kid"] == kid)
            claims = jwt.decode(token, jwk, algorithms=["RS256"], audience="imaging-platform")
            assert claims["roles"] == ["technologist"]
            # A service deployed apart verifies with IMAGING_JWKS_URL pointing at registration.
            remote = settings_for(Settings, jwks_url=f"{url}/api/registration/auth/jwks")
            redis_client = aioredis.from_url(remote.redis_url, decode_responses=True)
            try:
                verifier = await TokenVerifier.from_settings(remote, redis_client)
                assert verifier.local_key is None
                principal = await verifier.verify(token)
                assert principal.username == user["user"]["username"] and principal.roles == ("technologist",)
            finally:
                await redis_client.aclose()

