"""Through the all-in-one platform: every service refuses forged and expired tokens, admits a valid one."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from imaging_common.allinone import build_platform
from imaging_common.auth import credentials as cred
from imaging_testing import http_server
from imaging_testing.auth import issue_test_token
from jose import jwt

PREFIXES = ["print", "registration", "worklist", "scheduling", "reporting", "critical-values", "queue", "patient"]


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
async def platform_url(test_env):
    async with http_server(build_platform()) as url:
        yield url


@pytest.fixture(scope="module")
def tokens(common_settings) -> dict[str, str]:
    valid = issue_test_token(common_settings, roles=["clerk"], username="everywhere")
    claims = dict(jwt.get_unverified_claims(valid), roles=["admin"])
    return {
        "valid": valid,
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "expired": issue_test_token(common_settings, roles=["clerk"], username="everywhere", ttl_seconds=-120),
    }


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_session_route_refuses_forged_and_expired_tokens(platform_url: str, tokens, prefix: str) -> None:
    async with httpx.AsyncClient(base_url=platform_url) as client:
        for case in ("alg none", "expired"):
            r = await client.get(f"/api/{prefix}/session", headers={"Authorization": f"Bearer {tokens[case]}"})
            assert r.status_code == 401, (prefix, case, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert (await client.get(f"/api/{prefix}/session")).status_code == 401
        ok = await client.get(f"/api/{prefix}/session", headers={"Authorization": f"Bearer {tokens['valid']}"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["username"] == "everywhere" and ok.json()["roles"] == ["clerk"]


async def test_a_login_token_is_accepted_by_every_service(platform_url: str, common_settings) -> None:
    """The real path: admin creates a user, the user logs in, the token works on all seven services."""
    admin = issue_test_token(common_settings, roles=["admin"], username="everywhere-admin")
    async with httpx.AsyncClient(base_url=platform_url) as client:
        created = await client.post("/api/registration/auth/users", headers={"Authorization": f"Bearer {admin}"},
                                    json={"username": f"ev{int(time.time() * 1000) % 10**8}", "roles": ["nurse"]})
        assert created.status_code == 201, created.text
        user = created.json()
        login = await client.post("/api/registration/auth/login", json={
            "username": user["user"]["username"], "password": user["password"],
            "totp": cred.totp_code(user["totp_secret"])})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        for prefix in PREFIXES:
            r = await client.get(f"/api/{prefix}/session", headers=headers)
            assert r.status_code == 200 and r.json()["roles"] == ["nurse"], (prefix, r.text)
        assert (await client.post("/api/registration/auth/logout", headers=headers)).status_code == 204
        for prefix in PREFIXES:
            assert (await client.get(f"/api/{prefix}/session", headers=headers)).status_code == 401, prefix
