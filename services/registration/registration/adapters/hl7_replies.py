"""Application acknowledgements of the HIS feed: ORR^O02 for ORM^O01, ORI^O24 for OMI^O23, ACK for ADT.

HL7 v2.5 (chapter 4) answers an order message with its own response message: MSA (AA, or AE with
ERR), then the order as the filler now has it — ORC with the response code of table 0119 for the
request's ORC-1, and the order detail:

    request ORC-1    accepted   refused         ORC-5 when accepted
    NW (new)         OK         UA              the order's status (empty until scheduled)
    XO (change)      XR         UX              the order's status
    CA (cancel)      CR         UC              CA
    DC (discontinue) DR         UD              DC

ORC-2 echoes the placer order number, ORC-3 is our filler number (the accession number) once the
order is known. ORR^O02 carries ORC + OBR (OBR-2/3 the same numbers, OBR-4 the request's item);
ORI^O24 ORC + OBR + IPC (IPC-1 accession, IPC-2 requested procedure id, IPC-3 Study Instance UID,
IPC-4 the request's own IPC-4: our worklist numbers its steps itself, IPC-5 modality).

A message refused as such (AR: undecodable, unparseable, not from a registered sender, an unknown
message type) is answered with a plain ACK: nothing in it was read as an order. ADT is answered
with ACK, as v2.5 defines for ADT.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from imaging_common.hl7 import HL7Error, Message, MessageService
from imaging_common.hl7.ack import build_ack, now_ts
from imaging_common.hl7.message import Segment, build_segment

ORDER_REPLIES = {("ORM", "O01"): ("ORR", "O02", "ORR_O02"), ("OMI", "O23"): ("ORI", "O24", "ORI_O24")}
# HL7 table 0119: what we answer to each request, (accepted, refused).
RESPONSE_CODES = {"NW": ("OK", "UA"), "XO": ("XR", "UX"), "CA": ("CR", "UC"), "DC": ("DR", "UD")}
# HL7 table 0038 (ORC-5) for what registration knows of an order.
ORDER_STATUS = {"scheduled": "SC", "in-progress": "IP", "completed": "CM", "discontinued": "DC"}


def order_status_code(order: dict[str, Any] | None) -> str:
    """ORC-5 of an order as registration knows it: CA once cancelled, else its exam's status ("" before)."""
    if order is None:
        return ""
    if order.get("status") == "cancelled":
        return "CA"
    return ORDER_STATUS.get(order.get("exam_status") or "", "")


@dataclass
class OrderReply:
    """What the handler learnt about the order a message is about, for the reply's ORC."""

    order: dict[str, Any] | None = None  # the order (exam_order row + items) once known
    notes: dict[str, str] = field(default_factory=dict)

    def know(self, order: dict[str, Any]) -> None:
        self.order = order


# The reply being prepared for the message in hand (set per message by OrderFeedService).
current_reply: ContextVar[OrderReply | None] = ContextVar("registration_order_reply", default=None)


def note_order(order: dict[str, Any]) -> None:
    """Tell the reply which order the message is about (called by the feed's order handlers)."""
    reply = current_reply.get()
    if reply is not None:
        reply.know(order)


def build_order_reply(original: Message, code: str, *, error: HL7Error | None, text: str, order: dict[str, Any] | None,
                      sending_app: str, sending_facility: str) -> Message:
    """ORR^O02 / ORI^O24 for an ORM^O01 / OMI^O23 answered `code` (AA or AE)."""
    reply_code, reply_trigger, structure = ORDER_REPLIES[original.type[:2]]
    ack = build_ack(original, code, error=error, text=text, sending_app=sending_app,
                    sending_facility=sending_facility, control_id=f"R{uuid.uuid4().hex[:19]}")
    header = ack.segments[0]  # the ACK's MSH (peer echoed as an HD, charset, version), typed as the reply
    header.fields[9] = "^".join([reply_code, reply_trigger, structure])
    segments: list[Segment] = [header, *ack.segments[1:]]  # MSA [ERR]
    segments.extend(_order_group(original, code, order, sending_app, structure))
    return Message(segments)


def _order_group(original: Message, code: str, order: dict[str, Any] | None, application: str,
                 structure: str) -> list[Segment]:
    control = original.field("ORC", 1)
    if original.segment("ORC") is None or control not in RESPONSE_CODES:
        return []  # nothing in the message was an order we understand: MSA + ERR say why
    accepted, refused = RESPONSE_CODES[control]
    response = accepted if code == "AA" else refused
    placer = (original.repetitions("ORC", 2) or original.repetitions("OBR", 2) or [[""]])[0]
    placer = [placer[0], placer[1] if len(placer) > 1 else ""]
    if not placer[0]:
        return []  # no placer number: no order to answer about (ORC-2 would be empty); MSA + ERR say why
    filler = [order["accession_number"], application] if order else ["", ""]
    if response == "CR":
        status = "CA"
    elif response == "DR":
        status = "DC"
    elif code == "AA":
        status = order_status_code(order)
    else:
        status = ""  # refused: the ERR says why; what the order is stays what the HIS last heard
    orc = build_segment("ORC", response, _trim(placer), _trim(filler), None, status, None, None, None, now_ts())
    item = (original.repetitions("OBR", 4) or [[]])[0][:3]
    if not any(item) and order and order.get("items"):
        first = order["items"][0]
        item = [first["code"], first["name"], ""]
    obr = build_segment("OBR", "1", _trim(placer), _trim(filler), _trim(item))
    if structure != "ORI_O24":
        return [orc, obr]
    asked = original.repetitions("IPC", 4)
    step = asked[0][0] if asked else ""
    ipcs: list[Segment] = []
    if order:
        modality = order["items"][0].get("modality", "") if order.get("items") else ""
        ipcs.append(build_segment("IPC", [order["accession_number"]], [order["requested_procedure_id"]],
                                  [order["study_instance_uid"]], step, modality))
    else:
        ipcs.extend(s for s in original.segments if s.id == "IPC")  # refused: the request's own steps
    # ORI_O24's order group is ORC OBR {IPC}: without a step it cannot be told; MSA + ERR say why.
    return [orc, obr, *ipcs] if ipcs else []


def _trim(components: list[str]) -> list[str]:
    out = list(components)
    while out and not out[-1]:
        out.pop()
    return out or [""]


class OrderFeedService(MessageService):
    """The feed's `MessageService`: an ORM^O01 / OMI^O23 the handler read is answered ORR^O02 / ORI^O24,
    anything else (ADT, and every AR) with the library's ACK."""

    async def __call__(self, payload: bytes, peer: tuple[str, int] | None = None) -> bytes:
        token = current_reply.set(OrderReply())
        try:
            return await super().__call__(payload, peer)
        finally:
            current_reply.reset(token)

    def _ack(self, original: Message | None, code: str, error: HL7Error | None, codec: str, text: str = "") -> bytes:
        if original is None or code == "AR" or original.type[:2] not in ORDER_REPLIES:
            return super()._ack(original, code, error, codec, text)
        reply = current_reply.get()
        message = build_order_reply(original, code, error=error, text=text, order=reply.order if reply else None,
                                    sending_app=self.application, sending_facility=self.facility)
        return message.to_er7().encode(codec, errors="replace")
