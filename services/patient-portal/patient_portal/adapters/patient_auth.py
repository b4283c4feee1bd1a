"""Patients' sessions and the limits on asking for and trying sign-in codes (Redis).

A patient token is an HS256 JWT (python-jose) under the portal's own secret, issuer and audience,
backed by a Redis session that logout revokes and that ends after an idle spell or its lifetime.
It is never a staff token: staff verification (imaging_common.auth) accepts only the staff issuer,
RS256, and this verifier only the patient issuer, HS256: each refuses the other's tokens.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from imaging_common.auth.sessions import guarded
from imaging_common.empi.identifiers import mask_phone
from jose import jwt
from jose.exceptions import JOSEError

from patient_portal.settings import Settings

log = logging.getLogger(__name__)
AUDIENCE = "imaging-patient"
_DEV_SECRET = secrets.token_urlsafe(48)  # development only: Settings refuses an empty secret in production


def token_secret(settings: Settings) -> str:
    if not settings.patient_token_secret:
        return _DEV_SECRET
    return settings.patient_token_secret


class PatientAuthError(Exception):
    """The patient's token is missing, not ours, expired or its session ended (401)."""


@dataclass(frozen=True)
class PatientSession:
    session_id: str
    phone: str

    @property
    def actor(self) -> str:
        """How the audit names the patient: by the session, never by the full number."""
        return f"patient:{mask_phone(self.phone)}:{self.session_id[:8]}"


class _RedisKeys:
    """Keys under `<namespace>:patient:<area>` in the platform's Redis (an outage answers 503)."""

    area = ""

    def __init__(self, redis: Any, settings: Settings):
        self.redis, self.settings = guarded(redis), settings
        self.prefix = f"{settings.namespace}:patient:{self.area}"


class PatientSessions(_RedisKeys):
    area = "session"

    async def open(self, phone: str) -> tuple[str, PatientSession]:
        s = self.settings
        sid = uuid.uuid4().hex
        now = int(time.time())
        await self.redis.set(f"{self.prefix}:{sid}", phone, ex=min(s.patient_session_idle_seconds,
                                                                    s.patient_session_seconds))
        claims = {"iss": s.patient_token_issuer, "aud": AUDIENCE, "sub": phone, "sid": sid, "iat": now,
                  "nbf": now, "exp": now + s.patient_session_seconds, "jti": uuid.uuid4().hex}
        token = str(jwt.encode(claims, token_secret(s), algorithm="HS256"))
        return token, PatientSession(sid, phone)

    async def verify(self, token: str) -> PatientSession:
        s = self.settings
        try:
            if jwt.get_unverified_header(token).get("alg") != "HS256":
                raise PatientAuthError("not a patient token")
            claims = jwt.decode(token, token_secret(s), algorithms=["HS256"], audience=AUDIENCE,
                                issuer=s.patient_token_issuer,
                                options={"require_exp": True, "require_sub": True, "require_aud": True})
        except JOSEError:
            raise PatientAuthError("not a valid patient token") from None
        sid, phone = claims.get("sid"), claims["sub"]
        key = f"{self.prefix}:{sid}"
        # The idle timeout slides with each request, never past the token's own end.
        left = int(claims["exp"]) - int(time.time())
        if not isinstance(sid, str) or left <= 0 or await self.redis.get(key) != phone:
            raise PatientAuthError("session ended (signed out, idle or expired)")
        await self.redis.expire(key, max(1, min(s.patient_session_idle_seconds, left)))
        return PatientSession(sid, phone)

    async def close(self, session: PatientSession) -> None:
        await self.redis.delete(f"{self.prefix}:{session.session_id}")


@dataclass(frozen=True)
class Held:
    """Refused by a limit: which, and for how many seconds."""

    scope: str  # "phone-interval" | "phone" | "address" | "address-failures"
    retry_after: int


class SigninLimits(_RedisKeys):
    """Fixed windows per phone and per client address: codes asked, and wrong codes tried."""

    area = "limit"

    async def _count(self, key: str, window: int) -> tuple[int, int]:
        n = int(await self.redis.incr(key))
        if n == 1:
            await self.redis.expire(key, window)
        return n, max(1, int(await self.redis.ttl(key)))

    async def ask_code(self, phone: str, address: str | None) -> Held | None:
        """Count one request for a code; a refusal when a limit is reached (it is then not sent)."""
        s = self.settings
        window = s.patient_code_window_seconds
        if not await self.redis.set(f"{self.prefix}:interval:{phone}", "1", ex=s.patient_code_interval_seconds,
                                    nx=True):
            return Held("phone-interval", max(1, int(await self.redis.ttl(f"{self.prefix}:interval:{phone}"))))
        n, ttl = await self._count(f"{self.prefix}:address:{address or 'unknown'}", window)
        if n > s.patient_codes_per_address:
            return Held("address", ttl)
        n, ttl = await self._count(f"{self.prefix}:phone:{phone}", window)
        if n > s.patient_codes_per_phone:
            return Held("phone", ttl)
        return None

    async def failures_held(self, address: str | None) -> Held | None:
        key = f"{self.prefix}:failures:{address or 'unknown'}"
        n = int(await self.redis.get(key) or 0)
        if n >= self.settings.patient_signin_failures_per_address:
            return Held("address-failures", max(1, int(await self.redis.ttl(key))))
        return None

    async def failed(self, address: str | None) -> None:
        await self._count(f"{self.prefix}:failures:{address or 'unknown'}", self.settings.patient_code_window_seconds)
