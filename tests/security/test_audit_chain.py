"""Issue 18 item 6: an audit trail the application cannot rewrite, and `audit verify` catching it.

The finding: any session could set imaging.audit_purge and delete rows, then rewrite audit_chain with
plain SHA-256, and `python -m imaging_common.audit verify` still called the chain intact. Here:
- the application's own database role (a real login, holding only imaging_audit_writer, as in
  production) is refused every change but appending through audit.append;
- the superuser deletes rows and rewrites the chain with plain SHA-256: verify names the row;
- the whole chain is rewritten with the key itself: verify names it against the exported checkpoint;
- the owner deletes rows outside the retention check (trigger disabled, anchor moved): verify names it.
Each case runs on a database of its own, migrated the production way (audit migrations through
IMAGING_AUDIT_OWNER_DATABASE_URL, the application connecting as its own role).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from imaging_common import audit, db
from imaging_common.audit import checkpoint as checkpoints

APP_ROLE = f"imaging_audit_app_{uuid.uuid4().hex[:8]}"


@dataclass
class Chain:
    admin_url: str  # the superuser (the database administrator, or an attacker holding its password)
    app_url: str  # the application's login role
    checkpoints: Path


def _with(url: str, *, path: str | None = None, user: str | None = None) -> str:
    parts = urlsplit(url)
    if user is not None:
        host = parts.hostname or "127.0.0.1"
        parts = parts._replace(netloc=f"{user}@{host}:{parts.port or 5432}")
    if path is not None:
        parts = parts._replace(path=path)
    return urlunsplit(parts)


@contextlib.asynccontextmanager
async def chain(test_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Chain]:
    base = test_env["DATABASE_URL"]
    name = f"imaging_auditsec_{uuid.uuid4().hex[:8]}"
    server = await asyncpg.connect(_with(base, path="/postgres"))
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
        with contextlib.suppress(asyncpg.DuplicateObjectError):
            await server.execute(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB")
        admin_url = _with(base, path=f"/{name}")
        app_url = _with(admin_url, user=APP_ROLE)
        setup = await asyncpg.connect(admin_url)
        try:
            await setup.execute(f"GRANT CREATE ON DATABASE \"{name}\" TO {APP_ROLE}")  # its own schema
        finally:
            await setup.close()
        # The production way: the application migrates as itself, the audit part as the owner.
        os.environ["IMAGING_AUDIT_OWNER_DATABASE_URL"] = admin_url
        try:
            await db.migrate_service(app_url, "auditsec", tmp_path / "no-migrations")
        finally:
            del os.environ["IMAGING_AUDIT_OWNER_DATABASE_URL"]
        yield Chain(admin_url, app_url, tmp_path / f"checkpoints-{name}")
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


@pytest.fixture(scope="module", autouse=True)
async def drop_app_role(test_env: dict[str, str]) -> AsyncIterator[None]:
    yield
    server = await asyncpg.connect(_with(test_env["DATABASE_URL"], path="/postgres"))
    try:
        with contextlib.suppress(asyncpg.PostgresError):  # still used by a database being dropped elsewhere
            await server.execute(f"DROP ROLE IF EXISTS {APP_ROLE}")
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def as_owner(admin: asyncpg.Connection) -> AsyncIterator[None]:
    """A transaction as the audit tables' owner (what a compromised owner account could do)."""
    async with admin.transaction():
        await admin.execute("SET LOCAL ROLE imaging_audit_owner")
        yield


async def around_append_only(owner: asyncpg.Connection, sql: str, *args: object) -> None:
    """What only the table's owner can do: its append-only trigger off for one statement, then on again."""
    await owner.execute("ALTER TABLE audit.audit_log DISABLE TRIGGER audit_log_append_only")
    await owner.execute(sql, *args)
    await owner.execute("ALTER TABLE audit.audit_log ENABLE TRIGGER audit_log_append_only")


def verify_cli(c: Chain, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=c.app_url, IMAGING_AUDIT_CHECKPOINT_DIR=str(c.checkpoints))
    return subprocess.run([sys.executable, "-m", "imaging_common.audit", "verify", *args], env=env,
                          capture_output=True, text=True, timeout=60)


async def fill(c: Chain, n: int) -> list[audit.AuditEntry]:
    app = await asyncpg.connect(c.app_url, server_settings={"application_name": "registration"})
    try:
        return [await audit.record(app, actor=f"clerk{i}", action="read", entity="patient", patient_id=f"P{i}",
                                   detail={"fields": ["name"]}) for i in range(n)]
    finally:
        await app.close()


async def rewrite(conn: asyncpg.Connection, drop_seq: int, key: audit.AuditKey | None, *,
                  switch_to_head: bool = False) -> None:
    """The attack: delete one row, renumber the rows after it and re-chain everything after the anchor
    (plain SHA-256 without `key`), head included; optionally claim the HMAC switch never happened."""
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")  # no triggers
        chain_row = await conn.fetchrow("SELECT * FROM audit.audit_chain")
        rows = [audit.AuditEntry.from_row(r) for r in await conn.fetch(
            "SELECT * FROM audit.audit_log WHERE seq <> $1 ORDER BY seq", drop_seq)]
        await conn.execute("DELETE FROM audit.audit_log")
        prev = chain_row["anchor_hash"]
        for seq, entry in enumerate(rows, start=chain_row["anchor_seq"] + 1):
            fields = {**entry.__dict__, "seq": seq}
            keyed = key is not None and not switch_to_head and seq >= chain_row["hmac_from_seq"]
            digest = audit.row_hash(prev, fields, key if keyed else None)
            await conn.execute(
                """INSERT INTO audit.audit_log (seq, occurred_at, service, actor, action, entity, entity_id,
                       patient_id, source_ip, outcome, detail, prev_hash, row_hash)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13)""",
                seq, entry.occurred_at, entry.service, entry.actor, entry.action, entry.entity, entry.entity_id,
                entry.patient_id, entry.source_ip, entry.outcome, json.dumps(entry.detail), prev, digest)
            prev = digest
        head = chain_row["anchor_seq"] + len(rows)
        await conn.execute("UPDATE audit.audit_chain SET head_seq = $1, head_hash = $2, hmac_from_seq = $3",
                           head, prev, head + 1 if switch_to_head else chain_row["hmac_from_seq"])


async def test_the_application_role_can_only_append(test_env, tmp_path) -> None:
    async with chain(test_env, tmp_path) as c:
        entries = await fill(c, 3)
        app = await asyncpg.connect(c.app_url)
        try:
            assert await app.fetchval("SELECT current_user") == APP_ROLE
            assert not await app.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            refused = [
                "INSERT INTO audit.audit_log SELECT * FROM audit.audit_log WHERE seq = 1",
                "UPDATE audit.audit_log SET actor = 'nobody'",
                "DELETE FROM audit.audit_log",
                "TRUNCATE audit.audit_log",
                "UPDATE audit.audit_chain SET head_seq = 0",
                "ALTER TABLE audit.audit_log DISABLE TRIGGER USER",
                "SELECT audit.purge_through(3, now() - interval '1000 days')",
                "SET ROLE imaging_audit_owner",
                "CREATE TABLE audit.shadow (x int)",
            ]
            for sql in refused:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await app.execute(sql)
            # The former back door: the session flag is just a setting now.
            async with app.transaction():
                await app.execute("SELECT set_config('imaging.audit_purge', 'on', true)")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await app.execute("DELETE FROM audit.audit_log WHERE seq = $1", entries[0].seq)
            # Through the function, only a row that extends the head, stamped with the database's time.
            last = entries[-1]
            forged = {**last.__dict__, "seq": last.seq}
            with pytest.raises(asyncpg.SerializationError, match="does not extend"):
                await audit._append(app, forged, last.prev_hash, last.row_hash)  # overwrite the newest row
            backdated = {**last.__dict__, "seq": last.seq + 1, "occurred_at": datetime(2020, 1, 1).astimezone()}
            with pytest.raises(asyncpg.CheckViolationError, match="current time"):
                await audit._append(app, backdated, last.row_hash, "a" * 64)
            report = await audit.verify(app)
            assert report.ok and report.checked == 4, str(report)  # the chain-upgrade marker and three rows
        finally:
            await app.close()
        cli = verify_cli(c)
        assert cli.returncode == 0 and "intact: 4 row(s)" in cli.stdout, cli.stdout + cli.stderr


async def test_delete_and_plain_sha256_rewrite_by_the_superuser_is_reported(test_env, tmp_path) -> None:
    async with chain(test_env, tmp_path) as c:
        entries = await fill(c, 5)
        assert verify_cli(c).returncode == 0  # the nightly verify, exporting a checkpoint
        async with connected(c.admin_url) as admin:
            victim = entries[2]
            await rewrite(admin, victim.seq, key=None)
            report = await audit.verify(admin)
            # The first row it re-chained (the chain-upgrade marker) no longer matches its HMAC.
            assert not report.ok and report.first_bad_seq == 1 and "HMAC" in report.problem, str(report)
        cli = verify_cli(c)
        assert cli.returncode == 1 and "BROKEN at row 1" in cli.stderr, cli.stdout + cli.stderr


async def test_moving_the_switch_point_to_hide_a_sha256_rewrite_is_reported(test_env, tmp_path) -> None:
    async with chain(test_env, tmp_path) as c:
        entries = await fill(c, 5)
        assert verify_cli(c).returncode == 0
        async with connected(c.admin_url) as admin:
            # Every row re-chained with plain SHA-256 and the switch point claimed still to come:
            # the rows agree with each other, only the exported checkpoint knows better.
            await rewrite(admin, entries[2].seq, key=None, switch_to_head=True)
            assert (await audit.verify(admin)).ok
        cli = verify_cli(c)
        assert cli.returncode == 1 and "switch point was moved" in cli.stderr, cli.stdout + cli.stderr


async def test_whole_chain_rewrite_with_the_key_is_caught_by_the_checkpoint(test_env, tmp_path) -> None:
    async with chain(test_env, tmp_path) as c:
        entries = await fill(c, 5)
        first = verify_cli(c)
        assert first.returncode == 0, first.stderr
        printed = checkpoints.Checkpoint.from_json(first.stdout.strip().splitlines()[-1])  # printed JSON
        assert printed.seq == entries[-1].seq and printed.row_hash == entries[-1].row_hash
        await fill(c, 2)  # more rows after the checkpoint
        async with connected(c.admin_url) as admin:
            await rewrite(admin, entries[2].seq, key=audit.keys.writer_key())  # someone holding the key too
            assert (await audit.verify(admin)).ok  # the rows alone cannot tell
            report = await audit.verify(admin, checkpoint=printed)
            assert not report.ok and "rewritten" in report.problem, str(report)
        cli = verify_cli(c)
        assert cli.returncode == 1 and f"row {printed.seq} differs from the checkpoint" in cli.stderr, cli.stderr
        # An exported checkpoint edited to match the rewrite fails its signature.
        path = next(c.checkpoints.glob("audit-checkpoint-*.json"))
        edited = json.loads(path.read_text())
        edited["row_hash"] = hashlib.sha256(b"x").hexdigest()
        path.write_text(json.dumps(edited))
        cli = verify_cli(c)
        assert cli.returncode == 1 and "signature does not hold" in cli.stderr, cli.stderr


async def test_owner_deleting_outside_the_retention_check_is_reported(test_env, tmp_path) -> None:
    async with chain(test_env, tmp_path) as c:
        entries = await fill(c, 4)
        assert verify_cli(c).returncode == 0
        async with connected(c.admin_url) as admin:
            async with as_owner(admin):
                # The owner's own DELETE meets the retention check in SQL...
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="older than the retention"):
                    async with admin.transaction():
                        await admin.execute("DELETE FROM audit.audit_log WHERE seq <= $1", entries[1].seq)
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="younger than 180 days"):
                    async with admin.transaction():
                        await admin.execute("SELECT audit.purge_through($1, now())", entries[1].seq)
                # ...so it goes around it: its trigger off, the oldest rows gone, the anchor moved up.
                await around_append_only(admin, "DELETE FROM audit.audit_log WHERE seq <= $1", entries[1].seq)
                await admin.execute("UPDATE audit.audit_chain SET anchor_seq = $1, anchor_hash = $2",
                                    entries[1].seq, entries[1].row_hash)
            report = await audit.verify(admin)
            assert not report.ok and "no recorded purge" in report.problem, str(report)
        cli = verify_cli(c)
        assert cli.returncode == 1 and "no recorded purge names that anchor" in cli.stderr, cli.stderr


async def test_owner_removing_the_newest_rows_is_caught_by_the_checkpoint(test_env, tmp_path) -> None:
    async with chain(test_env, tmp_path) as c:
        entries = await fill(c, 4)
        assert verify_cli(c).returncode == 0
        async with connected(c.admin_url) as admin:
            async with as_owner(admin):
                await around_append_only(admin, "DELETE FROM audit.audit_log WHERE seq > $1", entries[1].seq)
                await admin.execute("UPDATE audit.audit_chain SET head_seq = $1, head_hash = $2",
                                    entries[1].seq, entries[1].row_hash)
            assert (await audit.verify(admin)).ok  # a shorter chain, consistent in itself
        cli = verify_cli(c)
        assert cli.returncode == 1 and "newest rows were removed" in cli.stderr, cli.stderr
