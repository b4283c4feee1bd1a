"""The audit log: append-only, hash-chained, verifiable, purged without breaking the chain."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from imaging_common import audit, db
from imaging_common.config import CommonSettings
from imaging_testing import scratch_database
from pydantic import ValidationError


@pytest.fixture(scope="module")
async def conn(test_env, tmp_path_factory):
    empty = tmp_path_factory.mktemp("audittest-migrations")
    await db.migrate_service(test_env["DATABASE_URL"], "audittest", Path(empty))
    connection = await asyncpg.connect(test_env["DATABASE_URL"], server_settings={"application_name": "audittest"})
    yield connection
    await connection.close()


def _cli(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **({"DATABASE_URL": database_url} if database_url else {}))
    return subprocess.run([sys.executable, "-m", "imaging_common.audit", *args], capture_output=True, text=True,
                          env=env, timeout=60)


async def test_record_stores_who_what_where_and_chains(conn: asyncpg.Connection) -> None:
    pid = f"P-{uuid.uuid4().hex[:8]}"
    first = await audit.record(conn, actor="li.na", action="read", entity="patient", entity_id=pid, patient_id=pid,
                               source_ip="10.1.2.3", detail={"fields": ["name", "birth_date"], "名": "李"})
    second = await audit.record(conn, actor="li.na", action="update", entity="patient", entity_id=pid,
                                patient_id=pid, outcome="failure", detail={"why": 1.5})
    assert second.seq == first.seq + 1 and second.prev_hash == first.row_hash
    assert first.service == "audittest"  # taken from the connection's application_name
    rows = await audit.entries(conn, patient_id=pid)
    assert [(r.action, r.outcome) for r in rows] == [("update", "failure"), ("read", "success")]
    assert rows[1].source_ip == "10.1.2.3" and rows[1].detail["名"] == "李"
    report = await audit.verify(conn)
    assert report.ok, str(report)


async def test_rows_cannot_be_changed_or_deleted(conn: asyncpg.Connection) -> None:
    entry = await audit.record(conn, actor="x", action="read", entity="patient")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute("UPDATE audit.audit_log SET actor = 'y' WHERE seq = $1", entry.seq)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute("DELETE FROM audit.audit_log WHERE seq = $1", entry.seq)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute("TRUNCATE audit.audit_log")


async def _as_superuser_bypassing_triggers(conn: asyncpg.Connection, sql: str, *args: object) -> None:
    # session_replication_role=replica skips ordinary triggers (superuser only): what an attacker
    # with database access could do, and what the chain must reveal.
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql, *args)


async def test_verify_names_a_tampered_row(conn: asyncpg.Connection) -> None:
    entries = [await audit.record(conn, actor="wang", action="read", entity="report", entity_id=str(i))
               for i in range(3)]
    victim = entries[1]
    await _as_superuser_bypassing_triggers(
        conn, "UPDATE audit.audit_log SET actor = 'someone-else' WHERE seq = $1", victim.seq)
    try:
        report = await audit.verify(conn)
        assert not report.ok and report.first_bad_seq == victim.seq, str(report)
        cli = _cli("verify")
        assert cli.returncode == 1
        assert f"row {victim.seq}" in cli.stderr and "altered" in cli.stderr
    finally:
        await _as_superuser_bypassing_triggers(
            conn, "UPDATE audit.audit_log SET actor = 'wang' WHERE seq = $1", victim.seq)
    assert (await audit.verify(conn)).ok
    # Rewriting the row's own hash too moves the break to the link, still naming the row.
    await _as_superuser_bypassing_triggers(
        conn, "UPDATE audit.audit_log SET row_hash = repeat('a', 64) WHERE seq = $1", victim.seq)
    try:
        report = await audit.verify(conn)
        assert not report.ok and report.first_bad_seq == victim.seq, str(report)
    finally:
        await _as_superuser_bypassing_triggers(
            conn, "UPDATE audit.audit_log SET row_hash = $2 WHERE seq = $1", victim.seq, victim.row_hash)


async def test_verify_names_a_deleted_row_and_removed_newest_rows(conn: asyncpg.Connection) -> None:
    entries = [await audit.record(conn, actor="zhao", action="export", entity="study") for _ in range(3)]
    saved = await conn.fetch("SELECT * FROM audit.audit_log WHERE seq = ANY($1::bigint[]) ORDER BY seq",
                             [entries[1].seq, entries[2].seq])

    async def restore(row: asyncpg.Record) -> None:
        await _as_superuser_bypassing_triggers(
            conn, "INSERT INTO audit.audit_log SELECT * FROM jsonb_populate_record(NULL::audit.audit_log, $1::jsonb)",
            json.dumps({k: (v.isoformat() if isinstance(v, datetime) else json.loads(v) if k == "detail" else v)
                        for k, v in dict(row).items()}))

    await _as_superuser_bypassing_triggers(conn, "DELETE FROM audit.audit_log WHERE seq = $1", entries[1].seq)
    try:
        report = await audit.verify(conn)
        assert not report.ok and report.first_bad_seq == entries[1].seq and "missing" in report.problem
        cli = _cli("verify")
        assert cli.returncode == 1 and f"row {entries[1].seq} is missing" in cli.stderr
    finally:
        await restore(saved[0])
    assert (await audit.verify(conn)).ok
    await _as_superuser_bypassing_triggers(conn, "DELETE FROM audit.audit_log WHERE seq = $1", entries[2].seq)
    try:
        report = await audit.verify(conn)
        assert not report.ok and report.first_bad_seq == entries[2].seq and "newest" in report.problem
    finally:
        await restore(saved[1])
    assert _cli("verify").returncode == 0


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """A database of its own: a purge removes every older row, which must not touch other tests' rows."""
    async with scratch_database(server_url) as url:
        await db.migrate_service(url, "audittest", Path(tempfile.mkdtemp()))  # audit schema only
        yield url


async def backdate(conn: asyncpg.Connection, seqs: list[int], days: int) -> None:
    """Make rows `days` old and re-seal the chain from the first of them with the installation's key:
    what only someone holding both the database and the key could do (here: to test the retention)."""
    key = audit.keys.writer_key()
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("UPDATE audit.audit_log SET occurred_at = occurred_at - make_interval(days => $2) "
                           "WHERE seq = ANY($1::bigint[])", seqs, days)
        rows = await conn.fetch("SELECT * FROM audit.audit_log WHERE seq >= $1 ORDER BY seq", min(seqs))
        prev = rows[0]["prev_hash"]
        switch = await conn.fetchval("SELECT hmac_from_seq FROM audit.audit_chain")
        for row in rows:
            entry = audit.AuditEntry.from_row(row)
            digest = audit.row_hash(prev, entry.__dict__, key if entry.seq >= switch else None)
            await conn.execute("UPDATE audit.audit_log SET prev_hash = $2, row_hash = $3 WHERE seq = $1",
                               entry.seq, prev, digest)
            prev = digest
        await conn.execute("UPDATE audit.audit_chain SET head_hash = $1", prev)


async def test_purge_keeps_the_chain_verifiable(test_env: dict[str, str]) -> None:
    async with fresh_database(test_env["DATABASE_URL"]) as url:
        conn = await asyncpg.connect(url)
        try:
            old = [await audit.record(conn, actor="old", action="read", entity="patient") for _ in range(3)]
            await backdate(conn, [1, *(e.seq for e in old)], 200)  # the chain-upgrade marker (row 1) too
            kept = await audit.record(conn, actor="new", action="read", entity="patient")
            assert (await audit.verify(conn)).ok
            cutoff = datetime.now(UTC) - timedelta(days=190)
            assert await audit.purge(conn, older_than=cutoff, actor="test") == len(old) + 1
            chain = await conn.fetchrow("SELECT * FROM audit.audit_chain")
            last_old = await conn.fetchval("SELECT prev_hash FROM audit.audit_log WHERE seq = $1", kept.seq)
            assert chain["anchor_seq"] == old[-1].seq and chain["anchor_hash"] == last_old
            assert chain["purged_rows"] == len(old) + 1
            assert await conn.fetchval("SELECT min(seq) FROM audit.audit_log") == kept.seq
            report = await audit.verify(conn)
            assert report.ok and report.checked == 2, str(report)  # the kept row and the purge's own record
            purge_entry = (await audit.entries(conn, action="purge", limit=1))[0]
            assert purge_entry.detail["rows"] == len(old) + 1 and purge_entry.actor == "test"
            assert purge_entry.detail["anchor_seq"] == old[-1].seq
            # Records after the purge extend the chain as before.
            await audit.record(conn, actor="new", action="read", entity="patient")
            assert (await audit.verify(conn)).ok
            # Rows younger than the retention are never purged, whatever the caller asks.
            with pytest.raises(ValueError, match="younger than 180 days"):
                await audit.purge(conn, older_than=datetime.now(UTC), actor="test")
            # Deleting the first row after the anchor is still noticed.
            await _as_superuser_bypassing_triggers(conn, "DELETE FROM audit.audit_log WHERE seq = $1", kept.seq)
            report = await audit.verify(conn)
            assert not report.ok and report.first_bad_seq == kept.seq
        finally:
            await conn.close()
        # The command applies the retention (default 180 days: nothing here is that old).
        cli = _cli("purge", database_url=url)
        assert cli.returncode == 1 and "refusing to purge" in cli.stderr  # the chain is broken now


async def test_purge_command_with_default_retention(conn: asyncpg.Connection) -> None:
    cli = _cli("purge")
    assert cli.returncode == 0 and "older than 180 days" in cli.stdout, cli.stderr
    assert _cli("verify").returncode == 0


async def test_retention_below_six_months_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(ValueError, match="at least 180"):
        await audit.purge_older_than_days(conn, 30)
    with pytest.raises(ValidationError, match="at least 180"):
        CommonSettings(audit_retention_days=90)
    cli = _cli("purge", "--retention-days", "30")
    assert cli.returncode == 1 and "at least 180" in cli.stderr


async def test_purge_refuses_a_broken_chain(conn: asyncpg.Connection) -> None:
    entry = await audit.record(conn, actor="qian", action="read", entity="patient")
    await _as_superuser_bypassing_triggers(
        conn, "UPDATE audit.audit_log SET outcome = 'failure' WHERE seq = $1", entry.seq)
    try:
        with pytest.raises(RuntimeError, match="refusing to purge"):
            await audit.purge(conn, older_than=datetime.now(UTC))
    finally:
        await _as_superuser_bypassing_triggers(
            conn, "UPDATE audit.audit_log SET outcome = 'success' WHERE seq = $1", entry.seq)
    assert (await audit.verify(conn)).ok
