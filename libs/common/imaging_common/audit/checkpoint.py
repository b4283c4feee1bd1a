"""Signed checkpoints of the audit chain, exported outside the database.

A checkpoint names the chain (its id), its head (seq and row hash), its anchor, the HMAC switch
point and the key id, signed with the audit HMAC key. `verify` compares the chain with the last one:
a chain rewritten wholesale (even by someone holding the key), rows removed from its end, an anchor
moved back or a switch point moved all disagree with what was exported before. Files are written
once (never overwritten) to IMAGING_AUDIT_CHECKPOINT_DIR; the same JSON is printed by the CLI, so a
log archive or a ticket holds a copy too.
"""

from __future__ import annotations

import hmac
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imaging_common.audit.keys import AuditKey

FORMAT = "imaging-audit-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted: malformed, or its signature does not hold."""


@dataclass(frozen=True)
class Checkpoint:
    chain_id: str
    seq: int
    row_hash: str
    anchor_seq: int
    anchor_hash: str
    hmac_from_seq: int
    key_id: str
    at: str
    signature: str = ""

    def _body(self) -> bytes:
        body = {"format": FORMAT, **asdict(self)}
        body.pop("signature")
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, key: AuditKey) -> Checkpoint:
        return Checkpoint(**{**asdict(self), "signature": key.checkpoint_signature(self._body())})

    def check(self, key: AuditKey) -> None:
        if self.key_id != key.key_id:
            raise CheckpointError(f"checkpoint signed with key {self.key_id}, not with the key given ({key.key_id})")
        if not hmac.compare_digest(self.signature, key.checkpoint_signature(self._body())):
            raise CheckpointError(f"checkpoint at row {self.seq}: signature does not hold (the export was altered)")

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        try:
            data: dict[str, Any] = json.loads(text)
            if data.pop("format", None) != FORMAT:
                raise CheckpointError(f"not a {FORMAT} document")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"malformed checkpoint: {exc}") from None

    @property
    def file_name(self) -> str:
        return f"audit-checkpoint-{self.chain_id}-{self.seq:015d}.json"


def export(checkpoint: Checkpoint, folder: Path) -> Path:
    """Write the checkpoint once (atomically); an existing file of the same chain and row is kept."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / checkpoint.file_name
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".checkpoint-", suffix=".tmp")
    try:
        os.write(fd, checkpoint.to_json().encode() + b"\n")
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return path


def load(path: Path) -> Checkpoint:
    return Checkpoint.from_json(path.read_text(encoding="utf-8"))


def latest(folder: Path, key: AuditKey, chain_id: str | None = None) -> tuple[Checkpoint | None, list[str]]:
    """The newest checkpoint of `chain_id` signed with `key` in `folder`, and the problems met on the way
    (a file that does not parse or whose signature fails is a problem: someone altered the export)."""
    problems: list[str] = []
    best: Checkpoint | None = None
    if not folder.is_dir():
        return None, problems
    for path in sorted(folder.glob("audit-checkpoint-*.json")):
        try:
            found = load(path)
        except (OSError, CheckpointError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        if found.key_id != key.key_id or (chain_id is not None and found.chain_id != chain_id):
            continue
        try:
            found.check(key)
        except CheckpointError as exc:
            problems.append(f"{path}: {exc}")
            continue
        if best is None or found.seq > best.seq:
            best = found
    return best, problems
