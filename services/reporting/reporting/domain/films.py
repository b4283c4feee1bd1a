"""Films of an exam: the print SCP tells which film belongs to which study (film.matched) and when one
no longer does (film.unmatched: order cancelled, matched again by hand...). Radiologists see the films
of the exam they report. Kept per accession even before the order is known; a match and an unmatch of
the same film that arrive out of order are settled by the time of each event (the later one holds)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from imaging_common.events.types import FilmMatched, FilmUnmatched


async def apply_matched(conn: asyncpg.Connection, film: FilmMatched, at: datetime | None) -> None:
    await conn.execute(
        """INSERT INTO exam_film (accession_number, film_id, state, method, confidence, matched_by, event_at)
           VALUES ($1, $2, 'matched', $3, $4, $5, $6)
           ON CONFLICT (accession_number, film_id) DO UPDATE SET state = 'matched', method = EXCLUDED.method,
               confidence = EXCLUDED.confidence, matched_by = EXCLUDED.matched_by, reason = NULL,
               event_at = EXCLUDED.event_at, updated_at = now()
           WHERE exam_film.event_at <= EXCLUDED.event_at""",
        film.accession_number, film.film_id, film.method, film.confidence, film.matched_by, at or datetime.now(UTC))


async def apply_unmatched(conn: asyncpg.Connection, film: FilmUnmatched, at: datetime | None) -> None:
    await conn.execute(
        """INSERT INTO exam_film (accession_number, film_id, state, reason, event_at)
           VALUES ($1, $2, 'unmatched', $3, $4)
           ON CONFLICT (accession_number, film_id) DO UPDATE SET state = 'unmatched', reason = EXCLUDED.reason,
               event_at = EXCLUDED.event_at, updated_at = now()
           WHERE exam_film.event_at <= EXCLUDED.event_at""",
        film.accession_number, film.film_id, film.reason, at or datetime.now(UTC))


async def films_of(conn: asyncpg.Connection, accession_number: str) -> list[dict[str, Any]]:
    """The films matched to the exam now, oldest match first."""
    rows = await conn.fetch(
        "SELECT film_id, method, confidence, matched_by, event_at AS matched_at FROM exam_film "
        "WHERE accession_number = $1 AND state = 'matched' ORDER BY event_at, film_id", accession_number)
    return [dict(r) for r in rows]
