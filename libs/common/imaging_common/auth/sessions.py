"""Login sessions in Redis: revocation, idle timeout, rotating refresh tokens, used TOTP codes.

A session key lives `session_idle_seconds` and every verified request pushes its expiry back,
so an unused session ends by itself (standard 10.2.3: "登录连接超时自动退出"). Logout deletes it,
which revokes every access token carrying its `sid` at once, in every service sharing the Redis.

A refresh token is `<sid>.<secret>`; the session keeps the hash of the current secret and the
hashes of the ones already used. Presenting a used one means the token leaked (the thief or the
owner refreshed first): the whole session is revoked.

While Redis is away nothing here can be decided (a revoked session must not pass), so every call
raises `SessionStoreUnavailable`, answered as a 503 problem (Retry-After) by the service's handlers
instead of a 500; the redis client connects again by itself at the next call.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from imaging_common.config import CommonSettings
from imaging_common.errors import Refusal

log = logging.getLogger(__name__)

# KEYS: session, used-set; ARGV: presented hash, new hash, idle seconds, now (epoch seconds)
_ROTATE = """
local cur = redis.call('HGET', KEYS[1], 'refresh')
if not cur then return 'missing' end
if tonumber(redis.call('HGET', KEYS[1], 'absolute_exp')) <= tonumber(ARGV[4]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 'expired'
end
if cur == ARGV[1] then
  redis.call('HSET', KEYS[1], 'refresh', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('EXPIREAT', KEYS[2], redis.call('HGET', KEYS[1], 'absolute_exp'))
  return 'ok'
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 'reuse'
end
return 'invalid'
"""


class SessionStoreUnavailable(Refusal):
    """Redis (sessions, login throttling) is unreachable: retry shortly."""

    status = 503
    title = "Service Unavailable"


_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
_DETAIL = "the session store (Redis) is unreachable: logins and sessions cannot be checked now; retry shortly"


class _Outage:
    """Whether this client last found Redis away: the change either way is logged once, not per call."""

    def __init__(self) -> None:
        self.since: float | None = None

    def failed(self, exc: BaseException) -> SessionStoreUnavailable:
        if self.since is None:
            self.since = time.monotonic()
            log.warning("Redis unreachable (%s: %s): logins and sessions answer 503 until it answers; "
                        "each call tries it again", type(exc).__name__, exc)
        return SessionStoreUnavailable(_DETAIL)

    def answered(self) -> None:
        if self.since is not None:
            log.info("Redis answers again after %.0f s", time.monotonic() - self.since)
            self.since = None


def _guard(method: Callable[..., Any], outage: _Outage) -> Callable[..., Any]:
    async def answered(pending: Awaitable[Any]) -> Any:
        try:
            result = await pending
        except _UNREACHABLE as exc:
            raise outage.failed(exc) from exc
        outage.answered()
        return result

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            result = method(*args, **kwargs)
        except _UNREACHABLE as exc:
            raise outage.failed(exc) from exc
        return answered(result) if inspect.isawaitable(result) else result

    return call


class _Pipeline:
    """A guarded redis pipeline: `async with`, commands queued as usual, `execute()` guarded."""

    def __init__(self, pipe: Any, outage: _Outage) -> None:
        self._pipe, self._outage = pipe, outage

    async def __aenter__(self) -> _Pipeline:
        await self._pipe.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> Any:
        return await self._pipe.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._pipe, name)
        return _guard(attr, self._outage) if name == "execute" else attr


class GuardedRedis:
    """The platform's Redis client, its unreachability raised as `SessionStoreUnavailable` (503)."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._outage = _Outage()

    def pipeline(self, *args: Any, **kwargs: Any) -> _Pipeline:
        return _Pipeline(self._redis.pipeline(*args, **kwargs), self._outage)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._redis, name)
        return _guard(attr, self._outage) if callable(attr) else attr


def guarded(redis: Any) -> Any:
    """`redis` with outages answered as 503 (None stays None: a store without Redis, in tests)."""
    return None if redis is None or isinstance(redis, GuardedRedis) else GuardedRedis(redis)


class RefreshRefused(Exception):
    """The refresh token is unknown, expired, or was already used (then the session is revoked)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    session_id: str
    user_id: str
    refresh_token: str


class SessionStore:
    """Sessions and used TOTP steps under `<namespace>:auth:` in the platform's Redis."""

    def __init__(self, redis: Any, settings: CommonSettings):
        self.redis = guarded(redis)
        self.settings = settings
        self.prefix = f"{settings.namespace}:auth"

    def session_key(self, sid: str) -> str:
        return f"{self.prefix}:session:{sid}"

    def _used_key(self, sid: str) -> str:
        return f"{self.prefix}:session:{sid}:used"

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}:user-sessions:{user_id}"

    def session_fields(self, user_id: str, username: str) -> tuple[str, str, dict[str, str]]:
        """(sid, refresh token, hash fields) of a new session; shared with the sync test helper."""
        sid = secrets.token_urlsafe(18)
        secret = secrets.token_urlsafe(32)
        fields = {
            "user_id": user_id,
            "username": username,
            "refresh": _hash(secret),
            "created": str(int(time.time())),
            "absolute_exp": str(int(time.time()) + self.settings.refresh_token_ttl_seconds),
        }
        return sid, f"{sid}.{secret}", fields

    async def create(self, *, user_id: str, username: str) -> Session:
        sid, refresh, fields = self.session_fields(user_id, username)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.session_key(sid), mapping=fields)
            pipe.expire(self.session_key(sid), self.settings.session_idle_seconds)
            pipe.sadd(self._user_key(user_id), sid)
            pipe.expire(self._user_key(user_id), self.settings.refresh_token_ttl_seconds)
            await pipe.execute()
        return Session(sid, user_id, refresh)

    async def touch(self, sid: str) -> bool:
        """Push the idle deadline back; False when the session is gone (logged out, idle, revoked)."""
        return bool(await self.redis.expire(self.session_key(sid), self.settings.session_idle_seconds))

    async def rotate(self, refresh_token: str) -> Session:
        """Swap a refresh token for a new one of the same session; a reused token revokes the session."""
        sid, _, secret = refresh_token.partition(".")
        if not sid or not secret:
            raise RefreshRefused("malformed refresh token")
        new_secret = secrets.token_urlsafe(32)
        outcome = await self.redis.eval(
            _ROTATE, 2, self.session_key(sid), self._used_key(sid),
            _hash(secret), _hash(new_secret), self.settings.session_idle_seconds, int(time.time()),
        )
        if outcome != "ok":
            raise RefreshRefused({
                "missing": "session ended (logged out, idle timeout or revoked)",
                "expired": "session reached its maximum lifetime; log in again",
                "reuse": "refresh token was already used; the session is revoked",
                "invalid": "unknown refresh token",
            }.get(str(outcome), str(outcome)))
        user_id = await self.redis.hget(self.session_key(sid), "user_id")
        return Session(sid, str(user_id), f"{sid}.{new_secret}")

    async def revoke(self, sid: str) -> None:
        user_id = await self.redis.hget(self.session_key(sid), "user_id")
        await self.redis.delete(self.session_key(sid), self._used_key(sid))
        if user_id:
            await self.redis.srem(self._user_key(str(user_id)), sid)

    async def revoke_user(self, user_id: str) -> int:
        """End every session of a user (deactivated, roles changed)."""
        sids = await self.redis.smembers(self._user_key(user_id))
        for sid in sids:
            await self.redis.delete(self.session_key(sid), self._used_key(sid))
        await self.redis.delete(self._user_key(user_id))
        return len(sids)

    async def claim_totp_step(self, user_id: str, step: int) -> bool:
        """Mark a TOTP time step used; False if it was already (a replayed code)."""
        key = f"{self.prefix}:totp-used:{user_id}:{step}"
        return bool(await self.redis.set(key, "1", nx=True, ex=180))
