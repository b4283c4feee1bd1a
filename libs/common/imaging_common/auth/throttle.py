"""Login throttling in Redis (issue 18, item 5): per client address, per (account, address), and a
progressive delay per account — never a hard lock that anyone can renew on a named account.

- **Address**: more than `login_address_max_failures` failed logins from one address within
  `login_address_window_seconds` -> every login from it is refused (429) until the window ends.
  A password spray over many names from one machine stops there.
- **(account, address)**: `login_max_failures` failed logins for one name from one address pause
  that pair (429) for `login_pause_seconds`, doubling at each further pause of the pair, at most
  `login_lock_seconds`. Attempts during a pause are not checked and not counted: hammering does not
  extend it. The pause ends by time, or when an admin unlocks the account. It holds back only
  that address: the account's owner elsewhere is not locked out by someone guessing their name.
- **Account**: from `login_max_failures` consecutive failures on, from whatever addresses, each
  further attempt on that name is answered only after a delay (1 s, doubling, at most
  `login_max_delay_seconds`) and is then checked as usual, so the right password still logs in.
  A success, an admin unlock, or `login_lock_seconds` without failures resets it.

Everything is keyed by the name as typed, whether or not such an account exists, so the answers
(status, body, delay) never tell a real account from an unknown one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from imaging_common.auth.sessions import guarded
from imaging_common.config import CommonSettings

DAY = 86400

# KEYS: pair failures, pair pause, pair pause count, account failures, address failures, the name's pair set
# ARGV: max failures, first pause, longest pause, address window, account memory, pair key
_FAILED = """
local pair = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
local acct = redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], ARGV[5])
local addr = redis.call('INCR', KEYS[5])
if addr == 1 then redis.call('EXPIRE', KEYS[5], ARGV[4]) end
redis.call('SADD', KEYS[6], ARGV[6])
redis.call('EXPIRE', KEYS[6], 86400)
local pause = 0
if pair >= tonumber(ARGV[1]) then
  local n = redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], 86400)
  pause = math.min(tonumber(ARGV[2]) * 2 ^ (n - 1), tonumber(ARGV[3]))
  pause = math.max(1, math.floor(pause))
  redis.call('SET', KEYS[2], '1', 'EX', pause)
  redis.call('DEL', KEYS[1])
end
return {pair, acct, addr, pause}
"""


@dataclass(frozen=True)
class Refusal:
    """A login refused before any check: who is held back, and for how long (seconds)."""

    scope: str  # "address" | "account-address"
    retry_after: int


@dataclass(frozen=True)
class Failure:
    pair_failures: int
    account_failures: int
    address_failures: int
    paused_for: int  # seconds the (account, address) pair is now paused, 0 if it is not


class LoginThrottle:
    def __init__(self, redis: Any, settings: CommonSettings):
        self.redis = guarded(redis)  # Redis away: 503 problem (SessionStoreUnavailable), not a 500
        self.settings = settings
        self.prefix = f"{settings.namespace}:login"

    @staticmethod
    def _name(username: str) -> str:
        # Hashed: the typed name may be anything (long, odd characters); keys stay short and clean.
        return hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]

    def _keys(self, username: str, address: str | None) -> dict[str, str]:
        name, addr = self._name(username), address or "unknown"
        return {
            "pair": f"{self.prefix}:pair:{name}:{addr}", "pause": f"{self.prefix}:pause:{name}:{addr}",
            "pauses": f"{self.prefix}:pauses:{name}:{addr}", "account": f"{self.prefix}:account:{name}",
            "address": f"{self.prefix}:address:{addr}", "pairs": f"{self.prefix}:pairs:{name}",
        }

    async def refusal(self, username: str, address: str | None) -> Refusal | None:
        """Whether this attempt is refused without being checked (address or pair throttled)."""
        keys = self._keys(username, address)
        s = self.settings
        failures = await self.redis.get(keys["address"])
        if failures is not None and int(failures) >= s.login_address_max_failures:
            return Refusal("address", max(1, int(await self.redis.ttl(keys["address"]))))
        ttl = int(await self.redis.ttl(keys["pause"]))
        if ttl > 0:
            return Refusal("account-address", ttl)
        return None

    async def delay(self, username: str) -> float:
        """Seconds to hold this attempt back before checking it (progressive, per account name)."""
        s = self.settings
        failures = int(await self.redis.get(self._keys(username, None)["account"]) or 0)
        over = failures - s.login_max_failures
        if over < 0:
            return 0.0
        return float(min(s.login_max_delay_seconds, 2 ** min(over, 30)))

    async def failed(self, username: str, address: str | None) -> Failure:
        keys = self._keys(username, address)
        s = self.settings
        pair, acct, addr, pause = await self.redis.eval(
            _FAILED, 6, keys["pair"], keys["pause"], keys["pauses"], keys["account"], keys["address"], keys["pairs"],
            s.login_max_failures, s.login_pause_seconds, s.login_lock_seconds, s.login_address_window_seconds,
            max(s.login_lock_seconds, 1), keys["pair"])
        return Failure(int(pair), int(acct), int(addr), int(pause))

    async def succeeded(self, username: str, address: str | None) -> None:
        """The owner got in: their name's counters from this address and the account delay start over.
        (The address's own failure count stays: one good account must not buy a sprayer new guesses.)"""
        keys = self._keys(username, address)
        await self.redis.delete(keys["pair"], keys["pause"], keys["pauses"], keys["account"])

    async def unlock(self, username: str) -> None:
        """An admin lifts every pause and the delay on this name, from every address."""
        keys = self._keys(username, None)
        pairs = await self.redis.smembers(keys["pairs"])
        doomed = [keys["account"], keys["pairs"]]
        for pair in pairs:
            suffix = pair.removeprefix(f"{self.prefix}:pair:")
            doomed += [pair, f"{self.prefix}:pause:{suffix}", f"{self.prefix}:pauses:{suffix}"]
        await self.redis.delete(*doomed)
