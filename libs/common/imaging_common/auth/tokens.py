"""Issuing and verifying access tokens (RS256 JWTs, python-jose).

Verification trusts exactly two kinds of token:
  - the platform's own: `iss` = IMAGING_JWT_ISSUER, RS256 only, signed by the key registration
    holds (its public half, a public key file, or registration's JWKS), and backed by a live
    Redis session (so logout, revocation and the idle timeout apply everywhere at once);
  - optionally a hospital OIDC issuer's: `iss` = IMAGING_OIDC_ISSUER, checked with its JWKS and
    only its configured asymmetric algorithms; roles are read from a claim and mapped.
Anything else (alg none, HS256 signed with the public key, another issuer or audience, expired,
tampered) is an `AuthError`, which the HTTP layer turns into 401.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from jose import jwt
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError

from imaging_common.auth.keys import KeyConfigurationError, PublicKey, SigningKey, load_public_key, load_signing_key
from imaging_common.auth.roles import ROLES
from imaging_common.auth.sessions import SessionStore
from imaging_common.config import CommonSettings

log = logging.getLogger(__name__)

LEEWAY_SECONDS = 5  # clock skew tolerated between replicas
ASYMMETRIC_ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}


class AuthError(Exception):
    """The bearer token is not acceptable; the message is safe to show the client."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a staff member authenticated by a verified token."""

    user_id: str
    username: str
    display_name: str
    roles: tuple[str, ...]
    session_id: str | None = None
    token_id: str | None = None
    issuer: str = ""

    def has_any(self, roles: Iterable[str]) -> bool:
        return bool(set(self.roles) & set(roles))

    def public(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "username": self.username, "display_name": self.display_name,
                "roles": list(self.roles), "session_id": self.session_id, "issuer": self.issuer}


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    token_type: str = "Bearer"

    def as_response(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "token_type": self.token_type, "expires_in": self.expires_in}


class TokenIssuer:
    """Signs access tokens with the platform's private key (used by registration)."""

    def __init__(self, key: SigningKey, settings: CommonSettings):
        self.key = key
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> TokenIssuer:
        return cls(load_signing_key(settings), settings)

    def access_token(
        self, *, user_id: str, username: str, display_name: str, roles: Iterable[str], session_id: str,
        ttl_seconds: int | None = None, now: int | None = None,
    ) -> str:
        now = int(time.time()) if now is None else now
        claims = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": user_id,
            "username": username,
            "name": display_name,
            "roles": list(roles),
            "sid": session_id,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + (self.settings.access_token_ttl_seconds if ttl_seconds is None else ttl_seconds),
        }
        return str(jwt.encode(claims, self.key.private_pem, algorithm="RS256", headers={"kid": self.key.kid}))

    def tokens(self, *, user_id: str, username: str, display_name: str, roles: Iterable[str],
               session_id: str, refresh_token: str) -> IssuedTokens:
        access = self.access_token(user_id=user_id, username=username, display_name=display_name,
                                   roles=roles, session_id=session_id)
        return IssuedTokens(access, refresh_token, self.settings.access_token_ttl_seconds, session_id)


class JwksCache:
    """A JWKS fetched over HTTP, cached, fetched again on an unknown `kid` (at most every 10 s)."""

    def __init__(self, url: str, ttl_seconds: int):
        self.url = url
        self.ttl = ttl_seconds
        self.keys: dict[str, dict[str, Any]] = {}
        self.fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(self.url)
            response.raise_for_status()
            body = response.json()
        self.keys = {str(k.get("kid", "")): k for k in body.get("keys", []) if isinstance(k, dict)}
        self.fetched_at = time.monotonic()

    async def key_for(self, kid: str | None) -> dict[str, Any]:
        async with self._lock:
            age = time.monotonic() - self.fetched_at
            stale = age > self.ttl
            unknown = (kid or "") not in self.keys and not (kid is None and len(self.keys) == 1)
            if stale or (unknown and age > 10):
                try:
                    await self._fetch()
                except (httpx.HTTPError, ValueError) as exc:
                    if not self.keys:
                        raise AuthError(f"cannot fetch the issuer's keys from {self.url}: {exc}") from None
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        if kid is None or kid not in self.keys:
            raise AuthError("token signed with an unknown key")
        return self.keys[kid]


def _claim_path(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


@dataclass
class TokenVerifier:
    """Verifies bearer tokens; one per service, built by `from_settings` at start-up."""

    settings: CommonSettings
    sessions: SessionStore | None
    local_key: PublicKey | None = None
    local_jwks: JwksCache | None = None
    oidc_jwks: JwksCache | None = None
    role_map: dict[str, list[str]] = field(default_factory=dict)  # IdP role -> platform roles

    @classmethod
    async def from_settings(cls, settings: CommonSettings, redis: Any) -> TokenVerifier:
        sessions = SessionStore(redis, settings) if redis is not None else None
        verifier = cls(settings, sessions)
        if settings.jwks_url:
            verifier.local_jwks = JwksCache(settings.jwks_url, settings.jwks_cache_seconds)
        else:
            try:
                verifier.local_key = load_public_key(settings)
            except KeyConfigurationError as exc:
                if settings.jwt_private_key_file or settings.jwt_public_key_file:
                    raise
                raise KeyConfigurationError(
                    f"{exc}. A service that only verifies tokens may instead set IMAGING_JWT_PUBLIC_KEY_FILE "
                    "or IMAGING_JWKS_URL (registration's /api/registration/auth/jwks)"
                ) from None
        if settings.oidc_issuer:
            if not settings.oidc_jwks_url:
                raise KeyConfigurationError("IMAGING_OIDC_ISSUER is set but IMAGING_OIDC_JWKS_URL is not")
            bad = set(verifier.oidc_algorithms) - ASYMMETRIC_ALGORITHMS
            if bad:
                raise KeyConfigurationError(f"IMAGING_OIDC_ALGORITHMS may only name asymmetric algorithms, not {bad}")
            if not (settings.oidc_audience or "").strip():
                # Without an audience any token the hospital's IdP issued to any application (the HIS's,
                # a portal's) would open the platform (issue 18, 8).
                if settings.env == "production":
                    raise KeyConfigurationError(
                        "IMAGING_OIDC_ISSUER is set but IMAGING_OIDC_AUDIENCE is not: in production the "
                        "platform's client id at the IdP must be configured (tokens must name it in `aud`)")
                log.warning("IMAGING_OIDC_AUDIENCE unset: OIDC tokens must carry aud=%r (IMAGING_JWT_AUDIENCE); "
                            "configure the platform's client id at the IdP", settings.jwt_audience)
            verifier.oidc_jwks = JwksCache(settings.oidc_jwks_url, settings.jwks_cache_seconds)
            for pair in filter(None, (p.strip() for p in settings.oidc_role_map.split(","))):
                external, _, role = pair.partition("=")
                if not external.strip() or role.strip() not in ROLES:
                    raise KeyConfigurationError(f"IMAGING_OIDC_ROLE_MAP: {pair!r} does not map an IdP role to one of "
                                                f"{', '.join(ROLES)}")
                verifier.role_map.setdefault(external.strip(), [])
                if role.strip() not in verifier.role_map[external.strip()]:
                    verifier.role_map[external.strip()].append(role.strip())
            if not verifier.role_map:
                log.warning("IMAGING_OIDC_ROLE_MAP is empty: OIDC tokens are verified but grant no role")
        return verifier

    @property
    def oidc_audience(self) -> str:
        """The `aud` an OIDC token must carry: always checked (the platform's own audience when unset)."""
        return (self.settings.oidc_audience or "").strip() or self.settings.jwt_audience

    @property
    def oidc_algorithms(self) -> list[str]:
        return [a.strip() for a in self.settings.oidc_algorithms.split(",") if a.strip()]

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.get_unverified_claims(token)
        except JOSEError:
            raise AuthError("malformed token") from None
        issuer = unverified.get("iss")
        if issuer == self.settings.jwt_issuer:
            return await self._verify_local(token, header)
        if self.oidc_jwks is not None and issuer == self.settings.oidc_issuer:
            return await self._verify_oidc(token, header)
        raise AuthError("token from an untrusted issuer")

    def _decode(self, token: str, key: Any, algorithms: list[str], audience: str, issuer: str,
                header: dict[str, Any]) -> dict[str, Any]:
        # Check the header ourselves too: never let the token choose its own algorithm.
        if header.get("alg") not in algorithms:
            raise AuthError(f"token algorithm {header.get('alg')!r} is not accepted")
        if "aud" not in jwt.get_unverified_claims(token):  # python-jose lets a token without aud pass
            raise AuthError("token claims rejected: no audience")
        try:
            return dict(jwt.decode(
                token, key, algorithms=algorithms, audience=audience, issuer=issuer,
                options={"verify_aud": True, "require_aud": True, "require_exp": True, "require_iat": True,
                         "require_sub": True, "leeway": LEEWAY_SECONDS},
            ))
        except ExpiredSignatureError:
            raise AuthError("token expired") from None
        except JWTClaimsError as exc:
            raise AuthError(f"token claims rejected: {exc}") from None
        except JOSEError:
            raise AuthError("token signature invalid") from None

    async def _verify_local(self, token: str, header: dict[str, Any]) -> Principal:
        kid = header.get("kid")
        if self.local_jwks is not None:
            key: Any = await self.local_jwks.key_for(kid)
        else:
            assert self.local_key is not None
            if kid is not None and kid != self.local_key.kid:
                raise AuthError("token signed with an unknown key")
            key = self.local_key.pem
        claims = self._decode(token, key, ["RS256"], self.settings.jwt_audience, self.settings.jwt_issuer, header)
        sid = claims.get("sid")
        if not isinstance(sid, str) or not sid:
            raise AuthError("token has no session")
        if self.sessions is None or not await self.sessions.touch(sid):
            raise AuthError("session ended (logged out, idle timeout or revoked)")
        roles = claims.get("roles")
        return Principal(
            user_id=str(claims["sub"]), username=str(claims.get("username", "")),
            display_name=str(claims.get("name", "")),
            roles=tuple(r for r in roles if r in ROLES) if isinstance(roles, list) else (),
            session_id=sid, token_id=claims.get("jti"), issuer=self.settings.jwt_issuer,
        )

    async def _verify_oidc(self, token: str, header: dict[str, Any]) -> Principal:
        assert self.oidc_jwks is not None and self.settings.oidc_issuer
        key = await self.oidc_jwks.key_for(header.get("kid"))
        claims = self._decode(token, key, self.oidc_algorithms, self.oidc_audience, self.settings.oidc_issuer,
                              header)
        raw = _claim_path(claims, self.settings.oidc_roles_claim)
        values = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
        roles: list[str] = []
        # Only what IMAGING_OIDC_ROLE_MAP names grants anything: an IdP role called "admin" is the IdP's,
        # not ours, unless the map says "admin=admin".
        for value in values:
            for role in self.role_map.get(str(value), []):
                if role in ROLES and role not in roles:
                    roles.append(role)
        username = _claim_path(claims, self.settings.oidc_username_claim) or claims["sub"]
        return Principal(
            user_id=f"oidc:{claims['sub']}", username=str(username), display_name=str(claims.get("name", username)),
            roles=tuple(roles), session_id=None, token_id=claims.get("jti"), issuer=self.settings.oidc_issuer,
        )
