"""The live board of open critical values: time left and urgency colour (standard 8.7)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg


def mask_name(name: str) -> str:
    """张三丰 -> 张*丰, ZHANG^SAN -> Z***^S**: enough for staff to recognise, not to expose."""
    if "^" in name or name.isascii():
        return "^".join(p[:1] + "*" * max(0, len(p) - 1) for p in name.split("^"))
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def urgency(state: str, left_s: float, span_s: float) -> str:
    """overdue (red), urgent (orange: under a third of the time left), waiting (blue: needs a
    senior doctor's confirmation), ok (green)."""
    if left_s <= 0:
        return "overdue"
    if state == "awaiting-confirmation":
        return "confirm"
    if span_s > 0 and left_s / span_s < 1 / 3:
        return "urgent"
    return "ok"


async def open_items(conn: asyncpg.Connection, *, now: datetime) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT c.*, (SELECT count(*) FROM phone_task p WHERE p.critical_id = c.critical_id
                        AND p.status = 'open') AS open_phone_tasks
           FROM critical_value c WHERE closed_at IS NULL ORDER BY ack_due_at NULLS LAST""")
    out = []
    for r in rows:
        patient = json.loads(r["patient"]) if isinstance(r["patient"], str) else r["patient"]
        due = r["ack_due_at"] if r["first_notified_at"] is not None else (r["notify_due_at"] or r["ack_due_at"])
        left = (due - now).total_seconds() if due else 0.0
        span = (due - r["raised_at"]).total_seconds() if due else 0.0
        out.append({
            "critical_id": r["critical_id"], "accession_number": r["accession_number"],
            "patient_name": mask_name(patient.get("name", "")), "patient_id": r["patient_id"],
            "finding": r["finding"], "item_code": r["item_code"], "category": r["category"],
            "modality": r["modality"], "state": r["state"], "raised_at": r["raised_at"],
            "due_at": due, "seconds_left": round(left, 1), "urgency": urgency(r["state"], left, span),
            "recipient": r["recipient_name"] or r["recipient_id"], "department": r["department"],
            "ward": r["ward"], "escalation_level": r["escalation_level"],
            "open_phone_tasks": r["open_phone_tasks"], "first_notified_at": r["first_notified_at"],
        })
    # The nearest deadline first: a value not yet delivered runs against its (shorter) notification
    # deadline, so it comes before delivered ones waiting for their acknowledgement.
    out.sort(key=lambda item: item["seconds_left"])
    return out
