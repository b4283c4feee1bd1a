"""What the MLLP server and client count, and the correlation id of a message received.

Read from the raw bytes (no parsing, no decoding: a counter must not cost a parse), so every
message counts, even one the receiver refuses:

    hl7_messages_total{service, direction, type, ack}     direction "in" (we received it) or "out"
                                                          (we sent it); type "ADT^A04"; ack the MSA-1
                                                          of the answer: AA/AE/AR (CA/CE/CR), "none"
                                                          (no answer), "error" (connection failed)
    hl7_mllp_duration_seconds{service, direction, type}   message to answer: our handling for "in",
                                                          the peer's round trip for "out"

A received message is handled under the correlation id "<MSH-3>-<MSH-10>" (sending application
and message control id, e.g. "HIS-MSG00042"): a resent message keeps its id, and an operator
asked about a control id finds everything it caused.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from imaging_common.observability import correlation_id_from, registered

ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})
MAX_TYPES = 64  # distinct message types per service before the rest count as "other" (peers are untrusted)
_TYPE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_^")


def msh_fields(payload: bytes) -> list[bytes]:
    """MSH's fields from the raw message: index n-1 holds MSH-n (index 1 is MSH-2); [] when no MSH."""
    start = payload.find(b"MSH", 0, 16)  # tolerate a stray BOM or newline before it
    if start < 0 or len(payload) < start + 8:
        return []
    end = payload.find(b"\r", start)
    header = payload[start:end if end >= 0 else start + 1024]
    return header.split(header[3:4])


def message_type(fields: list[bytes]) -> str:
    """"ADT^A04" from MSH-9 (code^trigger), "unknown" when absent or odd."""
    if len(fields) < 9 or len(fields[1]) < 1:
        return "unknown"
    parts = fields[8].split(fields[1][:1])[:2]
    text = "^".join(p.decode("latin-1").strip().upper() for p in parts if p)
    return text if text and len(text) <= 16 and set(text) <= _TYPE_CHARS else "unknown"


def message_correlation_id(fields: list[bytes]) -> str:
    """"<MSH-3 first component>-<MSH-10>", made safe; a new id when the message carries neither."""
    if len(fields) < 10:
        return correlation_id_from()
    sep = fields[1][:1] or b"^"
    sender = fields[2].split(sep)[0].decode("latin-1")
    return correlation_id_from(sender, fields[9].decode("latin-1"))


def ack_code(reply: bytes | None) -> str:
    """MSA-1 of an acknowledgement, or "none"."""
    if not reply:
        return "none"
    at = reply.find(b"\rMSA")
    if at < 0 or len(reply) < at + 7:
        return "none"
    code = reply[at + 5:at + 7].decode("latin-1").upper()
    return code if code in ACK_CODES else "none"


class HL7Metrics:
    """One per service (and registry); give it to `MLLPServer(..., metrics=)` and `MLLPClient(..., metrics=)`."""

    def __init__(self, service: str, registry: CollectorRegistry | None) -> None:
        self.service = service
        self.messages = registered(
            Counter, "hl7_messages", "HL7 messages over MLLP by direction (in/out), type and acknowledgement code",
            ["service", "direction", "type", "ack"], registry)
        self.duration = registered(
            Histogram, "hl7_mllp_duration_seconds", "MLLP message to acknowledgement, seconds",
            ["service", "direction", "type"], registry)
        self._types: set[str] = set()
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}  # labels -> (counter, histogram)
        self._lock = threading.Lock()

    def _bounded(self, kind: str) -> str:
        if kind in self._types:
            return kind
        with self._lock:
            if len(self._types) >= MAX_TYPES:
                return "other"
            self._types.add(kind)
        return kind

    def record(self, direction: str, kind: str, ack: str, seconds: float) -> None:
        kind = self._bounded(kind)
        children = self._children.get((direction, kind, ack))
        if children is None:
            children = self._children[(direction, kind, ack)] = (
                self.messages.labels(self.service, direction, kind, ack),
                self.duration.labels(self.service, direction, kind))
        children[0].inc()
        children[1].observe(seconds)
