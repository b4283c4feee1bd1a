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

DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def new_device_key() -> str:
    return secrets.token_urlsafe(32)


def new_slip_token() -> str:
    return secrets.token_urlsafe(18)  # 144 bits; fits a small QR code


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
