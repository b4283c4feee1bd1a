"""Fallback when the system cannot close the loop (standard 7.1.3 (4)): phone tasks with their
outcome, and manual records of phone notifications entered later and linked to the critical value."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from critical_values.domain import lifecycle, times
from critical_values.domain.errors import Conflict, Invalid, NotFound

OUTCOMES = ("reached", "no-answer", "wrong-number", "other")


async def complete_phone_task(conn: asyncpg.Connection, task_id: int, *, outcome: str, called_person: str | None,
                              called_at: datetime | None, recorded_at: datetime, by: str, notes: str | None,
                              action_taken: str | None, skew: timedelta = times.SKEW) -> dict[str, Any]:
    """Record how the call went; a reached clinician acknowledges the critical value by phone.

    `recorded_at` (now) is the record; `called_at`, when the caller says the call was made, is kept
    beside it and judged (called_at_invalid), never used for deadlines or statistics."""
    if outcome not in OUTCOMES:
        raise Invalid(f"outcome must be one of {', '.join(OUTCOMES)}")
    if outcome == "reached" and not called_person:
        raise Invalid("say who was reached (called_person)")
    task = await conn.fetchrow("SELECT * FROM phone_task WHERE task_id = $1 FOR UPDATE", task_id)
    if task is None:
        raise NotFound(f"phone task {task_id} does not exist")
    if task["status"] == "done":
        raise Conflict(f"phone task {task_id} is already done ({task['outcome']})")
    cv = await lifecycle.get(conn, task["critical_id"])
    invalid = times.claim_problem(called_at, received=recorded_at, not_before=times.raised_since(cv), skew=skew)
    await conn.execute(
        """UPDATE phone_task SET status = 'done', outcome = $2, called_person = $3, called_at = $4, recorded_by = $5,
               notes = $6, recorded_at = $7, called_at_invalid = $8 WHERE task_id = $1""",
        task_id, outcome, called_person, called_at or recorded_at, by, notes, recorded_at, invalid)
    claimed = {"called_at": called_at.isoformat()} if called_at else {}
    if invalid:
        claimed["called_at_invalid"] = invalid
    await lifecycle.log_action(conn, task["critical_id"], actor=by, action="phone-call", channel="phone",
                               recipient=called_person, detail={"task_id": task_id, "outcome": outcome,
                                                                "notes": notes, **claimed}, at=recorded_at)
    acknowledged = False
    if outcome == "reached" and cv["closed_at"] is None:
        await lifecycle.acknowledge(conn, task["critical_id"], by=called_person or "", channel="phone",
                                    action_taken=action_taken, at=recorded_at, claimed_at=called_at, skew=skew,
                                    detail={"task_id": task_id, "recorded_by": by})
        acknowledged = True
    return {"task_id": task_id, "critical_id": task["critical_id"], "outcome": outcome, "acknowledged": acknowledged,
            "called_at_invalid": invalid}


async def add_manual_record(conn: asyncpg.Connection, *, accession_number: str, finding: str, called_person: str,
                            called_at: datetime, caller: str, read_back: bool, action_taken: str | None,
                            notes: str | None, entered_by: str, entered_at: datetime,
                            skew: timedelta = times.SKEW) -> int:
    """`called_at` is what was written down (a claim, judged here: not in the future); the record
    reached us at `entered_at`. Linking it judges it again against the value's raise time."""
    invalid = times.claim_problem(called_at, received=entered_at, skew=skew)
    return int(await conn.fetchval(
        """INSERT INTO manual_record (accession_number, finding, called_person, called_at, caller, read_back,
               action_taken, notes, entered_by, entered_at, called_at_invalid)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING record_id""",
        accession_number, finding, called_person, called_at, caller, read_back, action_taken, notes, entered_by,
        entered_at, invalid))


async def link(conn: asyncpg.Connection, record_id: int, critical_id: str, *, by: str,
               at: datetime, skew: timedelta = times.SKEW) -> dict[str, Any]:
    """Back-entry: tie a manual phone record to its critical value. The phone call acknowledges it
    as of now (`at`, when the system learns of it: deadlines and statistics); the time written
    down is kept as the acknowledgement's claimed time, judged like any other claim."""
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
        cv, _ = await lifecycle.acknowledge(
            conn, critical_id, by=rec["called_person"], channel="phone", action_taken=rec["action_taken"], at=at,
            claimed_at=rec["called_at"], skew=skew,
            detail={"manual_record": record_id, "caller": rec["caller"], "entered_by": by})
        acknowledged = True
        if cv["acknowledged_claim_invalid"]:
            await conn.execute("UPDATE manual_record SET called_at_invalid = $2 WHERE record_id = $1",
                               record_id, cv["acknowledged_claim_invalid"])
    return {"record_id": record_id, "critical_id": critical_id, "acknowledged": acknowledged}


# ---- reading -------------------------------------------------------------------------------------

async def phone_tasks(conn: asyncpg.Connection, status: str) -> list[asyncpg.Record]:
    """Phone calls a person must make (status 'open', 'done' or 'all'), with their critical value."""
    return await conn.fetch(
        """SELECT p.*, c.accession_number, c.finding, c.patient_id, c.department, c.ward FROM phone_task p
           JOIN critical_value c USING (critical_id) WHERE $1 = 'all' OR p.status = $1
           ORDER BY p.created_at LIMIT 500""", status)


async def called_at_invalid(conn: asyncpg.Connection, record_id: int) -> Any:
    """Why the manual record's claimed call time was not believed, if it was not."""
    return await conn.fetchval("SELECT called_at_invalid FROM manual_record WHERE record_id = $1", record_id)


async def manual_records(conn: asyncpg.Connection, *, linked: bool,
                         accession_number: str | None) -> list[asyncpg.Record]:
    """Manual phone records, linked or not, each with the critical values of its accession (candidates)."""
    return await conn.fetch(
        """SELECT m.*, (SELECT array_agg(critical_id) FROM critical_value c
                         WHERE c.accession_number = m.accession_number) AS candidates
           FROM manual_record m WHERE (critical_id IS NOT NULL) = $1
           AND ($2::text IS NULL OR accession_number = $2) ORDER BY entered_at LIMIT 500""",
        linked, accession_number)
