"""Staff credentials: argon2id password hashes and TOTP second factor (standard 10.2.3 (2)).

Hashing is deliberately slow and memory-hard, so callers on the event loop use the async
wrappers, which run it in a worker thread.
"""

from __future__ import annotations

import asyncio
import time

import pyotp
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TOTP_ISSUER = "Imaging Center"
# argon2id, RFC 9106 second recommended option (64 MiB, 3 passes): memory-hard, ~50 ms here.
_hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4, type=Type.ID)
MIN_PASSWORD_LENGTH = 10


class WeakPassword(ValueError):
    pass


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"password must have at least {MIN_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


# A hash to verify against when the user does not exist, so timing does not reveal usernames.
DUMMY_HASH = hash_password("not-a-real-password-only-for-timing")


def new_totp_secret() -> str:
    return pyotp.random_base32()


def valid_totp_secret(secret: str) -> bool:
    try:
        pyotp.TOTP(secret).now()
        return len(secret.replace("=", "")) >= 16
    except Exception:  # binascii.Error and friends: not base32
        return False


def totp_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def totp_code(secret: str, at: float | None = None) -> str:
    return pyotp.TOTP(secret).at(time.time() if at is None else at)


def totp_matching_step(secret: str, code: str, at: float | None = None, window: int = 1) -> int | None:
    """The time step (counter) whose code matches within ±`window` steps, else None.

    Callers remember used steps so a code cannot be replayed while it is still valid.
    """
    code = code.strip()
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now = time.time() if at is None else at
    step = totp.timecode(now)
    for offset in (0, -1, 1)[: 2 * window + 1]:
        if pyotp.utils.strings_equal(totp.generate_otp(step + offset), code):
            return step + offset
    return None

