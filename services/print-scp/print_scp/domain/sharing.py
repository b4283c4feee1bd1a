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
