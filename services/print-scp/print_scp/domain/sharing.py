"""Cloud-film share links (smart-imaging standard 3.10, 5.4 (5); regional imaging-cloud spec).

A link carries a random token; the database keeps only its SHA-256. Opening it requires an
identity check (the last four digits of the patient's phone or ID number), within the validity
period the sharer chose, and locks after a few wrong answers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

import asyncpg

CHECKS = ("phone-last4", "id-last4")


class ShareRefused(Exception):
    """The link cannot be used: why, in words a patient understands."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def expected_answer(kind: str, patient: dict) -> str | None:
    """The four digits the person opening the link must know; None when we do not have them."""
    source = patient.get("phone") if kind == "phone-last4" else patient.get("id_number_masked")
    # Chinese ID numbers end in a check character that may be X.
    digits = re.sub(r"[^0-9X]", "", (source or "").upper())
    return digits[-4:] if len(digits) >= 4 else None


def answer_hash(share_id: str, answer: str) -> str:
    return hashlib.sha256(f"{share_id}:{answer.strip().upper()}".encode()).hexdigest()


def answer_matches(share_id: str, answer: str, stored: str) -> bool:
    return hmac.compare_digest(answer_hash(share_id, answer), stored)


def mask_name(name: str) -> str:
    """张三 -> 张*, 欧阳娜娜 -> 欧**娜, SMITH^JOHN -> S**** J***: enough to recognise, not to identify."""
    parts = [p for p in re.split(r"[\^ ]+", name or "") if p]
    if not parts:
        return ""
    if all(ord(c) > 0x2E80 for c in "".join(parts)):  # CJK: keep the family name
        full = "".join(parts)
        return full[0] + "*" if len(full) <= 2 else full[0] + "*" * (len(full) - 2) + full[-1]
    return " ".join(p[0] + "*" * (len(p) - 1) for p in parts)


# ---- share links, stored -------------------------------------------------------------------------

async def create(conn: asyncpg.Connection, *, share_id: str, token: str, accession: str, empi_id: str,
                 check_kind: str, answer: str, expires_at: datetime, created_by: str) -> None:
    """The link stored by its token's hash, the identity check by its answer's."""
    await conn.execute(
        """INSERT INTO film_shares (id, token_sha256, accession_number, empi_id, check_kind, check_sha256,
               expires_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        share_id, token_hash(token), accession, empi_id, check_kind, answer_hash(share_id, answer), expires_at,
        created_by)


async def revoke(conn: asyncpg.Connection, share_id: str) -> bool:
    row = await conn.fetchrow("UPDATE film_shares SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 "
                              "RETURNING accession_number", share_id)
    return row is not None


async def by_token(conn: asyncpg.Connection, token: str) -> asyncpg.Record | None:
    """The link for this token, locked: its failed attempts are counted under the lock."""
    return await conn.fetchrow("SELECT * FROM film_shares WHERE token_sha256 = $1 FOR UPDATE", token_hash(token))


async def count_failure(conn: asyncpg.Connection, share_id: str) -> None:
    await conn.execute("UPDATE film_shares SET failed_attempts = failed_attempts + 1 WHERE id = $1", share_id)


async def shared_film_image(conn: asyncpg.Connection, film_id: str, share_id: str) -> asyncpg.Record | None:
    """png_key and patient of a matched film the live share covers; None when it covers no such film."""
    return await conn.fetchrow(
        """SELECT f.png_key, f.patient_id FROM films f JOIN film_shares s ON s.accession_number = f.accession_number
               AND s.empi_id = f.empi_id
           WHERE f.id = $1 AND s.id = $2 AND f.match_status = 'matched' AND s.revoked_at IS NULL
               AND s.expires_at > now()""", film_id, share_id)
