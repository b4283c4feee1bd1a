"""Who reports as what: trainees, AI systems and radiologists (their grade in the workflow)."""

from __future__ import annotations

import asyncpg


async def put(conn: asyncpg.Connection, username: str, *, kind: str, display_name: str | None,
              updated_by: str) -> None:
    await conn.execute(
        """INSERT INTO reporter (username, kind, display_name, updated_by) VALUES ($1, $2, $3, $4)
           ON CONFLICT (username) DO UPDATE SET kind = EXCLUDED.kind, display_name = EXCLUDED.display_name,
               updated_by = EXCLUDED.updated_by, updated_at = now()""",
        username, kind, display_name, updated_by)


async def listing(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM reporter ORDER BY username")
