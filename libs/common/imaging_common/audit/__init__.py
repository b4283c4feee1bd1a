"""Central security audit (smart-imaging standard 10.5): append-only and hash-chained.

    await audit.record(conn, actor=user.username, action="read", entity="patient",
                       entity_id=pid, patient_id=pid, source_ip=ip, detail={...})

Every row carries `prev_hash` (the row before it, or the anchor) and `row_hash` = sha256 over
prev_hash and the canonical JSON of the row, so changing or removing any row breaks the chain
at that row; `python -m imaging_common.audit verify` names it. Writers are serialized by a
transaction-scoped advisory lock: record() joins the caller's transaction (audit a change in
the same transaction as the change), so call it last, after the slow work.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from imaging_common.audit.context import client_ip, request_context

__all__ = [
    "AuditEntry", "ChainReport", "client_ip", "entries", "purge", "purge_older_than_days", "record",
    "request_context", "row_hash", "verify",
]

# pg_advisory_xact_lock key of the audit chain (stable: sha256("audit-chain")[:8], signed).
LOCK_KEY = int.from_bytes(hashlib.sha256(b"audit-chain").digest()[:8], "big", signed=True)
GENESIS = "0" * 64
_HASHED = ("seq", "occurred_at", "service", "actor", "action", "entity", "entity_id", "patient_id",
           "source_ip", "outcome", "detail")


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    occurred_at: datetime
    service: str
    actor: str
    action: str
    entity: str
    entity_id: str | None
    patient_id: str | None
    source_ip: str | None
    outcome: str
    detail: dict[str, Any]
    prev_hash: str
    row_hash: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> AuditEntry:
        values = dict(row)
        detail = values["detail"]
        values["detail"] = json.loads(detail) if isinstance(detail, str) else detail
        return cls(**values)

    def public(self) -> dict[str, Any]:
        body = {name: getattr(self, name) for name in _HASHED}
        body["occurred_at"] = self.occurred_at.isoformat()
        body["row_hash"] = self.row_hash
        return body


def _canonical_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """sha256 over the previous hash and the canonical JSON of the hashed fields."""
    body = {name: fields[name] for name in _HASHED}
    body["occurred_at"] = _canonical_time(body["occurred_at"])
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


async def record(
    conn: asyncpg.Connection, *, actor: str, action: str, entity: str, entity_id: str | None = None,
    patient_id: str | None = None, source_ip: str | None = None, outcome: str = "success",
    detail: dict[str, Any] | None = None, service: str | None = None,
) -> AuditEntry:
    """Append one audit row, in the caller's transaction when there is one."""
    # Through JSON once, so what is hashed is exactly what jsonb gives back to the verifier.
    normalized = json.loads(json.dumps(detail or {}, default=str, ensure_ascii=False))
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        if service is None:  # the pool names connections after the service's schema
            service = await conn.fetchval("SELECT current_setting('application_name')") or "unknown"
        head = await conn.fetchrow("SELECT head_seq, head_hash FROM audit.audit_chain WHERE id")
        fields: dict[str, Any] = {
            "seq": head["head_seq"] + 1, "occurred_at": datetime.now(UTC), "service": service,
            "actor": actor, "action": action, "entity": entity,
            "entity_id": None if entity_id is None else str(entity_id),
            "patient_id": None if patient_id is None else str(patient_id),
            "source_ip": source_ip, "outcome": outcome, "detail": normalized,
        }
        digest = row_hash(head["head_hash"], fields)
        await conn.execute(
            """INSERT INTO audit.audit_log (seq, occurred_at, service, actor, action, entity, entity_id,
                   patient_id, source_ip, outcome, detail, prev_hash, row_hash)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13)""",
            fields["seq"], fields["occurred_at"], service, actor, action, entity, fields["entity_id"],
            fields["patient_id"], source_ip, outcome, json.dumps(normalized, ensure_ascii=False),
            head["head_hash"], digest,
        )
        await conn.execute("UPDATE audit.audit_chain SET head_seq = $1, head_hash = $2 WHERE id",
                           fields["seq"], digest)
    return AuditEntry(**fields, prev_hash=head["head_hash"], row_hash=digest)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.checked} row(s) verified"
        return f"audit chain BROKEN at row {self.first_bad_seq}: {self.problem} ({self.checked} row(s) checked)"


async def verify(conn: asyncpg.Connection, *, batch: int = 5000) -> ChainReport:
    """Walk the chain from its anchor; report the first row that was changed or is missing."""
    chain = await conn.fetchrow("SELECT anchor_seq, anchor_hash, head_seq, head_hash FROM audit.audit_chain WHERE id")
    expected_seq, expected_prev = chain["anchor_seq"] + 1, chain["anchor_hash"]
    checked = 0
    while True:
        rows = await conn.fetch("SELECT * FROM audit.audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2",
                                expected_seq, batch)
        for row in rows:
            entry = AuditEntry.from_row(row)
            if entry.seq != expected_seq:
                missing = (f"row {expected_seq} is missing" if entry.seq == expected_seq + 1
                           else f"rows {expected_seq}..{entry.seq - 1} are missing")
                return ChainReport(False, checked, expected_seq, missing)
            if entry.prev_hash != expected_prev:
                return ChainReport(False, checked, entry.seq - 1,
                                   f"row {entry.seq - 1} was altered: its hash differs from the one row "
                                   f"{entry.seq} chained to")
            if row_hash(entry.prev_hash, entry.__dict__) != entry.row_hash:
                return ChainReport(False, checked, entry.seq,
                                   f"row {entry.seq} was altered: its content does not match its hash")
            expected_prev, expected_seq = entry.row_hash, entry.seq + 1
            checked += 1
        if len(rows) < batch:
            break
    if expected_seq - 1 != chain["head_seq"]:
        if expected_seq - 1 < chain["head_seq"]:
            return ChainReport(False, checked, expected_seq,
                               f"rows {expected_seq}..{chain['head_seq']} are missing (the newest rows were removed)")
        return ChainReport(False, checked, chain["head_seq"] + 1, "rows after the recorded head were added")
    if expected_prev != chain["head_hash"]:
        return ChainReport(False, checked, chain["head_seq"],
                           f"row {chain['head_seq']} was altered: its hash differs from the recorded head")
    return ChainReport(True, checked)


async def purge(conn: asyncpg.Connection, *, older_than: datetime, actor: str = "retention") -> int:
    """Delete the oldest rows (a prefix of the chain) recorded before `older_than`; keep the chain anchored.

    Refuses when the chain does not verify, so a purge never erases the evidence of tampering.
    Callers enforce the retention minimum (`purge_older_than_days`).
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        report = await verify(conn)
        if not report.ok:
            raise RuntimeError(f"refusing to purge: {report}")
        first_kept = await conn.fetchval(
            "SELECT min(seq) FROM audit.audit_log WHERE occurred_at >= $1", older_than)
        chain = await conn.fetchrow("SELECT anchor_seq, head_seq FROM audit.audit_chain WHERE id")
        last_purged = (first_kept - 1) if first_kept is not None else chain["head_seq"]
        if last_purged <= chain["anchor_seq"]:
            return 0
        anchor_hash = await conn.fetchval("SELECT row_hash FROM audit.audit_log WHERE seq = $1", last_purged)
        await conn.execute("SELECT set_config('imaging.audit_purge', 'on', true)")
        deleted = await conn.execute("DELETE FROM audit.audit_log WHERE seq <= $1", last_purged)
        await conn.execute("SELECT set_config('imaging.audit_purge', '', true)")
        count = int(deleted.split()[-1])
        await conn.execute(
            """UPDATE audit.audit_chain SET anchor_seq = $1, anchor_hash = $2, purged_at = now(),
                   purged_rows = purged_rows + $3 WHERE id""", last_purged, anchor_hash, count)
        await record(conn, actor=actor, action="purge", entity="audit_log", service="audit",
                     detail={"older_than": older_than.isoformat(), "rows": count, "anchor_seq": last_purged})
    return count


async def purge_older_than_days(conn: asyncpg.Connection, days: int, *, actor: str = "retention") -> int:
    if days < 180:
        raise ValueError("audit retention must be at least 180 days (standard 10.5.2: six months)")
    return await purge(conn, older_than=datetime.now(UTC) - timedelta(days=days), actor=actor)


async def entries(
    conn: asyncpg.Connection, *, limit: int = 100, before_seq: int | None = None, actor: str | None = None,
    patient_id: str | None = None, action: str | None = None, entity: str | None = None,
) -> list[AuditEntry]:
    """Newest first, filtered; `before_seq` pages backwards."""
    rows = await conn.fetch(
        """SELECT * FROM audit.audit_log
           WHERE ($1::bigint IS NULL OR seq < $1) AND ($2::text IS NULL OR actor = $2)
             AND ($3::text IS NULL OR patient_id = $3) AND ($4::text IS NULL OR action = $4)
             AND ($5::text IS NULL OR entity = $5)
           ORDER BY seq DESC LIMIT $6""",
        before_seq, actor, patient_id, action, entity, limit,
    )
    return [AuditEntry.from_row(r) for r in rows]
