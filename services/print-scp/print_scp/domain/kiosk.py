"""Self-service film kiosks (smart-imaging standard 4.3.3; issue 18, 8).

- Each kiosk device has a key of its own (random, shown once when registered; the database keeps its
  SHA-256); revoking one device leaves the others working.
- The patient's slip carries a random token (a QR code printed at the desk), not the accession
  number: knowing or guessing someone's accession number fetches nothing.
- Looking films up changes nothing; films count as handed over only when the patient confirms at the
  kiosk that they were printed and collected.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

import asyncpg

DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def new_device_key() -> str:
    return secrets.token_urlsafe(32)


def new_slip_token() -> str:
    return secrets.token_urlsafe(18)  # 144 bits; fits a small QR code


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# ---- devices and slips, stored -------------------------------------------------------------------

async def register_device(conn: asyncpg.Connection, device_id: str, name: str, key: str,
                          created_by: str) -> asyncpg.Record | None:
    """The new device's row; None when the id exists (revoked ids are not reused)."""
    return await conn.fetchrow(
        "INSERT INTO kiosk_devices (id, name, key_sha256, created_by) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (id) DO NOTHING RETURNING *", device_id, name, digest(key), created_by)


async def devices(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM kiosk_devices ORDER BY id")


async def revoke_device(conn: asyncpg.Connection, device_id: str, revoked_by: str) -> bool:
    row = await conn.fetchrow("UPDATE kiosk_devices SET revoked_at = coalesce(revoked_at, now()), "
                              "revoked_by = coalesce(revoked_by, $2) WHERE id = $1 RETURNING id",
                              device_id, revoked_by)
    return row is not None


async def device_by_key(conn: asyncpg.Connection, key: str) -> asyncpg.Record | None:
    """The registered, unrevoked device presenting `key`."""
    return await conn.fetchrow("SELECT id, name FROM kiosk_devices WHERE key_sha256 = $1 AND revoked_at IS NULL",
                               digest(key))


async def issue_slip(conn: asyncpg.Connection, *, slip_id: str, token: str, accession: str, empi_id: str,
                     created_by: str, expires_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO film_slips (id, token_sha256, accession_number, empi_id, created_by, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)", slip_id, digest(token), accession, empi_id, created_by, expires_at)


async def revoke_slip(conn: asyncpg.Connection, slip_id: object) -> bool:
    row = await conn.fetchrow("UPDATE film_slips SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 "
                              "RETURNING id", slip_id)
    return row is not None


async def valid_slip(conn: asyncpg.Connection, token: str) -> asyncpg.Record | None:
    """The unrevoked, unexpired slip with this token."""
    return await conn.fetchrow("SELECT id, accession_number, empi_id FROM film_slips WHERE token_sha256 = $1 "
                               "AND revoked_at IS NULL AND expires_at > now()", digest(token))
