"""Quality-control statistics (standard 8.7.1 (1), (2)): the 10-minute notification completion
rate, time to acknowledgement and escalations, per department, doctor, modality, item or period.

"Completed within 10 minutes" means the clinician acknowledged receipt (by FHIR, HL7, page or a
recorded phone call) no later than 10 minutes after the critical value was raised. A value still
inside its first 10 minutes and not yet acknowledged is not counted yet (it may still make it);
values a senior doctor rejected are not critical values and are left out.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import asyncpg
from imaging_common.csvsafe import SafeDictWriter

from critical_values.domain.errors import Invalid

GROUPS = {
    "department": "coalesce(department, ward, '(unknown)')",
    "doctor": "coalesce(recipient_name, recipient_id, '(unknown)')",
    "modality": "coalesce(modality, '(unknown)')",
    "item": "coalesce(item_code, '(none)')",
    "day": "to_char(raised_at AT TIME ZONE $4::text, 'YYYY-MM-DD')",
    "week": "to_char(raised_at AT TIME ZONE $4::text, 'IYYY-\"W\"IW')",
    "month": "to_char(raised_at AT TIME ZONE $4::text, 'YYYY-MM')",
    "hour": "to_char(raised_at AT TIME ZONE $4::text, 'HH24')",  # time distribution (8.7.2 (2))
    "all": "'all'",
}
COLUMNS = ("key", "total", "eligible", "completed_within_window", "rate_within_window", "delivered_within_window",
           "acknowledged", "median_ack_seconds", "p90_ack_seconds", "escalated_values", "escalation_steps",
           "documented_only", "open")


async def summary(conn: asyncpg.Connection, *, start: datetime, end: datetime, group_by: str, now: datetime,
                  window_minutes: float = 10.0, timezone: str = "Asia/Shanghai") -> list[dict[str, Any]]:
    if group_by not in GROUPS:
        raise Invalid(f"group_by must be one of {', '.join(GROUPS)}")
    key = GROUPS[group_by]
    rows = await conn.fetch(
        f"""WITH v AS (
              SELECT *, {key} AS key,
                     acknowledged_at IS NOT NULL AND acknowledged_at <= raised_at + make_interval(secs => $3 * 60)
                         AS in_window,
                     first_notified_at IS NOT NULL AND first_notified_at <= raised_at + make_interval(secs => $3 * 60)
                         AS delivered_in_window,
                     extract(epoch FROM acknowledged_at - raised_at) AS ack_s,
                     (SELECT count(*) FROM action_log a WHERE a.critical_id = c.critical_id
                         AND a.action = 'escalated') AS steps
              FROM critical_value c
              WHERE raised_at >= $1 AND raised_at < $2 AND state <> 'rejected' AND $4::text IS NOT NULL)
            SELECT key, count(*) AS total,
                   count(*) FILTER (WHERE in_window
                                    OR raised_at <= $5::timestamptz - make_interval(secs => $3 * 60)) AS eligible,
                   count(*) FILTER (WHERE in_window) AS completed_within_window,
                   count(*) FILTER (WHERE delivered_in_window) AS delivered_within_window,
                   count(acknowledged_at) AS acknowledged,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY ack_s) AS median_ack_seconds,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY ack_s) AS p90_ack_seconds,
                   count(*) FILTER (WHERE steps > 0) AS escalated_values,
                   coalesce(sum(steps), 0) AS escalation_steps,
                   count(*) FILTER (WHERE outcome = 'documented') AS documented_only,
                   count(*) FILTER (WHERE closed_at IS NULL) AS open
            FROM v GROUP BY key ORDER BY key""",
        start, end, window_minutes, timezone, now)
    out = []
    for r in rows:
        d = dict(r)
        d["rate_within_window"] = round(d["completed_within_window"] / d["eligible"], 4) if d["eligible"] else None
        for k in ("median_ack_seconds", "p90_ack_seconds"):
            d[k] = round(float(d[k]), 1) if d[k] is not None else None
        d["escalation_steps"] = int(d["escalation_steps"])
        out.append({c: d[c] for c in COLUMNS})
    return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Keys are HIS text (department, doctor, item): cells starting = + - @ are quoted (csvsafe)."""
    buf = io.StringIO()
    writer = SafeDictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r[k] for k in COLUMNS})
    return buf.getvalue()
