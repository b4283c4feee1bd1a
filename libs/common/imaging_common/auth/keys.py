"""The RSA key that signs the platform's access tokens, and its public half as a JWKS.

Production reads the private key from IMAGING_JWT_PRIVATE_KEY_FILE. A developer machine gets
one generated under $IMAGING_DATA_DIR/keys/ the first time anything needs it; the file is
created atomically, so seven services (or two replicas) starting together end up sharing one key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from imaging_common.config import CommonSettings

DEV_KEY_NAME = "jwt-private.pem"


class KeyConfigurationError(RuntimeError):
    """The signing or verifying key is missing or unusable; the message says which variable to set."""


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class PublicKey:
    """An RSA public key with its RFC 7638 thumbprint as key id."""

    pem: str
    jwk: dict[str, str]

    @property
    def kid(self) -> str:
        return self.jwk["kid"]

    @classmethod
    def from_pem(cls, pem: bytes | str) -> PublicKey:
        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, rsa.RSAPublicKey):
            raise KeyConfigurationError("the JWT public key must be an RSA key (RS256)")
        return cls._from_key(key)

    @classmethod
    def _from_key(cls, key: rsa.RSAPublicKey) -> PublicKey:
        numbers = key.public_numbers()
        e, n = _b64url_uint(numbers.e), _b64url_uint(numbers.n)
        # RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
        thumbprint = hashlib.sha256(json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":")).encode())
        kid = base64.urlsafe_b64encode(thumbprint.digest()).rstrip(b"=").decode()
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(pem.decode(), {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e})


@dataclass(frozen=True)
class SigningKey:
    private_pem: str
    public: PublicKey

    @property
    def kid(self) -> str:
        return self.public.kid

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise KeyConfigurationError("the JWT private key must be an RSA key (RS256)")
        if key.key_size < 2048:
            raise KeyConfigurationError(f"the JWT private key has {key.key_size} bits; at least 2048 are required")
        return cls(pem.decode(), PublicKey._from_key(key.public_key()))


def jwks(*keys: PublicKey) -> dict[str, Any]:
    return {"keys": [dict(k.jwk) for k in keys]}


def _generate_dev_key(path: Path) -> None:
    """Write a new key to `path` unless one appears there first (atomic: link, never overwrite)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jwt-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process won the race; its key is then used
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


K = TypeVar("K")


def _from_pem_file(load: Callable[[bytes], K], file: Path | str, variable: str) -> K:
    """A key from the PEM file a setting names; a missing or unreadable one stops the service, naming it."""
    path = Path(file)
    try:
        return load(path.read_bytes())
    except FileNotFoundError:
        raise KeyConfigurationError(f"{variable}={path} does not exist") from None
    except ValueError as exc:
        raise KeyConfigurationError(f"{variable}={path} is not a PEM RSA key: {exc}") from None


def load_signing_key(settings: CommonSettings) -> SigningKey:
    """The private key from IMAGING_JWT_PRIVATE_KEY_FILE, or the development key."""
    if settings.jwt_private_key_file is not None:
        return _from_pem_file(SigningKey.from_pem, settings.jwt_private_key_file, "IMAGING_JWT_PRIVATE_KEY_FILE")
    if settings.env == "production":
        raise KeyConfigurationError(
            "IMAGING_JWT_PRIVATE_KEY_FILE is required in production (a PEM RSA key of 2048+ bits, "
            "e.g. `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out jwt-private.pem`); "
            "generated development keys are refused"
        )
    path = Path(settings.data_dir) / "keys" / DEV_KEY_NAME
    if not path.exists():
        _generate_dev_key(path)
    return SigningKey.from_pem(path.read_bytes())


def load_public_key(settings: CommonSettings) -> PublicKey:
    """What a verifier trusts when no JWKS URL is set: the public key file or the private key's half."""
    if settings.jwt_public_key_file is not None:
        return _from_pem_file(PublicKey.from_pem, settings.jwt_public_key_file, "IMAGING_JWT_PUBLIC_KEY_FILE")
    return load_signing_key(settings).public
