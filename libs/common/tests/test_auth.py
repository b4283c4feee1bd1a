"""Token verification through a real service app: the 401 matrix, 403, revocation, idle timeout, keys."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Annotated

import httpx
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Depends
from imaging_common.auth import (
    AuthError,
    KeyConfigurationError,
    Principal,
    SessionStore,
    TokenIssuer,
    TokenVerifier,
    require_roles,
)
from imaging_common.auth.keys import SigningKey, load_signing_key
from imaging_common.config import CommonSettings
from imaging_common.service import ServiceSpec, create_service_app
from imaging_testing import asgi_client
from imaging_testing.auth import issue_test_token
from jose import jwt

router = APIRouter()


@router.get("/reading-room")
async def reading_room(user: Annotated[Principal, Depends(require_roles("radiologist"))]) -> dict[str, str]:
    return {"user": user.username}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(claims: dict, header: dict) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


@pytest.fixture(scope="module")
async def client(test_env, tmp_path_factory):
    migrations = tmp_path_factory.mktemp("authtest-migrations")
    spec = ServiceSpec(name="authtest", prefix="authtest", migrations=Path(migrations), routers=[router])
    async with asgi_client(create_service_app(spec, CommonSettings())) as c:
        yield c


def _claims_of(token: str) -> dict:
    return jwt.get_unverified_claims(token)


async def test_valid_token_with_role_is_admitted(client: httpx.AsyncClient, common_settings) -> None:
    token = issue_test_token(common_settings, roles=["radiologist"], username="dr-wang")
    r = await client.get("/api/authtest/reading-room", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json() == {"user": "dr-wang"}
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"]
    claims = _claims_of(token)
    assert {"sub", "username", "name", "roles", "sid", "jti", "iss", "aud", "iat", "exp"} <= set(claims)
    # Every service has the generic protected route.
    me = await client.get("/api/authtest/session", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["roles"] == ["radiologist"]


async def test_valid_token_without_role_is_403(client: httpx.AsyncClient, common_settings) -> None:
    token = issue_test_token(common_settings, roles=["clerk"], username="clerk-1")
    r = await client.get("/api/authtest/reading-room", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "role-required" and "诊断医师" in r.json()["detail"]  # the role, in Chinese
    en = await client.get("/api/authtest/reading-room", headers={"Authorization": f"Bearer {token}",
                                                                "Accept-Language": "en"})
    assert en.status_code == 403 and "radiologist" in en.json()["detail"]


def _forged_tokens(settings: CommonSettings) -> dict[str, str]:
    good = issue_test_token(settings, roles=["clerk"], username="mallory")
    claims = _claims_of(good)
    head, payload, sig = good.split(".")
    elevated = dict(claims, roles=["radiologist", "admin"])
    public_pem = load_signing_key(settings).public.pem.encode()
    confusion_signing = _unsigned(elevated, {"alg": "HS256", "typ": "JWT"})
    mac = hmac.new(public_pem, confusion_signing.encode(), hashlib.sha256).digest()
    confusion = confusion_signing + "." + _b64(mac)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    other = SigningKey.from_pem(other_pem)
    return {
        "alg none": _unsigned(elevated, {"alg": "none", "typ": "JWT"}) + ".",
        "alg None no signature": _unsigned(elevated, {"alg": "None"}) + ".",
        "HS256 signed with the public key": confusion,
        "tampered payload": f"{head}.{_b64(json.dumps(elevated).encode())}.{sig}",
        "tampered signature": f"{head}.{payload}.{sig[:-4]}AAAA",
        "expired": issue_test_token(settings, roles=["radiologist"], ttl_seconds=-60),
        "wrong issuer": jwt.encode(dict(elevated, iss="https://evil.example"), other_pem.decode(), algorithm="RS256"),
        "wrong audience": TokenIssuer(load_signing_key(settings), settings.model_copy(update={"jwt_audience": "x"}))
        .access_token(user_id="u", username="u", display_name="u", roles=["radiologist"], session_id=claims["sid"]),
        "signed by another key": TokenIssuer(other, settings).access_token(
            user_id="u", username="u", display_name="u", roles=["radiologist"], session_id=claims["sid"]),
        "garbage": "not-a-jwt",
    }


@pytest.mark.parametrize("case", [
    "alg none", "alg None no signature", "HS256 signed with the public key", "tampered payload",
    "tampered signature", "expired", "wrong issuer", "wrong audience", "signed by another key", "garbage",
])
async def test_bad_tokens_are_401(client: httpx.AsyncClient, common_settings, case: str) -> None:
    token = _forged_tokens(common_settings)[case]
    r = await client.get("/api/authtest/reading-room", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, (case, r.text)
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_missing_token_is_401(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/authtest/reading-room")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = await client.get("/api/authtest/reading-room", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401


async def test_revoked_session_is_401(client: httpx.AsyncClient, common_settings) -> None:
    token = issue_test_token(common_settings, roles=["radiologist"])
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/authtest/reading-room", headers=headers)).status_code == 200
    store = SessionStore(aioredis.from_url(common_settings.redis_url, decode_responses=True), common_settings)
    await store.revoke(_claims_of(token)["sid"])
    await store.redis.aclose()
    r = await client.get("/api/authtest/reading-room", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "session-ended" and "登录已结束" in r.json()["detail"]
    en = await client.get("/api/authtest/reading-room", headers={**headers, "Accept-Language": "en"})
    assert en.status_code == 401 and "session ended" in en.json()["detail"]


async def test_idle_timeout_is_pushed_back_by_use_then_ends_the_session(common_settings) -> None:
    settings = common_settings.model_copy(update={"session_idle_seconds": 2})
    redis_client = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        verifier = await TokenVerifier.from_settings(settings, redis_client)
        token = issue_test_token(settings, roles=["nurse"])
        for _ in range(3):  # used every 1 s: each use pushes the 2 s idle deadline back
            await asyncio.sleep(1.0)
            assert (await verifier.verify(token)).roles == ("nurse",)
        await asyncio.sleep(2.5)
        with pytest.raises(AuthError, match="idle"):
            await verifier.verify(token)
    finally:
        await redis_client.aclose()


def test_role_names_are_checked_when_the_route_is_declared() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        require_roles("radiolgist")


def test_dev_key_is_generated_once_and_refused_in_production(tmp_path: Path) -> None:
    dev = CommonSettings(data_dir=tmp_path / "dev")
    first, second = load_signing_key(dev), load_signing_key(dev)
    assert first.kid == second.kid
    assert (tmp_path / "dev" / "keys" / "jwt-private.pem").stat().st_mode & 0o077 == 0
    prod = CommonSettings(env="production", data_dir=tmp_path / "prod")
    with pytest.raises(KeyConfigurationError, match="IMAGING_JWT_PRIVATE_KEY_FILE is required in production"):
        load_signing_key(prod)
    with pytest.raises(KeyConfigurationError, match="IMAGING_JWKS_URL"):
        asyncio.run(TokenVerifier.from_settings(prod, None))
    assert not (tmp_path / "prod" / "keys").exists()
    # A configured key file works in production; a public key file suffices for a verifier.
    key_file = tmp_path / "dev" / "keys" / "jwt-private.pem"
    prod_key = CommonSettings(env="production", jwt_private_key_file=key_file)
    assert load_signing_key(prod_key).kid == first.kid
    pub_file = tmp_path / "pub.pem"
    pub_file.write_text(first.public.pem)
    verifier = asyncio.run(TokenVerifier.from_settings(
        CommonSettings(env="production", jwt_public_key_file=pub_file), None))
    assert verifier.local_key is not None and verifier.local_key.kid == first.kid


async def test_expiry_is_short(common_settings) -> None:
    token = issue_test_token(common_settings, roles=["clerk"])
    claims = _claims_of(token)
    assert claims["exp"] - claims["iat"] == common_settings.access_token_ttl_seconds == 600
    assert abs(claims["iat"] - time.time()) < 5
