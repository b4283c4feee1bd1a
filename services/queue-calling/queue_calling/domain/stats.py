"""Statistics (smart-imaging standard 6.2.2 (7)): wait (arrived -> first called), walk (called ->
exam started) and service (started -> finished) times per room, queue and day, in minutes."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

GROUPS = {"queue": "queue_id", "room": "room_id"}


async def daily(conn: asyncpg.Connection, *, day: date, group: str, tz: str) -> list[dict[str, Any]]:
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}")
    col = GROUPS[group]
    rows = await conn.fetch(
        f"""WITH e AS (
              SELECT {col} AS key,
                     extract(epoch FROM first_called_at - arrived_at) / 60 AS wait,
                     extract(epoch FROM started_at - called_at) / 60 AS walk,
                     extract(epoch FROM finished_at - started_at) / 60 AS service,
                     state
              FROM queue_entry WHERE (arrived_at AT TIME ZONE $2)::date = $1)
            SELECT key, count(*) AS arrived,
                   count(*) FILTER (WHERE wait IS NOT NULL) AS called,
                   count(*) FILTER (WHERE state = 'done') AS done,
                   count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
                   avg(wait) AS wait_avg, percentile_cont(0.5) WITHIN GROUP (ORDER BY wait) AS wait_p50,
                   max(wait) AS wait_max,
                   avg(walk) AS walk_avg, percentile_cont(0.5) WITHIN GROUP (ORDER BY walk) AS walk_p50,
                   avg(service) AS service_avg,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY service) AS service_p50
            FROM e GROUP BY key ORDER BY key NULLS LAST""",
        day, tz)
    out = []
    for r in rows:
        item = {group + "_id": r["key"], "day": day.isoformat()}
        for k in ("arrived", "called", "done", "cancelled"):
            item[k] = r[k]
        for k in ("wait_avg", "wait_p50", "wait_max", "walk_avg", "walk_p50", "service_avg", "service_p50"):
            item[k + "_min"] = None if r[k] is None else round(float(r[k]), 2)
        out.append(item)
    return out
