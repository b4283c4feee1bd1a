"""Versioned migrations: ordered, concurrent-safe, and refusing a database newer than the code."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from imaging_common import db


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


def _schema() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"


async def test_migrations_apply_in_order_once(test_env, tmp_path: Path) -> None:
    schema = _schema()
    folder = _write(tmp_path / "m", {
        "0001_first.sql": "CREATE TABLE thing (id int PRIMARY KEY);",
        "0002_second.sql": "ALTER TABLE thing ADD COLUMN name text;",
    })
    applied = await db.migrate_service(test_env["DATABASE_URL"], schema, folder)
    assert [a.rsplit("/", 1)[1] for a in applied if f"{schema}/service" in a] == ["0001_first.sql", "0002_second.sql"]
    # Running again applies nothing.
    again = await db.migrate_service(test_env["DATABASE_URL"], schema, folder)
    assert again == []
    pool = await db.create_pool(test_env["DATABASE_URL"], schema, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO thing (id, name) VALUES (1, 'x')")  # unqualified: search_path
            assert await conn.fetchval(f"SELECT name FROM {schema}.thing") == "x"
    finally:
        await pool.close()


async def test_two_replicas_migrating_at_once_take_turns(test_env, tmp_path: Path) -> None:
    schema = _schema()
    # pg_sleep makes the migration slow enough that the two runs overlap without the lock.
    folder = _write(tmp_path / "m", {"0001_slow.sql": "SELECT pg_sleep(0.5); CREATE TABLE once (id int);"})
    results = await asyncio.gather(
        db.migrate_service(test_env["DATABASE_URL"], schema, folder),
        db.migrate_service(test_env["DATABASE_URL"], schema, folder),
    )
    service_applied = [a for run in results for a in run if "/service/" in a]
    assert len(service_applied) == 1  # one replica applied it, the other found it done


async def test_database_newer_than_code_is_refused(test_env, tmp_path: Path) -> None:
    schema = _schema()
    newer = _write(tmp_path / "newer", {
        "0001_a.sql": "CREATE TABLE a (id int);",
        "0002_b.sql": "CREATE TABLE b (id int);",
    })
    older = _write(tmp_path / "older", {"0001_a.sql": "CREATE TABLE a (id int);"})
    await db.migrate_service(test_env["DATABASE_URL"], schema, newer)
    with pytest.raises(db.DatabaseNewerThanCode, match=r"\[2\]"):
        await db.migrate_service(test_env["DATABASE_URL"], schema, older)


async def test_failed_migration_leaves_nothing_half_applied(test_env, tmp_path: Path) -> None:
    schema = _schema()
    folder = _write(tmp_path / "m", {"0001_bad.sql": "CREATE TABLE half (id int); SELECT no_such_function();"})
    with pytest.raises(asyncpg.PostgresError):
        await db.migrate_service(test_env["DATABASE_URL"], schema, folder)
    conn = await asyncpg.connect(test_env["DATABASE_URL"])
    try:
        assert await conn.fetchval("SELECT to_regclass($1)", f"{schema}.half") is None
        assert await conn.fetchval(
            f"SELECT count(*) FROM {schema}.schema_migrations WHERE component = 'service'") == 0
    finally:
        await conn.close()


def test_migration_files_must_be_numbered_without_gaps(tmp_path: Path) -> None:
    _write(tmp_path / "gap", {"0001_a.sql": "", "0003_c.sql": ""})
    with pytest.raises(db.MigrationError, match="expected version 0002"):
        db.load_migrations(tmp_path / "gap")
    _write(tmp_path / "badname", {"1_a.sql": ""})
    with pytest.raises(db.MigrationError, match="NNNN_name"):
        db.load_migrations(tmp_path / "badname")


def test_schema_names_are_plain_identifiers() -> None:
    with pytest.raises(ValueError):
        db.check_identifier("x; DROP TABLE y")
