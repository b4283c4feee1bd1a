"""The department's statistics (standard 6.3 (9), 8.3, 8.7, 9.1.3) over the read model, by period (day,
week, month, year in the center's time zone) and by modality, room, campus, department or patient class.

Which time places an exam in a period, per figure:
- volumes: completed (MPPS COMPLETED; discontinued exams are not counted);
- turnaround: ordered; each step's interval over the exams that passed both of its ends;
- waiting: the appointment's start (no-shows among the appointments not cancelled; waiting = arrival
  to start of the exam; lead = booking to the appointment's start);
- reports: the final signature (positive rate over the reports with a positive/negative call; agreement
  over those with a preliminary; amended = at least one amendment or correction);
- critical: raised (completed within the window = acknowledged no later than the window after it was
  raised; one still inside its window and not acknowledged is not counted yet).
Percentiles are PostgreSQL's percentile_cont (linear interpolation), in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from dashboard.domain.errors import Invalid

PERIODS = {
    "day": "to_char({t} AT TIME ZONE $3::text, 'YYYY-MM-DD')",
    "week": "to_char({t} AT TIME ZONE $3::text, 'IYYY-\"W\"IW')",
    "month": "to_char({t} AT TIME ZONE $3::text, 'YYYY-MM')",
    "year": "to_char({t} AT TIME ZONE $3::text, 'YYYY')",
    "all": "'all'",
}
GROUPS = {
    "modality": "coalesce(e.modality, '(未知)')",
    "room": "coalesce(e.room_name, e.room_id, '(未知)')",
    "campus": "coalesce(e.campus, '(未知)')",
    "department": "coalesce(e.department, '(未知)')",
    "patient_class": "coalesce(e.patient_class, '(未知)')",
    "device": "coalesce(e.station_ae_title, '(未知)')",
    "all": "'all'",
}
FILTERS = ("modality", "room_id", "campus", "department", "patient_class")
# Steps of an exam (order -> booked -> arrived -> started -> completed -> preliminary -> final -> delivered).
STEPS = (("ordered_at", "booked_at"), ("booked_at", "arrived_at"), ("arrived_at", "started_at"),
         ("started_at", "completed_at"), ("completed_at", "preliminary_at"), ("preliminary_at", "final_at"),
         ("completed_at", "final_at"), ("final_at", "delivered_at"), ("ordered_at", "final_at"))


def step_name(step: tuple[str, str]) -> str:
    return f"{step[0].removesuffix('_at')}->{step[1].removesuffix('_at')}"


def _p(column: str, fraction: float) -> str:
    return f"percentile_cont({fraction}) WITHIN GROUP (ORDER BY {column})"


def _turnaround_columns() -> list[str]:
    out = []
    for a, b in STEPS:
        span, name = f"extract(epoch FROM e.{b} - e.{a})", step_name((a, b)).replace("->", "_to_")
        out += [f"count(e.{b} - e.{a}) AS {name}_n", f"{_p(span, 0.5)} AS {name}_p50_s",
                f"{_p(span, 0.9)} AS {name}_p90_s"]
    return out


@dataclass(frozen=True)
class Metric:
    anchor: str  # the time that places a row in the period
    columns: tuple[str, ...]  # aggregates, each "<expr> AS <name>"
    source: str = "exam_fact e"
    where: str = "true"


WAIT = "extract(epoch FROM e.started_at - e.arrived_at)"
LEAD = "extract(epoch FROM e.appointment_start - e.booked_at)"
AMENDED = "EXISTS (SELECT 1 FROM amendment_fact a WHERE a.accession_number = e.accession_number)"
METRICS: dict[str, Metric] = {
    "volumes": Metric("e.completed_at", ("count(*) AS exams",), where="e.exam_status = 'completed'"),
    "turnaround": Metric("e.ordered_at", ("count(*) AS exams", *_turnaround_columns())),
    "waiting": Metric("e.appointment_start", (
        "count(*) AS appointments", "count(e.no_show_at) AS no_shows",
        "round(count(e.no_show_at)::numeric / NULLIF(count(*), 0), 4) AS no_show_rate",
        "count(e.started_at - e.arrived_at) AS waited", f"{_p(WAIT, 0.5)} AS wait_p50_s",
        f"{_p(WAIT, 0.9)} AS wait_p90_s", f"{_p(LEAD, 0.5)} AS lead_p50_s", f"{_p(LEAD, 0.9)} AS lead_p90_s"),
        where="e.cancelled_at IS NULL"),
    "reports": Metric("e.final_at", (
        "count(*) AS finals", "count(e.positive) AS judged", "count(*) FILTER (WHERE e.positive) AS positive",
        "round(count(*) FILTER (WHERE e.positive)::numeric / NULLIF(count(e.positive), 0), 4) AS positive_rate",
        "count(e.preliminary_kept) AS reviewed", "count(*) FILTER (WHERE e.preliminary_kept) AS kept",
        "round(count(*) FILTER (WHERE e.preliminary_kept)::numeric / NULLIF(count(e.preliminary_kept), 0), 4)"
        " AS agreement_rate",
        f"count(*) FILTER (WHERE {AMENDED}) AS amended",
        f"round(count(*) FILTER (WHERE {AMENDED})::numeric / NULLIF(count(*), 0), 4) AS amendment_rate")),
    "critical": Metric("c.raised_at", (
        "count(*) AS raised", "count(*) FILTER (WHERE c.in_window OR c.raised_at <= $4::timestamptz) AS eligible",
        "count(*) FILTER (WHERE c.in_window) AS within_window",
        "round(count(*) FILTER (WHERE c.in_window)::numeric / NULLIF(count(*) FILTER "
        "(WHERE c.in_window OR c.raised_at <= $4::timestamptz), 0), 4) AS rate_within_window",
        f"{_p('extract(epoch FROM c.acknowledged_at - c.raised_at)', 0.5)} AS ack_p50_s",
        f"{_p('extract(epoch FROM c.acknowledged_at - c.raised_at)', 0.9)} AS ack_p90_s"),
        source="(SELECT *, acknowledged_at IS NOT NULL AND acknowledged_at <= raised_at + make_interval(secs => $5)"
               " AS in_window FROM critical_fact) c LEFT JOIN exam_fact e USING (accession_number)"),
}


@dataclass(frozen=True)
class Query:
    start: datetime
    end: datetime
    period: str = "all"
    group_by: str = "all"
    timezone: str = "Asia/Shanghai"
    filters: tuple[tuple[str, str], ...] = ()  # (column, value) from FILTERS

    def check(self) -> None:
        if self.period not in PERIODS:
            raise Invalid(f"period must be one of {', '.join(PERIODS)}")
        if self.group_by not in GROUPS:
            raise Invalid(f"group_by must be one of {', '.join(GROUPS)}")
        if self.end <= self.start:
            raise Invalid("end must be after start")
        for column, _ in self.filters:
            if column not in FILTERS:
                raise Invalid(f"filters are {', '.join(FILTERS)}")


def _conditions(q: Query, first_param: int) -> tuple[str, list[Any]]:
    parts = [f"e.{column} = ${first_param + i}" for i, (column, _) in enumerate(q.filters)]
    return " AND ".join(["true", *parts]), [value for _, value in q.filters]


async def figures(conn: asyncpg.Connection, metric: str, q: Query, *, now: datetime,
                  window_seconds: float = 600.0) -> list[dict[str, Any]]:
    """One figure's rows: period, key and its aggregates."""
    if metric not in METRICS:
        raise Invalid(f"metric must be one of {', '.join(METRICS)}")
    q.check()
    m = METRICS[metric]
    period = PERIODS[q.period].format(t=m.anchor)
    filters, values = _conditions(q, 6)
    rows = await conn.fetch(
        f"""SELECT {period} AS period, {GROUPS[q.group_by]} AS key, {', '.join(m.columns)}
            FROM {m.source}
            WHERE {m.anchor} >= $1 AND {m.anchor} < $2 AND {m.where} AND {filters}
              AND $3::text IS NOT NULL AND $4::timestamptz IS NOT NULL AND $5::float8 IS NOT NULL
            GROUP BY 1, 2 ORDER BY 1, 2""",
        q.start, q.end, q.timezone, _window_start(now, window_seconds), window_seconds, *values)
    return [_plain(r) for r in rows]


def _window_start(now: datetime, window_seconds: float) -> datetime:
    """Raised no later than this: its window is over, it counts whether acknowledged or not."""
    return now - timedelta(seconds=window_seconds)


def _plain(row: asyncpg.Record) -> dict[str, Any]:
    """Numbers as JSON numbers: decimals and floats rounded to 4 places (seconds to 0.1)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if v is None or isinstance(v, str | bool | int):
            out[k] = v
        else:
            out[k] = round(float(v), 1 if k.endswith("_s") else 4)
    return out


async def utilisation(conn: asyncpg.Connection, q: Query) -> list[dict[str, Any]]:
    """Device utilisation (6.3 (9)): MPPS busy time (start to completion, clipped to the period) over the
    opening hours of each registered modality, per local day in [start, end), per period."""
    q.check()
    rows = await conn.fetch(
        f"""WITH days AS (
               SELECT d::date AS day FROM generate_series(($1::timestamptz AT TIME ZONE $3::text)::date,
                                                          (($2::timestamptz - interval '1 microsecond')
                                                           AT TIME ZONE $3::text)::date,
                                                          interval '1 day') d),
             open AS (
               SELECT v.device_id, v.name, v.ae_title, v.modality, v.room_id, v.campus, days.day,
                      greatest((days.day + v.opens) AT TIME ZONE $3::text, $1) AS opens_at,
                      least((days.day + v.closes) AT TIME ZONE $3::text, $2) AS closes_at
               FROM device v CROSS JOIN days WHERE v.kind = 'modality'),
             busy AS (
               SELECT o.device_id, o.day, o.name, o.ae_title, o.modality, o.room_id, o.campus,
                      greatest(extract(epoch FROM o.closes_at - o.opens_at), 0) AS open_s,
                      coalesce(sum(greatest(extract(epoch FROM least(e.completed_at, o.closes_at)
                                                    - greatest(e.started_at, o.opens_at)), 0))
                               FILTER (WHERE e.accession_number IS NOT NULL), 0) AS busy_s,
                      count(e.accession_number) AS exams
               FROM open o LEFT JOIN exam_fact e ON e.station_ae_title = o.ae_title
                    AND e.started_at < o.closes_at AND e.completed_at > o.opens_at
                    AND e.exam_status IS NOT NULL
               GROUP BY 1, 2, 3, 4, 5, 6, 7, o.opens_at, o.closes_at)
           SELECT {PERIODS[q.period].format(t="(day::timestamp AT TIME ZONE $3::text)")} AS period,
                  device_id AS key, min(name) AS name, min(ae_title) AS ae_title, min(modality) AS modality,
                  sum(exams)::bigint AS exams, sum(busy_s) AS busy_s, sum(open_s) AS open_s,
                  round((sum(busy_s) / NULLIF(sum(open_s), 0))::numeric, 4) AS utilisation
           FROM busy b WHERE {_device_filters(q)}
           GROUP BY 1, 2 ORDER BY 1, 2""",
        q.start, q.end, q.timezone, *[v for _, v in q.filters])
    return [_plain(r) for r in rows]


def _device_filters(q: Query) -> str:
    """Filters on the device's own room, campus and modality (department and patient class say nothing
    about a device's opening hours: refused)."""
    parts = []
    for i, (column, _) in enumerate(q.filters):
        if column not in ("modality", "room_id", "campus"):
            raise Invalid(f"utilisation is filtered by modality, room_id or campus, not {column}")
        parts.append(f"b.{column} = ${4 + i}")
    return " AND ".join(["true", *parts])


async def exams(conn: asyncpg.Connection, q: Query, *, limit: int = 500) -> list[dict[str, Any]]:
    """Drill-down: the exams ordered in [start, end) behind a figure (the group's key narrows it further)."""
    q.check()
    filters, values = _conditions(q, 4)
    rows = await conn.fetch(
        f"""SELECT e.accession_number, e.modality, e.exam_name, e.room_name, e.campus, e.department,
                   e.patient_class, p.patient ->> 'name' AS patient_name, e.ordered_at, e.booked_at, e.arrived_at,
                   e.started_at,
                   e.completed_at, e.preliminary_at, e.final_at, e.delivered_at, e.cancelled_at, e.no_show_at,
                   e.positive, e.preliminary_kept
            FROM exam_fact e LEFT JOIN patient p USING (empi_id)
            WHERE e.ordered_at >= $1 AND e.ordered_at < $2 AND {filters}
            ORDER BY e.ordered_at LIMIT $3""", q.start, q.end, limit, *values)
    return [dict(r) for r in rows]
