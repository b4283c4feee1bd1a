"""python-jose stays on its cryptography backend: no token path imports `ecdsa` (issue 22, 5; SECURITY.md).

python-jose depends on `ecdsa` (CVE-2024-23342, a timing side channel in its ECDSA signing, no fix
planned upstream), and scanners flag the package. It is installed but never loaded: with `cryptography`
importable python-jose takes its keys from there. A fresh interpreter runs every token path the
platform has - issuing an RS256 access token, verifying it through TokenVerifier with its session in
Redis, the JWKS document, and an IdP's token signed ES256 and RS256 checked against a JWK - then
reports which modules it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import asyncio, json, sys, time, uuid
from pathlib import Path

import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt
import jose.backends

from imaging_common.auth.keys import PublicKey, SigningKey, jwks
from imaging_common.auth.sessions import SessionStore
from imaging_common.auth.tokens import TokenIssuer, TokenVerifier
from imaging_common.config import CommonSettings


async def main() -> dict:
    folder = Path(sys.argv[1])
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = folder / "jwt.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    settings = CommonSettings(jwt_private_key_file=pem, namespace=f"jwtbackend-{uuid.uuid4().hex[:6]}")
    redis = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        sessions = SessionStore(redis, settings)
        session = await sessions.create(user_id="u1", username="backend")
        issuer = TokenIssuer.from_settings(settings)
        token = issuer.access_token(user_id="u1", username="backend", display_name="B", roles=["admin"],
                                    session_id=session.session_id)
        verifier = await TokenVerifier.from_settings(settings, redis)
        principal = await verifier.verify(token)
        assert principal.roles == ("admin",), principal
        assert jwks(verifier.local_key)["keys"][0]["kty"] == "RSA"
    finally:
        await redis.aclose()
    # An IdP's tokens (OIDC): verified against a JWK, as JwksCache hands it to _decode.
    now = int(time.time())
    claims = {"iss": "idp", "aud": "imaging-platform", "sub": "x", "iat": now, "exp": now + 60}
    for alg, private in (("ES256", ec.generate_private_key(ec.SECP256R1())), ("RS256", key)):
        signed = jwt.encode(claims, private.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(), algorithm=alg)
        public = jwk.construct(private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), alg).to_dict()
        verifier._decode(signed, public, [alg], "imaging-platform", "idp", jwt.get_unverified_header(signed))
    return {"modules": sorted(sys.modules), "ECKey": jose.backends.ECKey.__name__,
            "RSAKey": jose.backends.RSAKey.__name__}


print(json.dumps(asyncio.run(main())))
"""


def test_no_token_path_loads_ecdsa(test_env, tmp_path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert (seen["ECKey"], seen["RSAKey"]) == ("CryptographyECKey", "CryptographyRSAKey")
    loaded = {m.split(".")[0] for m in seen["modules"]}
    assert "jose" in loaded and "cryptography" in loaded
    # ecdsa (CVE-2024-23342) and python-rsa, jose's pure-Python fallbacks, stay unloaded.
    assert not loaded & {"ecdsa", "rsa"}, sorted(loaded & {"ecdsa", "rsa"})
    assert not any(m.startswith(("jose.backends.ecdsa_backend", "jose.backends.rsa_backend"))
                   for m in seen["modules"])
