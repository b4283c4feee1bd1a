"""A trusted hospital OIDC issuer: its tokens verify with its JWKS (served over HTTP), roles are mapped."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from imaging_common.auth import AuthError, SigningKey, TokenVerifier, jwks
from imaging_testing import http_server
from jose import jwt

ISSUER = "https://sso.hospital.example/realms/staff"


def _key() -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey.from_pem(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))


@pytest.fixture(scope="module")
async def idp():
    """A tiny identity provider: a JWKS endpoint and the key behind it."""
    key = _key()
    app = FastAPI()
    hits = {"jwks": 0}

    @app.get("/certs")
    async def certs() -> dict:
        hits["jwks"] += 1
        return jwks(key.public)

    async with http_server(app) as url:
        yield key, f"{url}/certs", hits


def _token(key: SigningKey, **claims: object) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "imaging", "sub": "u-778", "preferred_username": "zhang.wei", "name": "张伟",
            "realm_access": {"roles": ["HIS_RAD", "offline_access"]}, "iat": now, "exp": now + 300}
    body.update(claims)
    return jwt.encode(body, key.private_pem, algorithm="RS256", headers={"kid": key.kid})


async def test_oidc_tokens_verify_with_the_issuers_jwks(idp, common_settings) -> None:
    key, jwks_url, hits = idp
    settings = common_settings.model_copy(update={
        "oidc_issuer": ISSUER, "oidc_jwks_url": jwks_url, "oidc_audience": "imaging",
        "oidc_roles_claim": "realm_access.roles", "oidc_role_map": "HIS_RAD=radiologist,HIS_REG=clerk",
    })
    verifier = await TokenVerifier.from_settings(settings, None)
    principal = await verifier.verify(_token(key))
    assert principal.username == "zhang.wei" and principal.display_name == "张伟"
    assert principal.roles == ("radiologist",) and principal.user_id == "oidc:u-778"
    assert principal.issuer == ISSUER
    await verifier.verify(_token(key))
    assert hits["jwks"] == 1  # cached

    for bad, why in [
        (_token(key, aud="someone-else"), "claims"),
        (_token(key, exp=int(time.time()) - 120), "expired"),
        (_token(_key(), sub="x"), "unknown key"),  # another key, unknown kid
    ]:
        with pytest.raises(AuthError, match=why):
            await verifier.verify(bad)
    # HS256 with the issuer's public key as secret, and alg none: refused.
    forged = jwt.encode({"iss": ISSUER, "sub": "x", "aud": "imaging", "iat": 1, "exp": 2**31}, "secret",
                        algorithm="HS256", headers={"kid": key.kid})
    with pytest.raises(AuthError, match="algorithm"):
        await verifier.verify(forged)


async def test_oidc_issuer_is_not_trusted_unless_configured(idp, common_settings) -> None:
    key, _, _ = idp
    verifier = await TokenVerifier.from_settings(common_settings, None)
    with pytest.raises(AuthError, match="untrusted issuer"):
        await verifier.verify(_token(key))
