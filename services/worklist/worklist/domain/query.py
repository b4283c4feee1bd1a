"""Worklist queries: DICOM matching semantics (PS3.4 C.2.2.2, K.2.2) as index-backed SQL.

A `StepQuery` holds the matching values as a modality sent them (already decoded to `str`):
single values, `*`/`?` wildcards, `\\`-separated lists, date-time ranges. `where()` turns it into
conditions that the indexes of 0002_scheduled_procedure_steps.sql serve: equality or a LIKE with
a literal prefix on text_pattern_ops indexes, ranges on (station, start) and (modality, start).
Rows come back ordered by start time and are read through a cursor, so the caller can send
each one on before the next is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import asyncpg
from imaging_common.dicom import DateTimeRange, has_wildcards, is_universal, match_form, wildcard_to_like

from worklist.domain.steps import ACTIVE

# ScheduledProcedureStepStatus (0040,0020) values and the rows they select.
SPS_STATUS_FILTERS = {
    "SCHEDULED": "(status = 'scheduled' AND arrived_at IS NULL)",
    "ARRIVED": "(status = 'scheduled' AND arrived_at IS NOT NULL)",
    "READY": "(status = 'scheduled' AND arrived_at IS NOT NULL)",
    "STARTED": "(status = 'in_progress')",
    "COMPLETED": "(status = 'completed')",
    "DISCONTINUED": "(status = 'discontinued')",
}

# Columns matched as DICOM strings (case-sensitive, wildcards allowed), by StepQuery attribute.
_STRING_COLUMNS = {
    "station_ae_title": "station_ae_title",
    "modality": "modality",
    "patient_id": "patient_id",
    "accession_number": "accession_number",
    "requested_procedure_id": "requested_procedure_id",
    "station_name": "station_name",
    "location": "location",
    "sps_id": "sps_id",
    "study_instance_uid": "study_instance_uid",
    "issuer_of_patient_id": "issuer_of_patient_id",
    "admission_id": "admission_id",
    "protocol_code": "protocol_code",
    "sex": "sex",
}


@dataclass
class StepQuery:
    """Matching values; None or universal values match everything."""

    station_ae_title: str | None = None
    modality: str | None = None
    patient_id: str | None = None
    accession_number: str | None = None
    requested_procedure_id: str | None = None
    station_name: str | None = None
    location: str | None = None
    sps_id: str | None = None
    study_instance_uid: str | None = None
    issuer_of_patient_id: str | None = None
    admission_id: str | None = None
    protocol_code: str | None = None
    sex: str | None = None
    patient_name: str | None = None
    performing_physician: str | None = None
    start: DateTimeRange | None = None
    sps_status: str | None = None  # DICOM values, `\\`-separated; None: the active steps
    coded: bool | None = None  # a code's scheme was matched: True, steps with a code; False, none
    also: list[tuple[str, str]] = field(default_factory=list)  # more values for a string attribute above
    room_id: str | None = None  # API only
    statuses: list[str] | None = None  # API only: our own states, e.g. ["completed"]
    ids: list[int] = field(default_factory=list)  # API only


class _Params:
    def __init__(self) -> None:
        self.values: list[object] = []

    def add(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _string_condition(column: str, value: str | None, params: _Params, *, upper: bool = False) -> str | None:
    """Single value, wildcard or list-of-values matching on one column; None when universal."""
    if value is None:
        return None
    alternatives = []
    for raw in value.split("\\"):
        v = raw.strip(" ")
        if is_universal(v):
            return None
        if upper:
            v = match_form(v)
        if has_wildcards(v):
            alternatives.append(f"{column} LIKE {params.add(wildcard_to_like(v))}")
        else:
            alternatives.append(f"{column} = {params.add(v)}")
    return alternatives[0] if len(alternatives) == 1 else "(" + " OR ".join(alternatives) + ")"


def _name_condition(prefix: str, value: str | None, params: _Params) -> str | None:
    """Person-name matching by component group; a one-group query may match any stored group.

    "张*" finds "ZHANG^SAN=张^三" (ideographic) and "张三" (stored in the alphabetic group) alike;
    "ZHANG*=张*" must match both groups. Latin letters compare case-insensitively.
    """
    if value is None or is_universal(value):
        return None
    columns = (f"{prefix}_alpha", f"{prefix}_ideo", f"{prefix}_phon")
    groups = value.split("=")
    if len(groups) == 1:
        options = [c for c in (_string_condition(col, value, params, upper=True) for col in columns) if c]
        return "(" + " OR ".join(options) + ")" if options else None
    conditions = [
        c for c in (_string_condition(col, g, params, upper=True) for col, g in zip(columns, groups[:3], strict=False))
        if c
    ]
    return " AND ".join(conditions) if conditions else None


def where(query: StepQuery) -> tuple[str, list[object]]:
    """SQL conditions (joined by AND) and their parameters."""
    params = _Params()
    conditions: list[str] = []
    for attr, column in _STRING_COLUMNS.items():
        cond = _string_condition(column, getattr(query, attr), params)
        if cond:
            conditions.append(cond)
    for attr, value in query.also:
        cond = _string_condition(_STRING_COLUMNS[attr], value, params)
        if cond:
            conditions.append(cond)
    if query.coded is not None:
        conditions.append("protocol_code <> ''" if query.coded else "false")
    for prefix, value in (("pn", query.patient_name), ("pp", query.performing_physician)):
        cond = _name_condition(prefix, value, params)
        if cond:
            conditions.append(cond)
    if query.start is not None:
        if query.start.start is not None:
            conditions.append(f"start_at >= {params.add(query.start.start)}")
        if query.start.end is not None:
            conditions.append(f"start_at < {params.add(query.start.end)}")
        if query.start.time_of_day is not None:
            lo, hi = query.start.time_of_day
            if lo is not None:
                conditions.append(f"start_at::time >= {params.add(lo)}")
            if hi is not None:
                conditions.append(f"start_at::time < {params.add(hi)}")
    if query.room_id:
        conditions.append(f"room_id = {params.add(query.room_id)}")
    if query.ids:
        conditions.append(f"id = ANY({params.add(query.ids)}::bigint[])")
    if query.statuses:
        conditions.append(f"status = ANY({params.add(query.statuses)}::text[])")
    elif query.sps_status and not is_universal(query.sps_status):
        wanted = [SPS_STATUS_FILTERS.get(v.strip().upper()) for v in query.sps_status.split("\\")]
        known = [w for w in wanted if w]
        conditions.append("(" + " OR ".join(known) + ")" if known else "false")
    else:
        conditions.append(f"status = ANY({params.add(list(ACTIVE))}::text[])")
    return " AND ".join(conditions) or "true", params.values


def select_sql(query: StepQuery, *, limit: int | None = None, columns: Sequence[str] = ()) -> tuple[str, list[object]]:
    """The matching rows in start order; only `columns` (names from our own code) when given."""
    condition, args = where(query)
    selected = ", ".join(columns) or "*"
    sql = f"SELECT {selected} FROM scheduled_procedure_steps WHERE {condition} ORDER BY start_at NULLS LAST, id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, args


async def stream_steps(
    conn: asyncpg.Connection, query: StepQuery, *, limit: int | None = None, prefetch: int = 50
) -> AsyncIterator[asyncpg.Record]:
    """Matching steps one by one, read through a server-side cursor (needs an open transaction)."""
    sql, args = select_sql(query, limit=limit)
    async for row in conn.cursor(sql, *args, prefetch=prefetch):
        yield row


async def find_steps(conn: asyncpg.Connection, query: StepQuery, *, limit: int = 500) -> list[asyncpg.Record]:
    sql, args = select_sql(query, limit=limit)
    return list(await conn.fetch(sql, *args))


async def count_steps(conn: asyncpg.Connection, query: StepQuery) -> int:
    condition, args = where(query)
    return int(await conn.fetchval(f"SELECT count(*) FROM scheduled_procedure_steps WHERE {condition}", *args))


async def explain(conn: asyncpg.Connection, query: StepQuery, *, limit: int | None = None) -> str:
    """The executed plan (EXPLAIN ANALYZE), to check a selective query is served by an index."""
    sql, args = select_sql(query, limit=limit)
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", *args)
    return "\n".join(r[0] for r in rows)
