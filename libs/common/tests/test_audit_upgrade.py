"""The switch to the HMAC chain keeps earlier rows verifiable; the key's configuration."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from imaging_common import audit, db
from imaging_common.audit.keys import AuditKeyError, AuditSettings, load_key


async def _legacy_rows(conn: asyncpg.Connection, n: int) -> None:
    """Rows as the code before migration 0002 wrote them: plain sha256, inserted by the table's owner."""
    for i in range(n):
        async with conn.transaction():
            head = await conn.fetchrow("SELECT head_seq, head_hash FROM audit.audit_chain")
            fields = {"seq": head["head_seq"] + 1, "occurred_at": datetime.now(UTC), "service": "legacy",
                      "actor": f"old{i}", "action": "read", "entity": "patient", "entity_id": None,
                      "patient_id": f"P{i}", "source_ip": None, "outcome": "success", "detail": {"i": i}}
            body = {k: fields[k] for k in fields}
            body["occurred_at"] = fields["occurred_at"].isoformat(timespec="microseconds")
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            digest = hashlib.sha256(f"{head['head_hash']}\n{canonical}".encode()).hexdigest()
            await conn.execute(
                """INSERT INTO audit.audit_log (seq, occurred_at, service, actor, action, entity, entity_id,
                       patient_id, source_ip, outcome, detail, prev_hash, row_hash)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13)""",
                fields["seq"], fields["occurred_at"], "legacy", fields["actor"], "read", "patient", None,
                fields["patient_id"], None, "success", json.dumps({"i": i}), head["head_hash"], digest)
            await conn.execute("UPDATE audit.audit_chain SET head_seq = $1, head_hash = $2", fields["seq"], digest)


async def test_existing_rows_stay_verifiable_across_the_switch(test_env, tmp_path: Path) -> None:
    base = test_env["DATABASE_URL"]
    name = f"imaging_auditup_{uuid.uuid4().hex[:8]}"
    url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    server = await asyncpg.connect(urlunsplit(urlsplit(base)._replace(path="/postgres")))
    await server.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(url)
        try:
            # A database at audit migration 0001 with rows in it.
            first = db.load_migrations(db.AUDIT_MIGRATIONS)[:1]
            await db.migrate_component(conn, db.AUDIT_SCHEMA, "audit", first)
            await _legacy_rows(conn, 3)
            await db.migrate_service(url, "auditup", tmp_path)  # applies 0002
            chain = await conn.fetchrow("SELECT * FROM audit.audit_chain")
            assert chain["hmac_from_seq"] == 4 and chain["hmac_key_id"] is None
            assert await conn.fetchval("SELECT tableowner FROM pg_tables WHERE schemaname = 'audit' "
                                       "AND tablename = 'audit_log'") == audit.OWNER_ROLE
            assert (await audit.verify(conn)).ok  # the old rows by the old rule
            entry = await audit.record(conn, actor="new", action="read", entity="patient")
            assert entry.seq == 5  # after the chain-upgrade marker at the switch point
            marker = (await audit.entries(conn, action="chain-upgrade"))[0]
            key = audit.keys.writer_key()
            assert marker.seq == 4 and marker.detail == {"scheme": "hmac-sha256", "key_id": key.key_id,
                                                         "sha256_through": 3}
            assert await conn.fetchval("SELECT hmac_key_id FROM audit.audit_chain") == key.key_id
            report = await audit.verify(conn)
            assert report.ok and report.checked == 5, str(report)
            # New rows are keyed: without the key they cannot be checked, with another key they fail.
            assert "no key" in (await audit.verify(conn, key=None)).problem
            other = audit.AuditKey(b"another-key-of-at-least-32-bytes-long")
            assert "keyed with key" in (await audit.verify(conn, key=other)).problem
            # An old row altered is still found by the old rule.
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute("UPDATE audit.audit_log SET actor = 'x' WHERE seq = 2")
            report = await audit.verify(conn)
            assert not report.ok and report.first_bad_seq == 2 and "its hash" in report.problem, str(report)
        finally:
            await conn.close()
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


def test_key_from_setting_file_or_development(tmp_path: Path) -> None:
    secret = "k" * 40
    assert load_key(AuditSettings(audit_hmac_key=secret)) == audit.AuditKey(secret.encode())
    (tmp_path / "hmac").write_text(secret + "\n")
    assert load_key(AuditSettings(audit_hmac_key_file=tmp_path / "hmac")) == audit.AuditKey(secret.encode())
    with pytest.raises(AuditKeyError, match="32"):
        load_key(AuditSettings(audit_hmac_key="short"))
    with pytest.raises(AuditKeyError, match="does not exist"):
        load_key(AuditSettings(audit_hmac_key_file=tmp_path / "missing"))
    dev = AuditSettings(data_dir=tmp_path / "dev")
    assert load_key(dev) is None  # readers never invent a key
    made = load_key(dev, generate=True)
    assert made is not None and load_key(dev) == made
    assert (tmp_path / "dev" / "keys" / "audit-hmac.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(AuditKeyError, match="required in production"):
        load_key(AuditSettings(env="production", data_dir=tmp_path / "dev"), generate=True)
    assert "k" * 40 not in repr(AuditSettings(audit_hmac_key=secret)) + repr(made)


async def test_production_refuses_to_migrate_without_the_key(test_env, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("IMAGING_ENV", "production")
    with pytest.raises(AuditKeyError, match="IMAGING_AUDIT_HMAC_KEY"):
        await db.migrate_service(test_env["DATABASE_URL"], "audittest", tmp_path)
