"""Electronic signature (standard 10.2.4): Ed25519 keys per user, content hash bound to signer and time.

A signature covers the *statement* `{report_id, version, kind, content_sha256, signer_id,
signed_at, key_id}` in canonical JSON, so neither the content nor who signed it nor when can
change without verification failing. Each user's private key is generated on their first
signature and stored encrypted with AES-256-GCM under a key derived from the service's signing
secret (`IMAGING_REPORTING_SIGNING_SECRET`), in its own table, never beside the report.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reporting.domain.content import canonical


class SigningError(Exception):
    """No usable key (awaiting approval, secret changed)."""


def _kek(secret: str) -> AESGCM:
    # The key-encryption key; the label keeps it distinct from any other use of the secret.
    return AESGCM(hashlib.sha256(b"imaging-reporting-signing-key:" + secret.encode()).digest())


def encrypt_private(key: Ed25519PrivateKey, secret: str, key_id: str) -> bytes:
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    nonce = os.urandom(12)
    return nonce + _kek(secret).encrypt(nonce, der, key_id.encode())


def decrypt_private(blob: bytes, secret: str, key_id: str) -> Ed25519PrivateKey:
    try:
        der = _kek(secret).decrypt(blob[:12], blob[12:], key_id.encode())
    except Exception as exc:  # wrong secret or a tampered blob: never sign with it
        raise SigningError(f"signing key {key_id} cannot be unlocked (secret changed?)") from exc
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


@dataclass(frozen=True)
class UserKey:
    key_id: str
    private: Ed25519PrivateKey


_cache: dict[tuple[str, str], UserKey] = {}  # (user_id, secret digest) -> unlocked key, per process


async def key_for(conn: asyncpg.Connection, *, user_id: str, username: str, secret: str,
                  require_approval: bool = False) -> UserKey:
    """The user's active key. Without `require_approval` it is made on first use; with it (standard
    10.2.4 (1)) the user enrols (`enrol`) and an administrator approves before the first signature."""
    cache_key = (user_id, hashlib.sha256(secret.encode()).hexdigest())
    row = await conn.fetchrow(
        "SELECT key_id, private_key_enc, status FROM signing_key WHERE user_id = $1 "
        "AND status IN ('active', 'pending')", user_id)
    if row is not None and row["status"] == "pending":
        raise SigningError(f"signing key {row['key_id']} of {username} awaits approval by an administrator")
    if row is not None:
        cached = _cache.get(cache_key)
        if cached is not None and cached.key_id == row["key_id"]:
            return cached
        found = UserKey(row["key_id"], decrypt_private(bytes(row["private_key_enc"]), secret, row["key_id"]))
        _cache[cache_key] = found
        return found
    if require_approval:
        raise SigningError(f"{username} has no approved signing key: enrol (POST /signing-keys) and have an "
                           "administrator approve it")
    created = await enrol(conn, user_id=user_id, username=username, secret=secret, status="active")
    if created is None:  # created concurrently by another request of the same user
        return await key_for(conn, user_id=user_id, username=username, secret=secret)
    _cache[cache_key] = created
    return created


async def enrol(conn: asyncpg.Connection, *, user_id: str, username: str, secret: str,
                status: str = "pending") -> UserKey | None:
    """Make the user's key pair; None when the user already has an active or pending key."""
    private = Ed25519PrivateKey.generate()
    key_id = f"k-{uuid.uuid4().hex[:16]}"
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    inserted = await conn.fetchval(
        """INSERT INTO signing_key (key_id, user_id, username, public_key, private_key_enc, status)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (user_id) WHERE status IN ('active', 'pending') DO NOTHING RETURNING key_id""",
        key_id, user_id, username, public_pem, encrypt_private(private, secret, key_id), status)
    return UserKey(key_id, private) if inserted else None


def statement(*, report_id: str, version: int, kind: str, content_sha256: str, signer_id: str,
              signed_at: datetime, key_id: str) -> bytes:
    return canonical({"report_id": report_id, "version": version, "kind": kind, "content_sha256": content_sha256,
                      "signer_id": signer_id, "signed_at": signed_at.isoformat(), "key_id": key_id})


def sign(key: UserKey, message: bytes) -> str:
    return base64.b64encode(key.private.sign(message)).decode()


def verify(public_pem: str, message: bytes, signature_b64: str) -> bool:
    public = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(public, Ed25519PublicKey)
    try:
        public.verify(base64.b64decode(signature_b64), message)
        return True
    except (InvalidSignature, ValueError):
        return False


def public_info(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    return {"key_id": row["key_id"], "username": row["username"], "status": row["status"],
            "public_key": row["public_key"], "created_at": row["created_at"].isoformat()}


async def signatures_of(conn: asyncpg.Connection, report_id: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, version, kind, signer_id, signer_name, signed_at, content_sha256, key_id "
                            "FROM signature WHERE report_id = $1 ORDER BY id", report_id)


async def log_entries(conn: asyncpg.Connection, *, report_id: str | None, limit: int) -> list[asyncpg.Record]:
    """Every signing and verification (standard 10.2.4), newest first."""
    return await conn.fetch("SELECT * FROM signature_log WHERE ($1::text IS NULL OR report_id = $1) "
                            "ORDER BY id DESC LIMIT $2", report_id, limit)


async def keys(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Users' public signing keys (never the private part)."""
    return await conn.fetch("SELECT key_id, user_id, username, public_key, status, created_at, approved_by, "
                            "approved_at, revoked_at "
                            "FROM signing_key ORDER BY created_at")


async def approve(conn: asyncpg.Connection, key_id: str, approved_by: str) -> bool:
    """A pending key made active; False when there is no pending key of that id."""
    done = await conn.execute("UPDATE signing_key SET status = 'active', approved_by = $2, approved_at = now() "
                              "WHERE key_id = $1 AND status = 'pending'", key_id, approved_by)
    return done.endswith(" 1")


async def revoke(conn: asyncpg.Connection, key_id: str) -> bool:
    """An active key revoked; False when there is no active key of that id."""
    done = await conn.execute("UPDATE signing_key SET status = 'revoked', revoked_at = now() "
                              "WHERE key_id = $1 AND status = 'active'", key_id)
    return done.endswith(" 1")
