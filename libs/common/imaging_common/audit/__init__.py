"""Central security audit (smart-imaging standard 10.5): append-only, HMAC-chained, owned apart.

    await audit.record(conn, actor=user.username, action="update", entity="patient",
                       entity_id=pid, patient_id=pid, source_ip=ip, detail={...})
    await audit.record_read(conn, actor=user.username, entity="patient", entity_id=pid, patient_id=pid)

Every row carries `prev_hash` (the row before it, or the anchor) and `row_hash` = HMAC-SHA256, under a
key kept outside the database (IMAGING_AUDIT_HMAC_KEY[_FILE]; see keys.py), over prev_hash and the
canonical JSON of the row, so changing or removing any row breaks the chain at that row, and someone
with the database but without the key cannot write a chain that verifies. Rows written before the
switch to HMAC (audit migration 0002) stay verifiable by the old plain SHA-256 rule up to the switch
point, `audit_chain.hmac_from_seq`, whose row is the keyed `chain-upgrade` marker.

The audit schema is owned by `imaging_audit_owner`; the application's role holds
`imaging_audit_writer`: SELECT, and EXECUTE on `audit.append(...)` (SECURITY DEFINER, which checks the
row extends the head and carries the database's time). It cannot update, delete or truncate. Only the
owner purges (`audit.purge_through`, retention checked in SQL) and each purge is recorded in the chain.
Signed checkpoints exported outside the database (checkpoint.py) catch a rewrite of the whole chain.

Writers are serialized by a transaction-scoped advisory lock: record() joins the caller's transaction
(audit a change in the same transaction as the change), so call it last, after the slow work.
`python -m imaging_common.audit verify` names the first altered or missing row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from imaging_common.audit.checkpoint import Checkpoint
from imaging_common.audit.context import client_ip, request_context
from imaging_common.audit.keys import AuditKey, AuditKeyError, AuditSettings, load_key, writer_key

__all__ = [
    "OWNER_ROLE", "WRITER_ROLE", "AuditEntry", "AuditKey", "AuditKeyError", "AuditSettings", "ChainReport",
    "Checkpoint", "client_ip", "entries", "make_checkpoint", "purge", "purge_older_than_days", "record",
    "request_context", "row_hash", "verify",
]

OWNER_ROLE = "imaging_audit_owner"
WRITER_ROLE = "imaging_audit_writer"
# pg_advisory_xact_lock key of the audit chain (stable: sha256("audit-chain")[:8], signed); the SQL
# functions of migration 0002 use the same number.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"audit-chain").digest()[:8], "big", signed=True)
GENESIS = "0" * 64
MIN_RETENTION_DAYS = 180  # standard 10.5.2: six months
UPGRADE_ACTION = "chain-upgrade"
_HASHED = ("seq", "occurred_at", "service", "actor", "action", "entity", "entity_id", "patient_id",
           "source_ip", "outcome", "detail")
_DEFAULT: Any = object()


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


def _message(prev_hash: str, fields: dict[str, Any]) -> bytes:
    body = {name: fields[name] for name in _HASHED}
    body["occurred_at"] = _canonical_time(body["occurred_at"])
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{prev_hash}\n{canonical}".encode()


def row_hash(prev_hash: str, fields: dict[str, Any], key: AuditKey | None = None) -> str:
    """HMAC-SHA256 under `key` over the previous hash and the canonical JSON of the hashed fields;
    without a key, the plain sha256 of rows written before the switch to HMAC."""
    message = _message(prev_hash, fields)
    return key.row_mac(message) if key is not None else hashlib.sha256(message).hexdigest()


async def _append(conn: asyncpg.Connection, fields: dict[str, Any], prev_hash: str, digest: str) -> None:
    await conn.execute(
        "SELECT audit.append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13)",
        fields["seq"], fields["occurred_at"], fields["service"], fields["actor"], fields["action"],
        fields["entity"], fields["entity_id"], fields["patient_id"], fields["source_ip"], fields["outcome"],
        json.dumps(fields["detail"], ensure_ascii=False), prev_hash, digest,
    )


async def record(
    conn: asyncpg.Connection, *, actor: str, action: str, entity: str, entity_id: str | None = None,
    patient_id: str | None = None, source_ip: str | None = None, outcome: str = "success",
    detail: dict[str, Any] | None = None, service: str | None = None,
) -> AuditEntry:
    """Append one audit row, in the caller's transaction when there is one."""
    key = writer_key()
    # Through JSON once, so what is hashed is exactly what jsonb gives back to the verifier.
    normalized = json.loads(json.dumps(detail or {}, default=str, ensure_ascii=False))
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        head = await conn.fetchrow(
            """SELECT head_seq, head_hash, hmac_from_seq, clock_timestamp() AS now,
                      current_setting('application_name') AS application
               FROM audit.audit_chain WHERE id""")
        if service is None:  # the pool names connections after the service's schema
            service = head["application"] or "unknown"
        seq, prev = head["head_seq"] + 1, head["head_hash"]
        if seq == head["hmac_from_seq"]:  # the first keyed row marks the switch from plain sha256
            marker: dict[str, Any] = {
                "seq": seq, "occurred_at": head["now"], "service": "audit", "actor": "audit",
                "action": UPGRADE_ACTION, "entity": "audit_log", "entity_id": None, "patient_id": None,
                "source_ip": None, "outcome": "success",
                "detail": {"scheme": "hmac-sha256", "key_id": key.key_id, "sha256_through": seq - 1},
            }
            digest = row_hash(prev, marker, key)
            await _append(conn, marker, prev, digest)
            seq, prev = seq + 1, digest
        fields: dict[str, Any] = {
            "seq": seq, "occurred_at": head["now"], "service": service,
            "actor": actor, "action": action, "entity": entity,
            "entity_id": None if entity_id is None else str(entity_id),
            "patient_id": None if patient_id is None else str(patient_id),
            "source_ip": source_ip, "outcome": outcome, "detail": normalized,
        }
        digest = row_hash(prev, fields, key)
        await _append(conn, fields, prev, digest)
    return AuditEntry(**fields, prev_hash=prev, row_hash=digest)


async def record_read(
    conn: asyncpg.Connection, *, actor: str, entity: str, entity_id: str | None = None,
    patient_id: str | None = None, source_ip: str | None = None, outcome: str = "success",
    detail: dict[str, Any] | None = None, service: str | None = None,
) -> AuditEntry:
    """Audit that `actor` read `entity` (a patient's data when `patient_id` is given): the one shape of
    a read, action "read", every service's page, API, FHIR and DICOM query alike."""
    return await record(conn, actor=actor, action="read", entity=entity, entity_id=entity_id,
                        patient_id=patient_id, source_ip=source_ip, outcome=outcome, detail=detail,
                        service=service)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""
    # What was verified (for a checkpoint): the chain's id, head, anchor and switch point.
    chain_id: str | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    anchor_seq: int | None = None
    anchor_hash: str | None = None
    hmac_from_seq: int | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.checked} row(s) verified"
        where = f" at row {self.first_bad_seq}" if self.first_bad_seq is not None else ""
        return f"audit chain BROKEN{where}: {self.problem} ({self.checked} row(s) checked)"


def _is_purge(entry: AuditEntry) -> bool:
    return entry.action == "purge" and entry.entity == "audit_log" and entry.service == "audit"


async def verify(
    conn: asyncpg.Connection, *, batch: int = 5000, key: AuditKey | None = _DEFAULT,
    checkpoint: Checkpoint | None = None,
) -> ChainReport:
    """Walk the chain from its anchor; report the first row that was changed or is missing.

    `key`: the HMAC key (default: the configured one; None checks only rows before the switch point).
    `checkpoint`: the last exported checkpoint; the chain must still agree with it.
    Reads one snapshot, so rows appended meanwhile are neither missed nor counted as added.
    """
    if key is _DEFAULT:
        key = load_key(AuditSettings())
    if conn.is_in_transaction():
        return await _verify(conn, batch, key, checkpoint)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _verify(conn, batch, key, checkpoint)


async def _verify(
    conn: asyncpg.Connection, batch: int, key: AuditKey | None, checkpoint: Checkpoint | None
) -> ChainReport:
    chain = await conn.fetchrow(
        """SELECT anchor_seq, anchor_hash, head_seq, head_hash, hmac_from_seq, hmac_key_id, chain_id::text
           FROM audit.audit_chain WHERE id""")
    switch = chain["hmac_from_seq"]

    def broken(checked: int, seq: int | None, problem: str) -> ChainReport:
        return ChainReport(False, checked, seq, problem, chain_id=chain["chain_id"])

    if switch > chain["head_seq"] + 1:
        return broken(0, chain["head_seq"] + 1, f"the HMAC switch point ({switch}) lies beyond the head "
                                                f"({chain['head_seq']}): the switch point was moved")
    if (key is not None and chain["hmac_key_id"] and chain["hmac_key_id"] != key.key_id
            and chain["head_seq"] >= max(switch, chain["anchor_seq"] + 1)):
        return broken(0, None, f"the chain is keyed with key {chain['hmac_key_id']}, the key given is "
                               f"{key.key_id}: verify with the installation's IMAGING_AUDIT_HMAC_KEY[_FILE]")
    expected_seq, expected_prev = chain["anchor_seq"] + 1, chain["anchor_hash"]
    checked = 0
    last_purge: AuditEntry | None = None
    at_checkpoint: str | None = None
    while expected_seq <= chain["head_seq"]:
        rows = await conn.fetch("SELECT * FROM audit.audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2",
                                expected_seq, batch)
        for row in rows:
            entry = AuditEntry.from_row(row)
            if entry.seq != expected_seq:
                missing = (f"row {expected_seq} is missing" if entry.seq == expected_seq + 1
                           else f"rows {expected_seq}..{entry.seq - 1} are missing")
                return broken(checked, expected_seq, missing)
            if entry.seq > chain["head_seq"]:
                return broken(checked, chain["head_seq"] + 1, "rows after the recorded head were added")
            if entry.prev_hash != expected_prev:
                return broken(checked, entry.seq - 1, f"row {entry.seq - 1} was altered: its hash differs from "
                                                      f"the one row {entry.seq} chained to")
            keyed = entry.seq >= switch
            if keyed and key is None:
                return broken(checked, entry.seq, f"row {entry.seq} is HMAC-chained and no key was given "
                                                  "(IMAGING_AUDIT_HMAC_KEY[_FILE]): cannot verify it")
            if row_hash(entry.prev_hash, entry.__dict__, key if keyed else None) != entry.row_hash:
                return broken(checked, entry.seq, f"row {entry.seq} was altered: its content does not match "
                                                  f"its {'HMAC' if keyed else 'hash'}")
            if entry.seq == switch and not (entry.action == UPGRADE_ACTION and entry.entity == "audit_log"):
                return broken(checked, entry.seq, f"row {entry.seq} should be the chain-upgrade marker: the "
                                                  "HMAC switch point was moved")
            if _is_purge(entry):
                last_purge = entry
            if checkpoint is not None and entry.seq == checkpoint.seq:
                at_checkpoint = entry.row_hash
            expected_prev, expected_seq = entry.row_hash, entry.seq + 1
            checked += 1
        if len(rows) < batch:
            break
    if expected_seq - 1 < chain["head_seq"]:
        return broken(checked, expected_seq,
                      f"rows {expected_seq}..{chain['head_seq']} are missing (the newest rows were removed)")
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM audit.audit_log WHERE seq > $1)", chain["head_seq"]):
        return broken(checked, chain["head_seq"] + 1, "rows after the recorded head were added")
    if expected_prev != chain["head_hash"]:
        return broken(checked, chain["head_seq"],
                      f"row {chain['head_seq']} was altered: its hash differs from the recorded head")
    anchor = chain["anchor_seq"]
    if anchor > 0:
        # The chain may start after row 1 only where a recorded purge (a keyed row) put its anchor.
        if last_purge is None:
            return broken(checked, anchor, f"rows up to {anchor} were deleted and the chain re-anchored, "
                                           "but no recorded purge names that anchor")
        claimed = last_purge.detail
        if claimed.get("anchor_seq") != anchor or claimed.get("anchor_hash", chain["anchor_hash"]) != chain[
                "anchor_hash"]:
            return broken(checked, anchor, f"the chain starts after row {anchor}, but the last recorded purge "
                                           f"(row {last_purge.seq}) anchored it at {claimed.get('anchor_seq')}")
        try:
            older_than = datetime.fromisoformat(str(claimed.get("older_than")))
        except ValueError:
            older_than = last_purge.occurred_at
        if older_than > last_purge.occurred_at - timedelta(days=MIN_RETENTION_DAYS):
            return broken(checked, last_purge.seq, f"the purge recorded in row {last_purge.seq} removed rows "
                                                   f"younger than {MIN_RETENTION_DAYS} days")
    if checkpoint is not None:
        problem = _against_checkpoint(chain, checkpoint, at_checkpoint, key)
        if problem:
            return broken(checked, checkpoint.seq, problem)
    return ChainReport(True, checked, chain_id=chain["chain_id"], head_seq=chain["head_seq"],
                       head_hash=chain["head_hash"], anchor_seq=anchor, anchor_hash=chain["anchor_hash"],
                       hmac_from_seq=switch)


def _against_checkpoint(
    chain: asyncpg.Record, checkpoint: Checkpoint, at_checkpoint: str | None, key: AuditKey | None
) -> str:
    if key is None:
        return "a checkpoint was given but no key to check its signature"
    try:
        checkpoint.check(key)
    except ValueError as exc:
        return str(exc)
    ck = checkpoint
    if ck.chain_id != chain["chain_id"]:
        return (f"this chain ({chain['chain_id']}) is not the one checkpointed ({ck.chain_id}): "
                "the audit chain was replaced")
    if ck.hmac_from_seq != chain["hmac_from_seq"]:
        return (f"the HMAC switch point is {chain['hmac_from_seq']}, the checkpoint of row {ck.seq} says "
                f"{ck.hmac_from_seq}: the switch point was moved")
    if ck.anchor_seq > chain["anchor_seq"]:
        return f"the chain's anchor went back from {ck.anchor_seq} to {chain['anchor_seq']}"
    if ck.seq > chain["head_seq"]:
        return (f"the checkpoint exported at row {ck.seq} ({ck.at}) is beyond the head ({chain['head_seq']}): "
                "the newest rows were removed")
    if ck.seq > chain["anchor_seq"] and at_checkpoint != ck.row_hash:
        return (f"row {ck.seq} differs from the checkpoint exported at {ck.at}: the chain was rewritten")
    if ck.seq == chain["anchor_seq"] and chain["anchor_hash"] != ck.row_hash:
        return f"the anchor (row {ck.seq}) differs from the checkpoint exported at {ck.at}: the chain was rewritten"
    return ""


def make_checkpoint(report: ChainReport, key: AuditKey) -> Checkpoint:
    """A signed checkpoint of what `report` verified."""
    if not report.ok or report.head_seq is None:
        raise ValueError(f"no checkpoint of a chain that does not verify: {report}")
    return Checkpoint(
        chain_id=str(report.chain_id), seq=report.head_seq, row_hash=str(report.head_hash),
        anchor_seq=int(report.anchor_seq or 0), anchor_hash=str(report.anchor_hash),
        hmac_from_seq=int(report.hmac_from_seq or 0), key_id=key.key_id,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    ).signed(key)


async def _become_owner(conn: asyncpg.Connection) -> None:
    if await conn.fetchval("SELECT current_user = $1", OWNER_ROLE):
        return
    if not await conn.fetchval("SELECT pg_has_role($1, 'MEMBER')", OWNER_ROLE):
        raise PermissionError(f"the audit purge runs as {OWNER_ROLE}; this connection's role is not a member "
                              "(set IMAGING_AUDIT_OWNER_DATABASE_URL)")
    await conn.execute(f"SET LOCAL ROLE {OWNER_ROLE}")


async def purge(conn: asyncpg.Connection, *, older_than: datetime, actor: str = "retention") -> int:
    """Delete the oldest rows (a prefix of the chain) recorded before `older_than`; keep the chain anchored.

    Runs as the audit owner (the connection must be it or may SET ROLE to it); the database refuses
    rows younger than its retention (audit_chain.min_retention_days, at least 180 days). Refuses when
    the chain does not verify, so a purge never erases the evidence of tampering. The purge is recorded
    in the chain with its new anchor, which `verify` requires of any chain not starting at row 1.
    """
    async with conn.transaction():
        await _become_owner(conn)
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
        try:
            count = await conn.fetchval("SELECT audit.purge_through($1, $2)", last_purged, older_than)
        except asyncpg.InsufficientPrivilegeError as exc:
            raise ValueError(str(exc)) from None
        anchor_hash = await conn.fetchval("SELECT anchor_hash FROM audit.audit_chain WHERE id")
        await record(conn, actor=actor, action="purge", entity="audit_log", service="audit",
                     detail={"older_than": older_than.isoformat(), "rows": count, "anchor_seq": last_purged,
                             "anchor_hash": anchor_hash})
    return int(count)


async def purge_older_than_days(conn: asyncpg.Connection, days: int, *, actor: str = "retention") -> int:
    if days < MIN_RETENTION_DAYS:
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
