"""The hospital's OIDC issuer (issue 18, 8): its tokens must name the platform in `aud` (a service
refuses to start in production without IMAGING_OIDC_AUDIENCE), and only IdP roles that
IMAGING_OIDC_ROLE_MAP names grant anything: an IdP role called "admin" is not ours. Over HTTP against
a running service, with an identity provider serving its JWKS over HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from imaging_common.auth import SigningKey, TokenVerifier, jwks
from imaging_common.auth.keys import KeyConfigurationError
from imaging_common.config import CommonSettings
from imaging_testing import http_server
from jose import jwt
from worklist.app import create_app
from worklist.settings import Settings

ISSUER = "https://sso.hospital.example/realms/staff"
AUDIENCE = "imaging-platform-prod"


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[tuple[SigningKey, str]]:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key = SigningKey.from_pem(pem)
    app = FastAPI()

    @app.get("/certs")
    async def certs() -> dict:
        return jwks(key.public)

    async with http_server(app) as url:
        yield key, f"{url}/certs"


def _token(key: SigningKey, roles: list[str], **claims: object) -> str:
    now = int(time.time())
    body: dict[str, object] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-1", "preferred_username": "li.na",
                               "roles": roles, "iat": now, "exp": now + 300}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key.private_pem, algorithm="RS256", headers={"kid": key.kid})


async def test_oidc_audience_and_mapped_roles_only(idp: tuple[SigningKey, str], test_env) -> None:
    key, jwks_url = idp
    settings = Settings(oidc_issuer=ISSUER, oidc_jwks_url=jwks_url, oidc_audience=AUDIENCE,
                        oidc_role_map="HIS_RAD=radiologist,HIS_IT=it-ops")
    async with http_server(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:
        async def call(path: str, token: str) -> int:
            return (await api.get(f"/api/worklist{path}", headers={"Authorization": f"Bearer {token}"})).status_code

        # The right audience and a mapped role: in, with the mapped role only.
        r = await api.get("/api/worklist/session", headers={"Authorization": f"Bearer {_token(key, ['HIS_RAD'])}"})
        assert r.status_code == 200 and r.json()["roles"] == ["radiologist"], r.text
        # No aud, another application's aud, an aud list without ours: refused.
        for aud in (None, "his-portal", ["his-portal", "pacs"]):
            assert await call("/session", _token(key, ["HIS_RAD"], aud=aud)) == 401, aud
        assert await call("/session", _token(key, ["HIS_RAD"], aud=["his-portal", AUDIENCE])) == 200
        # Unmapped IdP role names grant nothing, even when they spell one of ours.
        for roles in (["admin"], ["it-ops", "radiologist"], ["HIS_ADMIN"]):
            assert await call("/admin/peers", _token(key, roles)) == 403, roles
            r = await api.get("/api/worklist/session", headers={"Authorization": f"Bearer {_token(key, roles)}"})
            assert r.status_code == 403 or r.json()["roles"] == [], (roles, r.text)
        assert await call("/admin/peers", _token(key, ["HIS_IT"])) == 200


async def test_production_refuses_oidc_without_an_audience(idp: tuple[SigningKey, str],
                                                           common_settings: CommonSettings) -> None:
    _, jwks_url = idp
    production = common_settings.model_copy(update={"env": "production", "jwks_url": jwks_url, "oidc_issuer": ISSUER,
                                                    "oidc_jwks_url": jwks_url, "oidc_audience": None})
    with pytest.raises(KeyConfigurationError, match="IMAGING_OIDC_AUDIENCE"):
        await TokenVerifier.from_settings(production, None)
    # A map to a role we do not have is refused at start too.
    bad_map = common_settings.model_copy(update={"oidc_issuer": ISSUER, "oidc_jwks_url": jwks_url,
                                                 "oidc_audience": AUDIENCE, "oidc_role_map": "HIS_X=root"})
    with pytest.raises(KeyConfigurationError, match="ROLE_MAP"):
        await TokenVerifier.from_settings(bad_map, None)
