"""The ORM^O01 (v2.5) that tells the HIS what became of its order (docs/hl7-interface.md): built from
the update domain/his_status.py queues (`render`, given to its queueing functions), sent by
his_status_worker.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from imaging_common.empi import store
from imaging_common.empi.identifiers import IdType
from imaging_common.hl7 import Message, build_msh, build_segment
from imaging_common.hl7 import times as hl7_times
from imaging_common.hl7.charset import LABELS
from imaging_common.hl7.message import Encoding

from registration.domain.his_status import Endpoint, StatusUpdate

PATIENT_CLASS = {"inpatient": "I", "outpatient": "O", "emergency": "E", "physical-exam": "P"}


def render(update: StatusUpdate) -> str:
    """The queued update as the ER7 text sent (domain/his_status.Render)."""
    return status_message(update.order, update.person, update.target, control=update.control,
                          order_status=update.order_status, at=update.at, control_id=update.control_id,
                          start=update.start, reason=update.reason).to_er7()


def _ts(at: datetime | None) -> str:
    """An instant as HL7 DTM in the hospital's local time, with its offset."""
    if at is None:
        return ""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(hl7_times.zone(None)).strftime("%Y%m%d%H%M%S%z")


def status_message(order: dict[str, Any], person: store.Person, target: Endpoint, *, control: str,
                   order_status: str, at: datetime, control_id: str, start: datetime | None = None,
                   reason: str | None = None) -> Message:
    """ORM^O01 (v2.5) telling the HIS what became of its order: PID, PV1, ORC (SC with ORC-5, or OC),
    OBR (OBR-36 the appointment time when scheduled)."""
    items = order["items"] if not isinstance(order["items"], str) else json.loads(order["items"])
    msh = build_msh(sending_app=target.sending_application, sending_facility=target.sending_facility,
                    receiving_app=target.receiving_application, receiving_facility=target.receiving_facility,
                    message_type=["ORM", "O01", "ORM_O01"], control_id=control_id, timestamp=_ts(datetime.now(UTC)),
                    version="2.5", charset=LABELS.get(target.charset, "UNICODE UTF-8"))
    ids = [[i["value"], "", "", "HIS", "PI"] for i in person.identifiers
           if i["type"] == IdType.HIS_PATIENT_ID.value and i["valid"]][:1]
    ids.append([person.patient_id, "", "", target.sending_application, "PT"])
    pid = build_segment("PID", "1", None, None, None, person.name.split("^") if "^" in person.name else [person.name],
                        None, person.birth_date.strftime("%Y%m%d") if person.birth_date else None,
                        person.sex if person.sex in ("M", "F", "O") else "U")
    pid.fields[3] = "~".join("^".join(_escape(c) for c in cx).rstrip("^") for cx in ids)
    pv1 = build_segment("PV1", "1", PATIENT_CLASS.get(order["patient_class"], "O"),
                        [order["ward"] or "", "", order["bed"] or ""] if order["ward"] or order["bed"] else None,
                        *([None] * 15), order["visit_number"])
    placer = order["placer_order_number"] or ""
    filler = [order["accession_number"], target.sending_application]
    orc = build_segment("ORC", control, placer, filler, None, order_status, None,
                        ["", "", "", _ts(start)] if start else None, None, _ts(at),
                        *([None] * 6), ["", reason] if reason else None)
    first = items[0] if items else {"code": "", "name": "", "modality": ""}
    obr = build_segment("OBR", "1", placer, filler, [first["code"], first["name"]],
                        *([None] * 19), first.get("modality") or None, *([None] * 11), _ts(start) if start else None)
    return Message([msh, pid, pv1, orc, obr])


def _escape(text: str) -> str:
    return Encoding().escape_text(text or "")
