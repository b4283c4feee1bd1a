"""Slip links: the printable receipt of one appointment as a link that opens without an Authorization header
(a browser tab, a print dialog, a kiosk), for a few minutes.

An authenticated booker asks for one (audited); the link carries a random token. Redis keeps only the token's
SHA-256 with the appointment it opens, who issued it and when it ends (the key's TTL), so a stolen Redis dump
opens nothing, a token opens no other appointment, and a tampered or expired one is refused.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from imaging_common.errors import Refusal
from redis.exceptions import RedisError

SLIP_SECONDS = 600  # minutes-long: enough to print, too short to be worth keeping


@dataclass(frozen=True)
class Slip:
    appointment_id: str
    issued_by: str  # user id of the booker who issued it (the audit's actor of each opening)
    issuer_name: str


class SlipStoreUnavailable(Refusal):
    """Redis is unreachable: no slip link can be issued or opened now (the bearer path still works)."""

    status = 503
    title = "Service Unavailable"


def _key(namespace: str, token: str) -> str:
    return f"{namespace}:scheduling:slip:{hashlib.sha256(token.encode()).hexdigest()}"


async def issue(redis: Any, namespace: str, *, appointment_id: str, user_id: str, username: str,
                seconds: int = SLIP_SECONDS) -> str:
    token = secrets.token_urlsafe(24)
    value = json.dumps({"appointment_id": appointment_id, "issued_by": user_id, "issuer_name": username})
    try:
        await redis.set(_key(namespace, token), value, ex=seconds)
    except RedisError as exc:
        raise SlipStoreUnavailable("slip links are unavailable (Redis unreachable); retry shortly") from exc
    return token


async def opened(redis: Any, namespace: str, token: str, appointment_id: str) -> Slip | None:
    """The slip this token opens for this appointment; None when unknown, expired or for another one."""
    if not token or len(token) > 128:
        return None
    try:
        raw = await redis.get(_key(namespace, token))
    except RedisError as exc:
        raise SlipStoreUnavailable("slip links are unavailable (Redis unreachable); retry shortly") from exc
    if raw is None:
        return None
    data = json.loads(raw)
    if data.get("appointment_id") != appointment_id:
        return None
    return Slip(data["appointment_id"], data["issued_by"], data.get("issuer_name", ""))
