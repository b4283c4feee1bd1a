"""Tokens for tests: `issue_test_token(settings, roles=[...])` signs with the key the services trust.

The session it backs the token with is written to Redis synchronously, so the helper works
from sync and async tests alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import redis
from imaging_common.auth.sessions import SessionStore
from imaging_common.auth.tokens import TokenIssuer
from imaging_common.config import CommonSettings


def issue_test_token(
    settings: CommonSettings, roles: Iterable[str] = ("admin",), username: str = "tester", *,
    user_id: str | None = None, display_name: str | None = None, ttl_seconds: int | None = None,
) -> str:
    user_id = user_id or f"test-{uuid.uuid5(uuid.NAMESPACE_URL, username)}"
    store = SessionStore(None, settings)
    sid, _, fields = store.session_fields(user_id, username)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.hset(store.session_key(sid), mapping=dict(fields))  # type: ignore[arg-type]
            pipe.expire(store.session_key(sid), settings.session_idle_seconds)
            pipe.execute()
    finally:
        client.close()
    return TokenIssuer.from_settings(settings).access_token(
        user_id=user_id, username=username, display_name=display_name or username, roles=list(roles),
        session_id=sid, ttl_seconds=ttl_seconds,
    )
