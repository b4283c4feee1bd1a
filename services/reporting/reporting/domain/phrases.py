"""Phrases a radiologist inserts while reporting: the caller's own and the department's (owner NULL)."""

from __future__ import annotations

import asyncpg

_COLUMNS = "id, owner, department, modality, section, label, text"


async def visible_to(conn: asyncpg.Connection, username: str, *, modality: str | None,
                     section: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT {_COLUMNS} FROM phrase
           WHERE (owner = $1 OR owner IS NULL) AND ($2::text IS NULL OR modality IS NULL OR modality = $2)
             AND ($3::text IS NULL OR section = $3) ORDER BY owner NULLS LAST, label""",
        username, modality, section)


async def of_department(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """The department's phrases (owner NULL), as the administration page lists them."""
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM phrase WHERE owner IS NULL ORDER BY modality NULLS FIRST, section, label")


async def add(conn: asyncpg.Connection, *, owner: str | None, department: str | None, modality: str | None,
              section: str, label: str, text: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"INSERT INTO phrase (owner, department, modality, section, label, text) VALUES ($1, $2, $3, $4, $5, $6) "
        f"RETURNING {_COLUMNS}", owner, department, modality, section, label, text)
    assert row is not None  # INSERT ... RETURNING always returns the row
    return row


async def delete(conn: asyncpg.Connection, phrase_id: int, username: str | None, *, department_keeper: bool) -> bool:
    """The caller's phrase (or a department phrase, for its keepers; username None: only a department
    phrase) deleted; False when there is none."""
    done = await conn.execute("DELETE FROM phrase WHERE id = $1 AND (owner = $2 OR ($3 AND owner IS NULL))",
                              phrase_id, username, department_keeper)
    return done.endswith(" 1")
