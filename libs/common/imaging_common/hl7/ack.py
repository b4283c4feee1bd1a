"""Acknowledgements: ACK with MSA (AA / AE / AR) and, for errors, an ERR segment naming the problem.

ERR follows the version of the message answered: from v2.5, ERR-2 error location
(segment^sequence^field), ERR-3 HL7 error code (table 0357), ERR-4 severity (E), ERR-8 user
message, and ERR-1 (the older location + code) filled too; for v2.3/2.4, ERR-1 alone, as those
versions define it. The tests check our ACKs with hl7apy's strict validation for each version.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from imaging_common.hl7 import times
from imaging_common.hl7.message import Message, Segment, build_msh, build_segment

# HL7 table 0357: message error condition codes.
OK = "0"
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_PROCESSING_ID = "202"
UNSUPPORTED_VERSION_ID = "203"
UNKNOWN_KEY_IDENTIFIER = "204"
DUPLICATE_KEY_IDENTIFIER = "205"
APPLICATION_RECORD_LOCKED = "206"
APPLICATION_INTERNAL_ERROR = "207"
ERROR_TEXT = {
    "100": "Segment sequence error", "101": "Required field missing", "102": "Data type error",
    "103": "Table value not found", "200": "Unsupported message type", "201": "Unsupported event code",
    "202": "Unsupported processing id", "203": "Unsupported version id", "204": "Unknown key identifier",
    "205": "Duplicate key identifier", "206": "Application record locked", "207": "Application internal error",
}


@dataclass
class HL7Error(Exception):
    """A problem to report in ERR: raise it from a message handler."""

    code: str
    text: str
    segment: str = ""
    sequence: int = 1
    field: int | None = None
    reject: bool = False  # AR (the message as such is refused) instead of AE

    def __str__(self) -> str:
        return self.text


def now_ts() -> str:
    """Now as HL7 TS/DTM in the hospital's local time with its offset (never the host's zone unlabelled)."""
    return datetime.now(UTC).astimezone(times.zone(None)).strftime("%Y%m%d%H%M%S%z")


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(".")[:2])
    except ValueError:
        return (2, 5)


def _hd(original: Message | None, n: int) -> list[str]:
    """MSH-n of the answered message as its HD components (echoed in our MSH-5/MSH-6 as they came)."""
    reps = original.repetitions("MSH", n) if original else []
    return reps[0] if reps else [""]


def build_ack(
    original: Message | None, code: str = "AA", *, error: HL7Error | None = None, text: str = "",
    sending_app: str = "IMAGING", sending_facility: str = "RIS", control_id: str | None = None,
    answered_id: str | None = None,
) -> Message:
    """ACK for `original` (None when it could not be parsed; `answered_id` is then its MSH-10 if that
    could be read from the raw message, for MSA-2)."""
    msh = original.segment("MSH") if original else None
    trigger = original.type[1] if original else ""
    version = original.version if original else "2.5"
    ack_msh = build_msh(
        sending_app=sending_app, sending_facility=sending_facility,
        receiving_app=_hd(original, 3), receiving_facility=_hd(original, 4), message_type=["ACK", trigger, "ACK"],
        control_id=control_id or f"A{uuid.uuid4().hex[:19]}",
        timestamp=now_ts(), version=version, charset=original.charset if original else None,
        processing_id=(original.field("MSH", 11, component=1) if original and msh else "") or "P",
    )
    segments: list[Segment] = [ack_msh]
    message_text = text or (error.text if error else "")
    segments.append(build_segment("MSA", code, original.control_id if original else (answered_id or ""),
                                  message_text[:80]))
    if error is not None and _version(version) < (2, 5):
        # v2.3/2.4 ERR has one field: ERR-1 error code and location (ELD).
        segments.append(build_segment(
            "ERR", [error.segment, str(error.sequence), str(error.field or ""), error.code]))
    elif error is not None:
        location = [error.segment, str(error.sequence), str(error.field or "")]
        segments.append(build_segment(
            "ERR",
            [error.segment, str(error.sequence), str(error.field or ""), error.code],  # ERR-1 (v2.3 ELD)
            location,  # ERR-2
            [error.code, ERROR_TEXT.get(error.code, ""), "HL70357"],  # ERR-3
            "E",  # ERR-4 severity
            None, None, None,
            error.text,  # ERR-8 user message
        ))
    return Message(segments)
