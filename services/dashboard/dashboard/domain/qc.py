"""Quality-control programmes (standard 8.1-8.3): which exams are drawn for review, and the reviews.

Drawing: each kind's plan gives a percentage per modality ('*' for the others); an exam is drawn when a
hash of its kind and accession number falls below it, so a replayed event draws the same exams and every
replica agrees. Image QC (grades 甲/乙/丙/丁) is drawn when the exam is completed, request-form QC when the
order arrives, report QC when the report is final. Each drawn exam takes a first and a second reader
(not the same person); image and request reviews give a grade, report reviews a score (0-100).
Whose work it is: the modality's AE title for images (the performing technologist is not in the MPPS
events yet), the ordering doctor for requests, the signing doctor for reports."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import asyncpg

from dashboard.domain.errors import Conflict, Invalid, NotFound

KINDS = ("image", "request", "report")
GRADES = ("甲", "乙", "丙", "丁")


async def put_plan(conn: asyncpg.Connection, kind: str, modality: str, percent: float, by: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        """INSERT INTO qc_plan (kind, modality, percent, updated_by) VALUES ($1, $2, $3, $4)
           ON CONFLICT (kind, modality) DO UPDATE SET percent = EXCLUDED.percent, updated_by = EXCLUDED.updated_by,
             updated_at = now() RETURNING *""", kind, modality, percent, by)
    return dict(row)


async def plans(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch("SELECT * FROM qc_plan ORDER BY kind, modality")]


def drawn(kind: str, accession_number: str, percent: float) -> bool:
    """Deterministic: the same exam is drawn (or not) however often its event comes."""
    h = int.from_bytes(hashlib.sha256(f"{kind}:{accession_number}".encode()).digest()[:4], "big") % 10_000
    return h < percent * 100


async def consider(conn: asyncpg.Connection, kind: str, accession_number: str, *, modality: str | None,
                   person: str | None) -> bool:
    """Draw the exam for `kind` if the plan says so; True when it is (now or already) drawn."""
    percent = await conn.fetchval(
        "SELECT percent FROM qc_plan WHERE kind = $1 AND modality IN ($2, '*') "
        "ORDER BY (modality = '*') LIMIT 1", kind, modality or "*")
    if percent is None or not drawn(kind, accession_number, float(percent)):
        return False
    await conn.execute(
        "INSERT INTO qc_item (kind, accession_number, modality, person) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (kind, accession_number) DO UPDATE SET person = coalesce(EXCLUDED.person, qc_item.person)",
        kind, accession_number, modality, person)
    return True


async def items(conn: asyncpg.Connection, kind: str, *, open_only: bool, limit: int = 200) -> list[dict[str, Any]]:
    """Drawn exams, the oldest first, with the readers they have."""
    rows = await conn.fetch(
        """SELECT i.*, coalesce(jsonb_agg(jsonb_build_object('reader', r.reader, 'reviewer', r.reviewer,
                    'grade', r.grade, 'score', r.score) ORDER BY r.reader) FILTER (WHERE r.review_id IS NOT NULL),
                    '[]') AS reviews
           FROM qc_item i LEFT JOIN qc_review r USING (kind, accession_number)
           WHERE i.kind = $1 GROUP BY i.kind, i.accession_number
           HAVING NOT $2 OR count(r.review_id) < 2 ORDER BY i.drawn_at LIMIT $3""", kind, open_only, limit)
    return [{**dict(r), "reviews": json.loads(r["reviews"]) if isinstance(r["reviews"], str) else r["reviews"]}
            for r in rows]


async def review(conn: asyncpg.Connection, kind: str, accession_number: str, *, reviewer: str, grade: str | None,
                 score: int | None, reasons: list[str], note: str) -> dict[str, Any]:
    """A first or second reading; the same person reads an exam once."""
    if kind == "report" and score is None:
        raise Invalid("a report review needs a score (0-100)")
    if kind != "report" and grade not in GRADES:
        raise Invalid("an image or request review needs a grade: 甲, 乙, 丙 or 丁")
    item = await conn.fetchrow("SELECT * FROM qc_item WHERE kind = $1 AND accession_number = $2 FOR UPDATE",
                               kind, accession_number)
    if item is None:
        raise NotFound(f"exam {accession_number} is not drawn for {kind} QC")
    readers = {r["reader"]: r["reviewer"] for r in await conn.fetch(
        "SELECT reader, reviewer FROM qc_review WHERE kind = $1 AND accession_number = $2", kind, accession_number)}
    if reviewer in readers.values():
        raise Conflict(f"{reviewer} has already reviewed {accession_number}: a second reader must be someone else")
    if len(readers) >= 2:
        raise Conflict(f"{accession_number} already has two readers")
    row = await conn.fetchrow(
        """INSERT INTO qc_review (kind, accession_number, reader, reviewer, grade, score, reasons, note)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *""",
        kind, accession_number, "second" if readers else "first", reviewer, grade if kind != "report" else None,
        score if kind == "report" else None, reasons, note)
    return dict(row)


async def statistics(conn: asyncpg.Connection, kind: str, *, start: datetime, end: datetime,
                     timezone: str) -> list[dict[str, Any]]:
    """Per month and person whose work was reviewed (first readings): reviews, grades, 甲 rate, mean score,
    and how often the second reader agreed with the first (same grade, or scores within 10)."""
    rows = await conn.fetch(
        """WITH f AS (SELECT r.*, i.person FROM qc_review r JOIN qc_item i USING (kind, accession_number)
                      WHERE r.kind = $1 AND r.reader = 'first' AND r.reviewed_at >= $2 AND r.reviewed_at < $3),
                s AS (SELECT * FROM qc_review WHERE kind = $1 AND reader = 'second')
           SELECT to_char(f.reviewed_at AT TIME ZONE $4::text, 'YYYY-MM') AS month,
                  coalesce(f.person, '(未知)') AS person, count(*) AS reviews,
                  count(*) FILTER (WHERE f.grade = '甲') AS grade_a, count(*) FILTER (WHERE f.grade = '乙') AS grade_b,
                  count(*) FILTER (WHERE f.grade = '丙') AS grade_c, count(*) FILTER (WHERE f.grade = '丁') AS grade_d,
                  round(count(*) FILTER (WHERE f.grade = '甲')::numeric / NULLIF(count(f.grade), 0), 4) AS grade_a_rate,
                  round(avg(f.score)::numeric, 1) AS mean_score,
                  count(s.review_id) AS second_reads,
                  count(*) FILTER (WHERE s.grade = f.grade OR abs(s.score - f.score) <= 10) AS agreed
           FROM f LEFT JOIN s USING (kind, accession_number)
           GROUP BY 1, 2 ORDER BY 1, 2""", kind, start, end, timezone)
    return [{k: (float(v) if k in ("grade_a_rate", "mean_score") and v is not None else v) for k, v in r.items()}
            for r in rows]
