"""The audit chain's HMAC key, kept outside the database, and the audit settings.

Production reads it from IMAGING_AUDIT_HMAC_KEY or IMAGING_AUDIT_HMAC_KEY_FILE (a mounted Secret;
32+ characters, e.g. `openssl rand -hex 32`). A developer machine gets one generated under
$IMAGING_DATA_DIR/keys/audit-hmac.key by the first writer that needs it (atomically, as the JWT
development key is), so every service of `make run` shares it. Readers (verify, checkpoint) never
generate one: a verifier run from the wrong folder must say the key is missing, not invent another.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from imaging_common.config import CommonSettings

DEV_KEY_NAME = "audit-hmac.key"
MIN_KEY_LENGTH = 32


class AuditKeyError(RuntimeError):
    """The audit HMAC key is missing or unusable; the message names what to set."""


class AuditSettings(CommonSettings):
    # IMAGING_AUDIT_HMAC_KEY / IMAGING_AUDIT_HMAC_KEY_FILE: the key of the audit chain's HMAC, or a file
    # holding it (e.g. /run/secrets/imaging/audit/hmac-key). Required in production.
    audit_hmac_key: str | None = Field(None, repr=False)
    audit_hmac_key_file: Path | None = None
    # IMAGING_AUDIT_CHECKPOINT_DIR: where `verify` and `checkpoint` export signed checkpoints, and where
    # `verify` finds the last one to compare the chain with. Default $IMAGING_DATA_DIR/audit-checkpoints.
    # Put it on storage the database's administrators cannot write (another host, WORM bucket mount).
    audit_checkpoint_dir: Path | None = None
    # IMAGING_AUDIT_OWNER_DATABASE_URL: a connection as imaging_audit_owner (or an administrator that may
    # SET ROLE to it) for the audit migrations and the purge; unset: DATABASE_URL (development superuser).
    audit_owner_database_url: str | None = Field(None, repr=False)

    def checkpoint_dir(self) -> Path:
        return Path(self.audit_checkpoint_dir or Path(self.data_dir) / "audit-checkpoints")


@dataclass(frozen=True)
class AuditKey:
    secret: bytes

    @property
    def key_id(self) -> str:
        """Names the key without revealing it (stored in the chain and in each checkpoint)."""
        return hmac.new(self.secret, b"imaging-audit key id", hashlib.sha256).hexdigest()[:16]

    def row_mac(self, message: bytes) -> str:
        return hmac.new(self.secret, b"imaging-audit row\n" + message, hashlib.sha256).hexdigest()

    def checkpoint_signature(self, message: bytes) -> str:
        return hmac.new(self.secret, b"imaging-audit checkpoint\n" + message, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id})"


def _checked(secret: bytes, where: str) -> AuditKey:
    secret = secret.strip()
    if len(secret) < MIN_KEY_LENGTH:
        raise AuditKeyError(f"{where} holds {len(secret)} bytes; the audit HMAC key needs {MIN_KEY_LENGTH}+ "
                            "(e.g. `openssl rand -hex 32`)")
    return AuditKey(secret)


def _generate_dev_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".audit-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, secrets.token_hex(32).encode() + b"\n")
        os.close(fd)
        try:
            os.link(tmp, path)  # another process won the race: its key is used
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def load_key(settings: AuditSettings, *, generate: bool = False) -> AuditKey | None:
    """The configured key; in development the generated one (made when `generate`), else None.

    Production without a configured key raises: the chain would be as forgeable as plain SHA-256.
    """
    if settings.audit_hmac_key:
        return _checked(settings.audit_hmac_key.encode(), "IMAGING_AUDIT_HMAC_KEY")
    if settings.audit_hmac_key_file is not None:
        path = Path(settings.audit_hmac_key_file)
        try:
            return _checked(path.read_bytes(), f"IMAGING_AUDIT_HMAC_KEY_FILE={path}")
        except FileNotFoundError:
            raise AuditKeyError(f"IMAGING_AUDIT_HMAC_KEY_FILE={path} does not exist") from None
    if settings.env == "production":
        raise AuditKeyError(
            "IMAGING_AUDIT_HMAC_KEY or IMAGING_AUDIT_HMAC_KEY_FILE is required in production (32+ random "
            "characters from a Secret, e.g. `openssl rand -hex 32`); generated development keys are refused"
        )
    path = Path(settings.data_dir) / "keys" / DEV_KEY_NAME
    if not path.exists():
        if not generate:
            return None
        _generate_dev_key(path)
    return _checked(path.read_bytes(), str(path))


_ENV_NAMES = ("IMAGING_AUDIT_HMAC_KEY", "IMAGING_AUDIT_HMAC_KEY_FILE", "IMAGING_DATA_DIR", "IMAGING_ENV")
_writer_keys: dict[tuple[str | None, ...], AuditKey] = {}


def writer_key() -> AuditKey:
    """The key `record()` signs with, read from the environment once per distinct configuration."""
    marker = tuple(os.environ.get(name) for name in _ENV_NAMES)
    key = _writer_keys.get(marker)
    if key is None:
        key = load_key(AuditSettings(), generate=True)
        assert key is not None
        _writer_keys[marker] = key
    return key
