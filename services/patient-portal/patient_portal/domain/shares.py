"""Share links the patient makes for one exam's report: a random token (its SHA-256 kept), valid 1 to
30 days, revocable by the patient, every opening logged (who: address and browser; when; outcome)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

import asyncpg

MIN_DAYS, MAX_DAYS = 1, 30


class ShareRefused(Exception):
    """The link cannot be opened (unknown 404, expired or revoked 410)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(conn: asyncpg.Connection, *, phone: str, empi_id: str, accession_number: str, days: int,
                 now: datetime) -> tuple[dict[str, Any], str]:
    """A new link (its row, its token: shown once, in the URL the patient passes on)."""
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError(f"a share link is valid {MIN_DAYS} to {MAX_DAYS} days")
    token = secrets.token_urlsafe(24)
    row = await conn.fetchrow(
        """INSERT INTO share (token_sha256, phone, empi_id, accession_number, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING share_id, accession_number, created_at, expires_at, revoked_at""",
        _digest(token), phone, empi_id, accession_number, now, now + timedelta(days=days))
    return dict(row), token


async def of_phone(conn: asyncpg.Connection, phone: str) -> list[dict[str, Any]]:
    """The patient's links, newest first, each with its access log."""
    rows = await conn.fetch(
        """SELECT s.share_id, s.accession_number, s.created_at, s.expires_at, s.revoked_at,
                  COALESCE(json_agg(json_build_object('at', a.at, 'source_ip', a.source_ip,
                                                      'user_agent', a.user_agent, 'outcome', a.outcome)
                                    ORDER BY a.at DESC) FILTER (WHERE a.access_id IS NOT NULL), '[]') AS accesses
             FROM share s LEFT JOIN share_access a USING (share_id)
            WHERE s.phone = $1 GROUP BY s.share_id ORDER BY s.created_at DESC""", phone)
    return [dict(r) for r in rows]


async def revoke(conn: asyncpg.Connection, *, share_id: str, phone: str, now: datetime) -> bool:
    """Only the phone that made the link revokes it; False when it is not theirs (or not there)."""
    done = await conn.execute("UPDATE share SET revoked_at = COALESCE(revoked_at, $3) WHERE share_id = $1::uuid "
                              "AND phone = $2", share_id, phone, now)
    return done != "UPDATE 0"


async def open_link(conn: asyncpg.Connection, *, token: str, now: datetime, source_ip: str | None,
                    user_agent: str | None) -> dict[str, Any]:
    """The shared link's exam (its share_id and empi_id with it), the opening logged either way."""
    share = await conn.fetchrow("SELECT * FROM share WHERE token_sha256 = $1", _digest(token))
    if share is None:
        raise ShareRefused(404, "this share link is not valid")
    outcome = "revoked" if share["revoked_at"] else "expired" if share["expires_at"] <= now else "opened"
    await conn.execute("INSERT INTO share_access (share_id, at, source_ip, user_agent, outcome) "
                       "VALUES ($1, $2, $3, $4, $5)", share["share_id"], now, source_ip, (user_agent or "")[:200],
                       outcome)
    if outcome == "revoked":
        raise ShareRefused(410, "this share link was withdrawn")
    if outcome == "expired":
        raise ShareRefused(410, "this share link has expired")
    return dict(share)
