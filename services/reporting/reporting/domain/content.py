"""What a report says: free-text sections plus structured fields; its canonical hash; diffs.

The hash is what a signature binds: SHA-256 over canonical JSON (sorted keys, no spaces, UTF-8)
of the report identity and content, so the same content always hashes the same and any change
to a word, a field or the patient/exam it belongs to changes the hash.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field


class FieldValue(BaseModel):
    """One structured field's value; which parts are used depends on the template field type."""

    value: str | float | int | bool | None = None  # text, choice, number, measurement
    unit: str | None = None  # number / measurement
    code: str | None = None  # coded finding, e.g. RID5350
    code_system: str | None = None  # e.g. "RadLex", "SNOMED-CT"
    display: str | None = None  # the code's meaning, e.g. "肺结节"
    critical: bool = False  # marks a critical finding (raises critical.raised at once)


class ReportContent(BaseModel):
    findings: str = ""  # 影像表现
    impression: str = ""  # 诊断意见
    recommendation: str = ""  # 建议
    fields: dict[str, FieldValue] = Field(default_factory=dict)
    positive: bool | None = None  # the radiologist's positive / negative call (8.3.2)


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_sha256(*, report_id: str, accession_number: str, patient_id: str, version: int,
                   content: dict[str, Any]) -> str:
    """The digest a signature covers: identity + the exact stored content."""
    body = {"report_id": report_id, "accession_number": accession_number, "patient_id": patient_id,
            "version": version, "content": content}
    return hashlib.sha256(canonical(body)).hexdigest()


def _field_text(value: dict[str, Any] | None) -> str:
    if not value:
        return ""
    parts = [str(value.get("value")) if value.get("value") is not None else ""]
    if value.get("unit"):
        parts.append(str(value["unit"]))
    if value.get("code"):
        parts.append(f"[{value.get('code_system') or ''}:{value['code']}]")
    if value.get("critical"):
        parts.append("(critical)")
    return " ".join(p for p in parts if p)


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Changes from `old` to `new` content: per text section a line diff, per field old -> new."""
    changes: list[dict[str, Any]] = []
    for section in ("findings", "impression", "recommendation"):
        a, b = old.get(section) or "", new.get(section) or ""
        if a != b:
            lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=1))[2:]
            changes.append({"section": section, "old": a, "new": b, "diff": lines})
    old_fields, new_fields = old.get("fields") or {}, new.get("fields") or {}
    for field_id in sorted(set(old_fields) | set(new_fields)):
        a, b = old_fields.get(field_id), new_fields.get(field_id)
        if a != b:
            changes.append({"field": field_id, "old": _field_text(a), "new": _field_text(b)})
    if old.get("positive") != new.get("positive"):
        changes.append({"section": "positive", "old": old.get("positive"), "new": new.get("positive")})
    return changes
