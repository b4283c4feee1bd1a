"""Report statistics (standard 8.3.2-8.3.3): turnaround per stage, positive rate, amendment rate,
preliminary/final agreement per doctor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg


async def statistics(conn: asyncpg.Connection, *, since: datetime, until: datetime) -> dict[str, Any]:
    """Over reports finalised in [since, until)."""
    turnaround = await conn.fetch(
        """SELECT e.modality,
                  count(*) AS reports,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.preliminary_at - e.completed_at))
                      AS exam_to_preliminary_p50_s,
                  percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM r.preliminary_at - e.completed_at))
                      AS exam_to_preliminary_p90_s,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.final_at - r.preliminary_at))
                      AS preliminary_to_final_p50_s,
                  percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM r.final_at - r.preliminary_at))
                      AS preliminary_to_final_p90_s,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.final_at - e.completed_at))
                      AS exam_to_final_p50_s,
                  avg(extract(epoch FROM r.final_at - e.completed_at)) AS exam_to_final_mean_s
           FROM report r JOIN exam e USING (accession_number)
           WHERE r.final_at >= $1 AND r.final_at < $2
           GROUP BY e.modality ORDER BY e.modality""", since, until)
    positive_modality = await conn.fetch(
        """SELECT e.modality, count(*) FILTER (WHERE r.positive) AS positive, count(r.positive) AS judged,
                  round(100.0 * count(*) FILTER (WHERE r.positive) / NULLIF(count(r.positive), 0), 1) AS positive_rate
           FROM report r JOIN exam e USING (accession_number)
           WHERE r.final_at >= $1 AND r.final_at < $2 GROUP BY e.modality ORDER BY e.modality""", since, until)
    positive_doctor = await conn.fetch(
        """SELECT r.preliminary_by AS doctor, count(*) FILTER (WHERE r.positive) AS positive,
                  count(r.positive) AS judged,
                  round(100.0 * count(*) FILTER (WHERE r.positive) / NULLIF(count(r.positive), 0), 1) AS positive_rate
           FROM report r WHERE r.final_at >= $1 AND r.final_at < $2 AND r.preliminary_by IS NOT NULL
           GROUP BY r.preliminary_by ORDER BY r.preliminary_by""", since, until)
    amendments = await conn.fetchrow(
        """SELECT count(*) AS final_reports, count(*) FILTER (WHERE r.amendment_count > 0) AS amended_reports,
                  round(100.0 * count(*) FILTER (WHERE r.amendment_count > 0) / NULLIF(count(*), 0), 2)
                      AS amendment_rate
           FROM report r WHERE r.final_at >= $1 AND r.final_at < $2""", since, until)
    # Diagnosis agreement (8.3.3), as far as the department sees it: how often the senior's final
    # impression kept the preliminary one (per preliminary author); a changed one is a finding
    # to feed back to that doctor.
    agreement = await conn.fetch(
        """WITH pairs AS (
               SELECT r.preliminary_by AS doctor,
                      (SELECT v.content ->> 'impression' FROM signature s JOIN report_version v
                         ON v.report_id = s.report_id AND v.version = s.version
                       WHERE s.report_id = r.id AND s.kind = 'preliminary' ORDER BY s.id DESC LIMIT 1) AS prelim,
                      (SELECT v.content ->> 'impression' FROM signature s JOIN report_version v
                         ON v.report_id = s.report_id AND v.version = s.version
                       WHERE s.report_id = r.id AND s.kind = 'final' ORDER BY s.id LIMIT 1) AS final
               FROM report r WHERE r.final_at >= $1 AND r.final_at < $2 AND r.preliminary_by IS NOT NULL)
           SELECT doctor, count(*) AS reviewed, count(*) FILTER (WHERE prelim = final) AS kept,
                  round(100.0 * count(*) FILTER (WHERE prelim = final) / NULLIF(count(*), 0), 1) AS agreement_rate
           FROM pairs WHERE prelim IS NOT NULL AND final IS NOT NULL GROUP BY doctor ORDER BY doctor""",
        since, until)
    requests = await conn.fetch(
        "SELECT kind, status, count(*) AS n FROM amendment WHERE requested_at >= $1 AND requested_at < $2 "
        "GROUP BY kind, status ORDER BY kind, status", since, until)
    return {
        "since": since.isoformat(), "until": until.isoformat(),
        "turnaround": [_floats(r) for r in turnaround],
        "positive_rate_by_modality": [_floats(r) for r in positive_modality],
        "positive_rate_by_doctor": [_floats(r) for r in positive_doctor],
        "amendments": _floats(amendments) if amendments else {},
        "review_agreement_by_doctor": [_floats(r) for r in agreement],
        "amendment_requests": [dict(r) for r in requests],
    }


def _floats(row: asyncpg.Record) -> dict[str, Any]:
    return {k: (float(v) if v is not None and not isinstance(v, str | int) else v) for k, v in dict(row).items()}
