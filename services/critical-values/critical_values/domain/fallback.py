"""Fallback when the system cannot close the loop (standard 7.1.3 (4)): phone tasks with their
outcome, and manual records of phone notifications entered later and linked to the critical value."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from critical_values.domain import lifecycle
from critical_values.domain.errors import Conflict, Invalid, NotFound

OUTCOMES = ("reached", "no-answer", "wrong-number", "other")


async def complete_phone_task(conn: asyncpg.Connection, task_id: int, *, outcome: str, called_person: str | None,
                              called_at: datetime, by: str, notes: str | None,
                              action_taken: str | None) -> dict[str, Any]:
    """Record how the call went; a reached clinician acknowledges the critical value by phone."""
    if outcome not in OUTCOMES:
        raise Invalid(f"outcome must be one of {', '.join(OUTCOMES)}")
    if outcome == "reached" and not called_person:
        raise Invalid("say who was reached (called_person)")
    task = await conn.fetchrow("SELECT * FROM phone_task WHERE task_id = $1 FOR UPDATE", task_id)
    if task is None:
        raise NotFound(f"phone task {task_id} does not exist")
    if task["status"] == "done":
        raise Conflict(f"phone task {task_id} is already done ({task['outcome']})")
    await conn.execute(
        """UPDATE phone_task SET status = 'done', outcome = $2, called_person = $3, called_at = $4, recorded_by = $5,
               notes = $6 WHERE task_id = $1""", task_id, outcome, called_person, called_at, by, notes)
    await lifecycle.log_action(conn, task["critical_id"], actor=by, action="phone-call", channel="phone",
                               recipient=called_person, detail={"task_id": task_id, "outcome": outcome,
                                                                "notes": notes}, at=called_at)
    acknowledged = False
    if outcome == "reached":
        cv = await lifecycle.get(conn, task["critical_id"])
        if cv["closed_at"] is None:
            await lifecycle.acknowledge(conn, task["critical_id"], by=called_person or "", channel="phone",
                                        action_taken=action_taken, at=called_at,
                                        detail={"task_id": task_id, "recorded_by": by})
            acknowledged = True
    return {"task_id": task_id, "critical_id": task["critical_id"], "outcome": outcome, "acknowledged": acknowledged}


async def add_manual_record(conn: asyncpg.Connection, *, accession_number: str, finding: str, called_person: str,
                            called_at: datetime, caller: str, read_back: bool, action_taken: str | None,
                            notes: str | None, entered_by: str) -> int:
    return int(await conn.fetchval(
        """INSERT INTO manual_record (accession_number, finding, called_person, called_at, caller, read_back,
               action_taken, notes, entered_by) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING record_id""",
        accession_number, finding, called_person, called_at, caller, read_back, action_taken, notes, entered_by))


async def link(conn: asyncpg.Connection, record_id: int, critical_id: str, *, by: str,
               at: datetime) -> dict[str, Any]:
    """Back-entry: tie a manual phone record to its critical value; the phone call acknowledges it
    at the time it really happened, so statistics show when the clinician was actually told."""
    rec = await conn.fetchrow("SELECT * FROM manual_record WHERE record_id = $1 FOR UPDATE", record_id)
    if rec is None:
        raise NotFound(f"manual record {record_id} does not exist")
    if rec["critical_id"] is not None:
        if rec["critical_id"] == critical_id:
            return {"record_id": record_id, "critical_id": critical_id, "acknowledged": False}
        raise Conflict(f"manual record {record_id} is already linked to {rec['critical_id']}")
    cv = await lifecycle.get(conn, critical_id, lock=True)
    if cv["accession_number"] != rec["accession_number"]:
        raise Conflict(f"manual record {record_id} is about accession {rec['accession_number']}, "
                       f"the critical value about {cv['accession_number']}")
    await conn.execute("UPDATE manual_record SET critical_id = $2, linked_at = $3, linked_by = $4 WHERE record_id = $1",
                       record_id, critical_id, at, by)
    await lifecycle.log_action(conn, critical_id, actor=by, action="back-entry-linked", channel="phone",
                               recipient=rec["called_person"],
                               detail={"record_id": record_id, "called_at": rec["called_at"], "caller": rec["caller"],
                                       "read_back": rec["read_back"]}, at=at)
    acknowledged = False
    if cv["closed_at"] is None and cv["state"] != "awaiting-confirmation":
        await lifecycle.acknowledge(conn, critical_id, by=rec["called_person"], channel="phone",
                                    action_taken=rec["action_taken"], at=rec["called_at"],
                                    detail={"manual_record": record_id, "caller": rec["caller"], "entered_by": by})
        acknowledged = True
    return {"record_id": record_id, "critical_id": critical_id, "acknowledged": acknowledged}
