"""What a clinician system receives: HL7 v2 ORU^R01 with abnormal flags, FHIR R4 Communication
(and a Task or CommunicationRequest when the receiver wants one to work on).

Both carry the notification's stable identifier (MSH-10, Communication.identifier), so a message
sent again after a crash is recognisably the same message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
from imaging_common.hl7 import Message, build_msh, build_segment

IDENTIFIER_SYSTEM = "urn:imaging:critical-values:notification"
CRITICAL_SYSTEM = "urn:imaging:critical-values:critical-id"
ACCESSION_SYSTEM = "urn:imaging:accession-number"
PATIENT_SYSTEM = "urn:imaging:patient-id"
STAFF_SYSTEM = "urn:imaging:staff-id"
ITEM_SYSTEM = "urn:imaging:critical-values:item"


def _patient(cv: asyncpg.Record) -> dict[str, Any]:
    p = cv["patient"]
    return json.loads(p) if isinstance(p, str) else dict(p)


def _clean(value: Any) -> Any:
    """FHIR JSON has no nulls: drop empty members."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_clean(v) for v in value if v not in (None, "", [], {})]
    return value


def _hl7_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")


def text_of(cv: asyncpg.Record) -> str:
    return f"危急值 CRITICAL RESULT: {cv['finding']} (accession {cv['accession_number']}, category {cv['category']})"


def hl7_message(cv: asyncpg.Record, note: asyncpg.Record, *, message_type: str, sending_app: str,
                sending_facility: str, receiving_app: str, at: datetime) -> Message:
    """ORU^R01 whose OBX-8 flags the result as critical (AA), as docs/hl7-interface.md specifies it.

    `message_type` is the receiver's hl7_message_type: ORU^R01 is the only one (the message is built as an
    ORU_R01; labelled otherwise it would claim a structure it does not have)."""
    patient = _patient(cv)
    if (message_type or "ORU^R01") != "ORU^R01":
        raise ValueError(f"HL7 message type {message_type!r} is not specified: critical values send ORU^R01")
    mtype = ["ORU", "R01", "ORU_R01"]
    msh = build_msh(sending_app=sending_app, sending_facility=sending_facility, receiving_app=receiving_app,
                    receiving_facility="", message_type=mtype, control_id=note["notification_id"],
                    timestamp=_hl7_time(at), version="2.5", charset="UNICODE UTF-8")
    # MSH-15/16: AL/AL asks for an accept ACK now and an application ACK when a clinician has read it.
    msh.fields.extend([""] * max(0, 17 - len(msh.fields)))
    msh.fields[15], msh.fields[16] = "AL", "AL"
    doctor = [note["recipient_id"] or "", note["recipient_name"] or ""]
    segments = [
        msh,
        build_segment("PID", "1", None, [cv["patient_id"], "", "", "", "PI"], None,
                      (patient.get("name") or "").split("^") if "^" in (patient.get("name") or "")
                      else [patient.get("name") or ""], None,
                      (patient.get("birth_date") or "").replace("-", ""), patient.get("sex") or "U"),
        build_segment("PV1", "1", "U", [cv["ward"] or "", "", ""], None, None, None, doctor),
        build_segment("ORC", "RE", cv["accession_number"], cv["accession_number"], None, "CM", None, None, None,
                      None, None, None, doctor),
        build_segment("OBR", "1", cv["accession_number"], cv["accession_number"],
                      [cv["item_code"] or "CRIT", "危急值 Critical result", "L"], "S", None,
                      _hl7_time(cv["raised_at"]), None, None, None, None, None, None, None, None, doctor,
                      None, None, None, None, None, None, None, cv["modality"] or "", "F"),
        build_segment("OBX", "1", "TX", [cv["item_code"] or "CRIT", cv["finding"], "L"], None, text_of(cv), None,
                      None, "AA", None, None, "F", None, None, _hl7_time(cv["raised_at"]), None,
                      [cv["confirmed_by"] or cv["raised_by"]]),
        build_segment("NTE", "1", "L", f"critical_id={cv['critical_id']}; notification={note['notification_id']}; "
                      f"step={note['step']}; please acknowledge"),
    ]
    return Message(segments)


def communication(cv: asyncpg.Record, note: asyncpg.Record, *, at: datetime) -> dict[str, Any]:
    patient = _patient(cv)
    recipient: dict[str, Any] = {"display": note["recipient_name"] or note["recipient_id"] or cv["department"] or ""}
    if note["recipient_id"]:
        recipient["identifier"] = {"system": STAFF_SYSTEM, "value": note["recipient_id"]}
    return _clean({
        "resourceType": "Communication",
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": note["notification_id"]},
                       {"system": CRITICAL_SYSTEM, "value": cv["critical_id"]}],
        "status": "completed",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/communication-category",
                                  "code": "alert", "display": "Alert"}]}],
        "priority": "stat",
        "subject": {"identifier": {"system": PATIENT_SYSTEM, "value": cv["patient_id"]},
                    "display": patient.get("name")},
        "about": [{"identifier": {"system": ACCESSION_SYSTEM, "value": cv["accession_number"]},
                   "type": "ServiceRequest"}],
        "topic": {"coding": [{"system": ITEM_SYSTEM, "code": cv["item_code"] or "CRIT", "display": cv["finding"]}],
                  "text": "危急值 critical result"},
        "sent": at.astimezone(UTC).isoformat(),
        "recipient": [recipient],
        "sender": {"display": cv["confirmed_by"] or cv["raised_by"]},
        "payload": [{"contentString": text_of(cv)}],
        "extension": [{"url": "urn:imaging:critical-values:category", "valueInteger": cv["category"]},
                      {"url": "urn:imaging:critical-values:ack-due", "valueDateTime":
                       cv["ack_due_at"].astimezone(UTC).isoformat() if cv["ack_due_at"] else None}],
    })


def work_request(kind: str, cv: asyncpg.Record, note: asyncpg.Record, communication_ref: str,
                 *, at: datetime) -> dict[str, Any]:
    """A Task (or CommunicationRequest) asking the clinician to acknowledge; they complete it."""
    owner: dict[str, Any] = {"display": note["recipient_name"] or note["recipient_id"] or cv["department"] or ""}
    if note["recipient_id"]:
        owner["identifier"] = {"system": STAFF_SYSTEM, "value": note["recipient_id"]}
    ident = [{"system": IDENTIFIER_SYSTEM, "value": note["notification_id"]}]
    due = cv["ack_due_at"].astimezone(UTC).isoformat() if cv["ack_due_at"] else None
    if kind == "Task":
        return _clean({"resourceType": "Task", "identifier": ident, "status": "requested", "intent": "order",
                "priority": "stat", "code": {"text": "Acknowledge critical result 确认危急值"},
                "focus": {"reference": communication_ref},
                "for": {"identifier": {"system": PATIENT_SYSTEM, "value": cv["patient_id"]}},
                "authoredOn": at.astimezone(UTC).isoformat(), "owner": owner,
                "restriction": {"period": {"end": due}} if due else None})
    return _clean({"resourceType": "CommunicationRequest", "identifier": ident, "status": "active", "priority": "stat",
            "subject": {"identifier": {"system": PATIENT_SYSTEM, "value": cv["patient_id"]}},
            "about": [{"reference": communication_ref}], "authoredOn": at.astimezone(UTC).isoformat(),
            "recipient": [owner], "payload": [{"contentString": text_of(cv)}],
            "occurrenceDateTime": due})
