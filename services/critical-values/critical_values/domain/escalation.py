"""Deadlines and the escalation chain (standard 7.1.3 (3), (4)); timers live in the `timer` table.

`fire_due` claims due timers FOR UPDATE SKIP LOCKED, so replicas never fire one twice, and acts in
the same transaction that marks them fired. After downtime the first poll finds every overdue timer
and fires it at once (catch-up); the lateness is logged for the 2-second target.

Chain steps (configurable in `escalation_chain`), each waiting `after_minutes` for an answer:
  repeat            send the same notification again (new identifier: it is a new message)
  backup-clinician  notify the department's backup on the on-call roster
  phone-task        a human must phone; the outcome is recorded on the task
  department-head   notify the department head on the roster
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from critical_values.domain import lifecycle, recipients
from critical_values.domain.errors import Invalid
from critical_values.domain.recipients import Person

log = logging.getLogger(__name__)
RETRY_FAILED_TIMER_S = 30.0
ACTIONS = ("repeat", "backup-clinician", "phone-task", "department-head")


async def chain(conn: asyncpg.Connection, chain_id: str = "default") -> list[dict[str, Any]]:
    raw = await conn.fetchval("SELECT steps FROM escalation_chain WHERE chain_id = $1", chain_id)
    return json.loads(raw) if isinstance(raw, str) else (raw or [])


async def set_chain(conn: asyncpg.Connection, steps: list[dict[str, Any]], *, by: str,
                    chain_id: str = "default") -> None:
    for s in steps:
        if s.get("action") not in ACTIONS:
            raise Invalid(f"unknown escalation action {s.get('action')!r}; known: {', '.join(ACTIONS)}")
        if not float(s.get("after_minutes", 0)) > 0:
            raise Invalid("every step needs after_minutes > 0")
    await conn.execute(
        """INSERT INTO escalation_chain (chain_id, steps, updated_by) VALUES ($1, $2::jsonb, $3)
           ON CONFLICT (chain_id) DO UPDATE SET steps = EXCLUDED.steps, updated_by = EXCLUDED.updated_by,
               updated_at = now()""", chain_id, json.dumps(steps), by)


async def fire_due(conn: asyncpg.Connection, at: datetime, *, limit: int = 50) -> list[dict[str, Any]]:
    """Fire every due timer (caller holds a transaction); returns what fired with its lateness."""
    due = await conn.fetch(
        """SELECT * FROM timer WHERE fired_at IS NULL AND NOT cancelled AND due_at <= $1
           ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED""", at, limit)
    fired = []
    for timer in due:
        lateness = (at - timer["due_at"]).total_seconds()
        try:
            async with conn.transaction():  # a savepoint: one timer's failure never blocks the others
                await conn.execute("UPDATE timer SET fired_at = $2 WHERE timer_id = $1", timer["timer_id"], at)
                cv = await lifecycle.get(conn, timer["critical_id"], lock=True)
                if cv["closed_at"] is not None:
                    continue
                if timer["kind"] == "notify-deadline":
                    await _notify_deadline(conn, cv, at, lateness)
                else:
                    await _ack_deadline(conn, cv, timer["step"], at, lateness)
        except (asyncpg.PostgresError, ValueError, KeyError, TypeError):
            # Never drop an escalation: leave the timer unfired and try it again shortly.
            log.exception("timer %s of %s failed; retrying in %s s", timer["timer_id"], timer["critical_id"],
                          RETRY_FAILED_TIMER_S)
            await conn.execute("UPDATE timer SET due_at = $2 WHERE timer_id = $1", timer["timer_id"],
                               at + timedelta(seconds=RETRY_FAILED_TIMER_S))
            continue
        fired.append({"timer_id": timer["timer_id"], "critical_id": cv["critical_id"], "kind": timer["kind"],
                      "step": timer["step"], "lateness": lateness})
    return fired


async def _notify_deadline(conn: asyncpg.Connection, cv: asyncpg.Record, at: datetime, lateness: float) -> None:
    if cv["first_notified_at"] is not None:
        return
    await lifecycle.log_action(conn, cv["critical_id"], actor="system", action="notify-deadline-missed",
                               detail={"lateness_s": round(lateness, 3)}, at=at)
    whom = Person(cv["recipient_id"], cv["recipient_name"])
    await lifecycle.create_phone_task(conn, cv, reason="not delivered to a clinician system in time", whom=whom, at=at)
    await lifecycle.escalated(conn, cv, step_name="phone-task", recipient=whom.name, at=at,
                              detail={"why": "notify-deadline", "lateness_s": round(lateness, 3)})


async def _ack_deadline(conn: asyncpg.Connection, cv: asyncpg.Record, step: int, at: datetime,
                        lateness: float) -> None:
    steps = await chain(conn)
    if step >= len(steps):
        await lifecycle.log_action(conn, cv["critical_id"], actor="system", action="chain-exhausted",
                                   detail={"steps": len(steps)}, at=at)
        return
    spec = steps[step]
    action = spec["action"]
    whom: Person | None
    if action == "repeat":
        whom = Person(cv["recipient_id"], cv["recipient_name"])
    elif action == "backup-clinician":
        whom = await recipients.on_duty(conn, department=cv["department"] or cv["ward"], duty="backup", at=at)
    elif action == "department-head":
        whom = await recipients.on_duty(conn, department=cv["department"] or cv["ward"], duty="head", at=at)
    else:
        whom = Person(cv["recipient_id"], cv["recipient_name"])
    detail: dict[str, Any] = {"level": step + 1, "lateness_s": round(lateness, 3)}
    if action == "phone-task":
        detail["task_id"] = await lifecycle.create_phone_task(conn, cv, reason="not acknowledged in time",
                                                              whom=whom, at=at)
    elif whom is None:
        # Nobody on the roster for this duty: a person must find someone by phone.
        detail["task_id"] = await lifecycle.create_phone_task(conn, cv, reason=f"no {action} on the roster",
                                                              whom=None, at=at)
        detail["no_roster"] = True
    else:
        detail["notifications"] = await lifecycle.queue_notifications(conn, cv, step=step + 1, person=whom, at=at)
    await conn.execute("UPDATE critical_value SET escalation_level = $2 WHERE critical_id = $1",
                       cv["critical_id"], step + 1)
    await lifecycle.escalated(conn, cv, step_name=action, recipient=whom.name if whom else None, at=at, detail=detail)
    await lifecycle.add_timer(conn, cv["critical_id"], "ack-deadline",
                              at + timedelta(minutes=float(spec["after_minutes"])), step=step + 1)
