"""TLS contexts for the protocol ports (DICOM, MLLP), per the BCP 195 profile of DICOM PS3.15 B.9.

- TLS 1.2 or later only (SSLv3, TLS 1.0 and 1.1 are refused), no compression, no renegotiation;
- the TLS 1.2 cipher suites of BCP 195 (RFC 9325 4.2, the ones PS3.15's BCP 195 profiles name):
  ECDHE/DHE key exchange with AES-GCM, authenticated by RSA or ECDSA certificates; TLS 1.3 uses
  its own AEAD suites (OpenSSL's defaults: AES-GCM, ChaCha20-Poly1305);
- the server's preference order decides, so a client cannot steer towards a weaker suite;
- mutual TLS when asked: a client must present a certificate signed by the configured CA.

Certificates and keys come from files (PEM), named by settings; nothing is generated here.
`fingerprint(der)` is how a registered peer's certificate is recognised (sha256, hex).
"""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path

# BCP 195 (RFC 7525 4.2 / RFC 9325 4.2) TLS 1.2 suites, OpenSSL names, strongest first.
BCP195_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES128-GCM-SHA256",
])

_OPTIONS = ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)


class TLSConfigError(ValueError):
    """A TLS listener or client is asked for without the files it needs (or they cannot be read)."""


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= _OPTIONS
    context.set_ciphers(BCP195_CIPHERS)
    return context


def _readable(what: str, path: str | Path | None) -> str:
    if not path:
        raise TLSConfigError(f"{what} is not set")
    p = Path(path)
    if not p.is_file():
        raise TLSConfigError(f"{what} {p} does not exist or is not a file")
    return str(p)


def server_context(cert_file: str | Path | None, key_file: str | Path | None, *, ca_file: str | Path | None = None,
                   require_client_cert: bool = False, what: str = "TLS") -> ssl.SSLContext:
    """A server context: our certificate chain and key; with `require_client_cert`, a client must
    present a certificate signed by `ca_file` (else the handshake fails). With a CA file but without
    the requirement, a client certificate is asked for and verified when one is presented."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(_readable(f"{what} certificate file", cert_file),
                                _readable(f"{what} key file", key_file))
        if ca_file:
            context.load_verify_locations(_readable(f"{what} CA file", ca_file))
    except ssl.SSLError as exc:
        raise TLSConfigError(f"{what}: cannot load the certificate, key or CA: {exc}") from exc
    if require_client_cert:
        if not ca_file:
            raise TLSConfigError(f"{what}: requiring client certificates needs a CA file to verify them")
        context.verify_mode = ssl.CERT_REQUIRED
    elif ca_file:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(*, ca_file: str | Path | None = None, cert_file: str | Path | None = None,
                   key_file: str | Path | None = None, check_hostname: bool = True,
                   what: str = "TLS client") -> ssl.SSLContext:
    """A client context verifying the server against `ca_file` (the system's CAs when unset), and
    presenting our certificate when `cert_file`/`key_file` are given (mutual TLS)."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    try:
        if ca_file:
            context.load_verify_locations(_readable(f"{what} CA file", ca_file))
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if cert_file or key_file:
            context.load_cert_chain(_readable(f"{what} certificate file", cert_file),
                                    _readable(f"{what} key file", key_file))
    except ssl.SSLError as exc:
        raise TLSConfigError(f"{what}: cannot load the certificate, key or CA: {exc}") from exc
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def fingerprint(der: bytes | None) -> str | None:
    """The sha256 of a DER certificate as lowercase hex (how a peer's certificate is registered)."""
    return hashlib.sha256(der).hexdigest() if der else None


def normalize_fingerprint(value: str | None) -> str | None:
    """'AB:CD:...' or 'abcd...' (sha256) -> 'abcd...'; None/empty -> None."""
    if not value:
        return None
    hexed = value.replace(":", "").replace(" ", "").strip().lower()
    if len(hexed) != 64 or any(c not in "0123456789abcdef" for c in hexed):
        raise ValueError("a certificate fingerprint is the sha256 of the DER certificate: 64 hex digits")
    return hexed


def peer_fingerprint(sock: object) -> str | None:
    """The sha256 fingerprint of the certificate the peer of an `ssl.SSLSocket` / `ssl.SSLObject`
    presented, or None (no TLS, or no client certificate)."""
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        return fingerprint(getpeercert(binary_form=True))
    except (ValueError, OSError):
        return None
