"""One-time sign-in codes: six digits, single use, short-lived, kept only as an HMAC.

The caller opens the transaction. Whether a phone belongs to a known patient is decided by the
caller too (a code is sent only then), and the answer the patient sees never tells the two apart.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

import asyncpg


def _digest(secret: str, phone: str, code: str) -> str:
    return hmac.new(secret.encode(), f"signin:{phone}:{code}".encode(), hashlib.sha256).hexdigest()


async def issue(conn: asyncpg.Connection, *, phone: str, secret: str, now: datetime, valid_for: timedelta) -> str:
    """A new code for `phone`; any code issued before it is void (only the newest one signs in)."""
    code = f"{secrets.randbelow(10**6):06d}"
    # Codes of any phone expired a day ago are of no further use (the audit keeps each sign-in).
    await conn.execute("DELETE FROM signin_code WHERE expires_at < $1", now - timedelta(days=1))
    await conn.execute("UPDATE signin_code SET used_at = $2 WHERE phone = $1 AND used_at IS NULL", phone, now)
    await conn.execute(
        "INSERT INTO signin_code (phone, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        phone, _digest(secret, phone, code), now, now + valid_for)
    return code


async def redeem(conn: asyncpg.Connection, *, phone: str, code: str, secret: str, now: datetime,
                 max_failures: int) -> bool:
    """Whether `code` is the phone's live code; a right one is used up, a wrong one counts against it."""
    row = await conn.fetchrow(
        """SELECT code_id, code_hash FROM signin_code
            WHERE phone = $1 AND used_at IS NULL AND expires_at > $2 AND failures < $3
            ORDER BY created_at DESC LIMIT 1 FOR UPDATE""", phone, now, max_failures)
    if row is None:
        return False
    if hmac.compare_digest(row["code_hash"], _digest(secret, phone, code.strip())):
        await conn.execute("UPDATE signin_code SET used_at = $2 WHERE code_id = $1", row["code_id"], now)
        return True
    await conn.execute("UPDATE signin_code SET failures = failures + 1 WHERE code_id = $1", row["code_id"])
    return False

