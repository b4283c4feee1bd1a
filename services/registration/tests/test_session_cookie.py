"""The staff pages' session (issue 23 item 2): the rotating refresh token in an HttpOnly, SameSite=Strict cookie
on the auth path (Secure over https), never in a body a page's script reads; API clients keep the JSON body."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from imaging_common.auth import credentials as cred
from registration.app import create_app
from registration.domain import staff
from registration.settings import Settings

PASSWORD = "night shift starts at eight"
COOKIE = "imaging_refresh"


@pytest.fixture(scope="module")
async def app(settings_for):
    application = create_app(settings_for(Settings, mllp_enabled=False, session_idle_seconds=1500))
    async with application.router.lifespan_context(application):
        yield application


async def sign_in(app, client: httpx.AsyncClient, headers: dict[str, str] | None = None,
                  **extra: str) -> httpx.Response:
    username = f"c{uuid.uuid4().hex[:10]}"
    async with app.state.ctx.pool.acquire() as conn:
        new = await staff.create_user(conn, username=username, roles=["clerk"], password=PASSWORD)
    return await client.post("/api/registration/auth/login", json={
        "username": username, "password": PASSWORD, "totp": cred.totp_code(new.totp_secret, time.time()), **extra},
        headers=headers)


def set_cookie(r: httpx.Response) -> str:
    [header] = [h for h in r.headers.get_list("set-cookie") if h.startswith(COOKIE + "=")]
    return header


def client_for(app, scheme: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"{scheme}://testserver")


async def test_a_page_gets_the_refresh_token_only_as_a_cookie(app) -> None:
    async with client_for(app, "https") as client:
        r = await sign_in(app, client, refresh_in="cookie")
        assert r.status_code == 200, r.text
        body = r.json()
        assert "refresh_token" not in body and body["access_token"] and body["idle_timeout_seconds"] == 1500
        assert r.headers["cache-control"] == "no-store"
        flags = [part.strip().lower() for part in set_cookie(r).split(";")]
        assert "httponly" in flags and "samesite=strict" in flags and "secure" in flags
        assert "path=/api/registration/auth" in flags
        assert f"max-age={app.state.settings.refresh_token_ttl_seconds}" in flags
        first = client.cookies[COOKIE]

        # Renewal with the cookie alone: a new access token, the rotated refresh token again only as a cookie.
        renewed = await client.post("/api/registration/auth/refresh")
        assert renewed.status_code == 200, renewed.text
        assert "refresh_token" not in renewed.json() and renewed.json()["access_token"] != body["access_token"]
        assert client.cookies[COOKIE] != first
        me = await client.get("/api/registration/auth/me",
                              headers={"Authorization": f"Bearer {renewed.json()['access_token']}"})
        assert me.status_code == 200

        # The old cookie again (stolen, replayed): the session is revoked and the cookie cleared.
        async with client_for(app, "https") as thief:
            replay = await thief.post("/api/registration/auth/refresh", headers={"Cookie": f"{COOKIE}={first}"})
        assert replay.status_code == 401 and replay.json()["code"] == "refresh-reused"
        assert set_cookie(replay).lower().count("max-age=0") == 1
        assert (await client.post("/api/registration/auth/refresh")).status_code == 401


async def test_logout_revokes_and_clears_the_cookie(app) -> None:
    async with client_for(app, "http") as client:
        r = await sign_in(app, client, refresh_in="cookie")
        assert "secure" not in [p.strip().lower() for p in set_cookie(r).split(";")]  # plain http: a LAN page
        proxied = await sign_in(app, client, {"X-Forwarded-Proto": "https"}, refresh_in="cookie")
        assert "secure" in [p.strip().lower() for p in set_cookie(proxied).split(";")]  # TLS ended at the gateway
        access = r.json()["access_token"]
        out = await client.post("/api/registration/auth/logout", headers={"Authorization": f"Bearer {access}"})
        assert out.status_code == 204
        assert "max-age=0" in set_cookie(out).lower() and COOKIE not in client.cookies
        refused = await client.post("/api/registration/auth/refresh")
        assert refused.status_code == 401 and refused.json()["code"] == "refresh-missing"
        assert refused.json()["detail"] == "没有可续期的登录，请重新登录"


async def test_api_clients_keep_the_json_body(app) -> None:
    async with client_for(app, "http") as client:
        r = await sign_in(app, client)
        refresh = r.json()["refresh_token"]
        client.cookies.clear()
        renewed = await client.post("/api/registration/auth/refresh", json={"refresh_token": refresh})
        assert renewed.status_code == 200 and renewed.json()["refresh_token"] not in ("", refresh)
        bad = await client.post("/api/registration/auth/refresh", json={"refresh_token": "garbage"},
                                headers={"Accept-Language": "en"})
        assert bad.status_code == 401 and bad.json()["detail"] == "malformed refresh token"
        assert bad.json()["code"] == "refresh-malformed"
