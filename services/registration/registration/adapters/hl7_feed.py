"""The HIS feed: HL7 v2.x over MLLP (default port 2575) into patients and orders.

    ADT^A01 / ADT^A04   admit / register  -> find-or-register the patient (EMPI matching)
    ADT^A08             update            -> new source record for the patient (registered if unknown)
    ADT^A40             merge             -> MRG-1 patient folded into the PID patient
    ORM^O01, OMI^O23    new order (NW)    -> patient found or registered, then the order (order.created)
                        change (XO)       -> the order by ORC-2 placer number changed (order.changed)
                        cancel (CA, DC)   -> the order by ORC-2 placer number cancelled (order.cancelled), once

Each message is processed in ONE database transaction: an error anywhere rolls back everything
it did, and the answer is AE/AR with an ERR segment naming the field. A resent order (same
ORC-2 placer number) is acknowledged AA without creating a second order. ADT is answered ACK,
ORM^O01 ORR^O02 and OMI^O23 ORI^O24 with the order's ORC (hl7_replies.py); docs/hl7-interface.md
is the interface specification.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

from imaging_common.empi import store
from imaging_common.empi.identifiers import IdType, InvalidIdentifier, parse_id_type
from imaging_common.empi.names import has_han
from imaging_common.empi.store import IncomingPerson, Person
from imaging_common.events.types import ExamItem, SpecialConditions
from imaging_common.hl7 import HL7Error, Message, times
from imaging_common.hl7 import ack as acks
from imaging_common.hl7.mllp import MLLPServer, service_ports
from imaging_common.service import ServiceContext

from registration.adapters.hl7_replies import OrderFeedService, note_order
from registration.domain import orders as order_domain
from registration.domain import patients as patient_domain
from registration.domain.patients import Actor
from registration.settings import Settings

log = logging.getLogger(__name__)

# PID-3 identifier type codes (HL7 table 0203 and Chinese practice) -> assigning authority.
ID_TYPE_CODES = {
    "PI": IdType.HIS_PATIENT_ID, "MR": IdType.HIS_PATIENT_ID, "PT": IdType.HIS_PATIENT_ID,
    "NNCHN": IdType.RESIDENT_ID, "NI": IdType.RESIDENT_ID, "RI": IdType.RESIDENT_ID, "CZ": IdType.RESIDENT_ID,
    "PPN": IdType.PASSPORT, "HC": IdType.HOSPITAL_CARD, "MC": IdType.MEDICAL_INSURANCE,
    "PRC": IdType.FOREIGNER_RESIDENCE, "HKMO": IdType.HK_MACAU_PERMIT, "TW": IdType.TAIWAN_PERMIT,
}
PATIENT_CLASS = {"I": "inpatient", "O": "outpatient", "E": "emergency", "P": "physical-exam", "R": "outpatient"}
PRIORITY = {"S": "stat", "A": "urgent", "R": "routine", "P": "routine", "T": "urgent"}


def _date(msg: Message, seg: str, n: int) -> date | None:
    raw = msg.field(seg, n, component=1)
    if not raw:
        return None
    digits = raw[:8]
    try:
        if len(digits) != 8 or not digits.isdigit():
            raise ValueError
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise HL7Error(acks.DATA_TYPE_ERROR, f"{seg}-{n} is not a date (YYYYMMDD)", seg, 1, n) from None


def _datetime(msg: Message, seg: str, n: int, component: int = 1) -> datetime | None:
    """An HL7 DTM field as an instant (an offset honoured, none: the hospital's local time)."""
    raw = msg.field(seg, n, component=component)
    if not raw:
        return None
    at = times.hl7_instant(raw, times.zone(None))
    if at is None:
        raise HL7Error(acks.DATA_TYPE_ERROR, f"{seg}-{n} is not a date/time (YYYYMMDDHHMM[SS][+ZZZZ])", seg, 1, n)
    return at


def person_from_pid(msg: Message) -> tuple[IncomingPerson, str | None]:
    """The patient described by PID, and the HIS patient ID (PID-3 type PI/MR) if any."""
    if msg.segment("PID") is None:
        raise HL7Error(acks.SEGMENT_SEQUENCE_ERROR, "PID segment is required", "PID", 1, None)
    names = msg.repetitions("PID", 5)
    if not names or not (names[0][0] or (len(names[0]) > 1 and names[0][1])):
        raise HL7Error(acks.REQUIRED_FIELD_MISSING, "PID-5 patient name is required", "PID", 1, 5)
    legal = next((n for n in names if len(n) > 6 and n[6] == "L"), names[0])
    family, given = legal[0], legal[1] if len(legal) > 1 else ""
    name = family + given if has_han(family + given) else f"{family}^{given}".strip("^")
    identifiers: list[tuple[str, str]] = []
    his_id = None
    for cx in msg.repetitions("PID", 3):
        value = cx[0].strip()
        if not value:
            continue
        code = cx[4].upper() if len(cx) > 4 else ""
        authority = cx[3] if len(cx) > 3 else ""
        kind = ID_TYPE_CODES.get(code)
        if kind is None:
            for label in (code, authority):
                with contextlib.suppress(ValueError):
                    kind = parse_id_type(label) if label else None
                if kind:
                    break
        kind = kind or IdType.HIS_PATIENT_ID
        if kind is IdType.HIS_PATIENT_ID and his_id is None:
            his_id = value
        identifiers.append((kind.value, value))
    addr = msg.repetitions("PID", 11)
    address = postcode = None
    if addr:
        a = addr[0] + [""] * 6
        address = "".join(p for p in (a[3], a[2], a[0], a[1]) if p) or None  # province, city, street, other
        postcode = a[4] or None
    phones = msg.repetitions("PID", 13)
    phone = None
    if phones:
        p = phones[0] + [""] * 12
        phone = p[0] or p[11] or None
    sex = msg.field("PID", 8)[:1].upper() or None
    if sex and sex not in "MFOUAN":
        raise HL7Error(acks.TABLE_VALUE_NOT_FOUND, "PID-8 sex must be M, F, O or U", "PID", 1, 8)
    return IncomingPerson(
        name=name, birth_date=_date(msg, "PID", 7), sex=sex if sex in ("M", "F", "O") else None, phone=phone,
        address=address, postcode=postcode, identifiers=identifiers, source="his", source_key=his_id,
    ), his_id


CANCEL_CONTROLS = ("CA", "DC")  # HL7 v2.5 table 0119: cancel order request, discontinue order request
CHANGE_CONTROL = "XO"  # table 0119: change order/service request


def order_form(msg: Message) -> dict[str, Any]:
    """What an ORM^O01 / OMI^O23 asks for, as create_order/change_order take it (not the patient)."""
    items = []
    for n, obr in enumerate(msg.all("OBR"), start=1):
        code = msg.field("OBR", 4, component=1, segment=obr)
        name = msg.field("OBR", 4, component=2, segment=obr) or code
        if not code:
            raise HL7Error(acks.REQUIRED_FIELD_MISSING, "OBR-4 exam item is required", "OBR", n, 4)
        modality = (msg.field("OBR", 24, segment=obr) or code.split("-")[0]).upper()[:16]
        items.append(ExamItem(code=code, name=name, modality=modality,
                              body_part=msg.field("OBR", 15, component=1, segment=obr) or None))
    danger = " ".join(msg.field("OBR", 12, component=c) for c in (1, 2)).upper()
    danger_text = msg.field("OBR", 12, component=2)
    special = SpecialConditions(
        critical="CRIT" in danger or "危重" in danger_text, mdr="MDR" in danger or "耐药" in danger_text,
        infectious="INF" in danger or "传染" in danger_text, notes=danger_text or None)
    doctor = msg.repetitions("ORC", 12) or msg.repetitions("OBR", 16)
    doc = (doctor[0] + [""] * 3) if doctor else ["", "", ""]
    doc_name = (doc[1] + doc[2]) if has_han(doc[1] + doc[2]) else " ".join(p for p in (doc[2], doc[1]) if p)
    priority_code = (msg.field("TQ1", 9, component=1) or msg.field("OBR", 27, component=6)
                     or msg.field("ORC", 7, component=6) or "R").upper()
    location = msg.repetitions("PV1", 3)
    loc = (location[0] + [""] * 3) if location else ["", "", ""]
    return {
        "items": items, "special": special, "priority": PRIORITY.get(priority_code[:1], "routine"),
        "patient_class": PATIENT_CLASS.get(msg.field("PV1", 2)[:1].upper(), "outpatient"),
        "requested_at": _datetime(msg, "TQ1", 7) or _datetime(msg, "OBR", 27, component=4),
        "visit_number": msg.field("PV1", 19, component=1) or None, "ward": loc[0] or None, "bed": loc[2] or None,
        "ordering_doctor": doc_name or None, "ordering_doctor_id": doc[0] or None,
        "ordering_department": msg.field("ORC", 17, component=2) or msg.field("ORC", 17, component=1)
        or msg.field("PV1", 10) or None,
        "clinical_diagnosis": msg.field("OBR", 31, component=2) or msg.field("OBR", 31, component=1) or None,
        "history": msg.field("OBR", 13) or None,
        "purpose": " ".join(msg.field("NTE", 3, segment=s) for s in msg.all("NTE")) or None,
    }


class HisFeed:
    """Turns one parsed message into domain calls inside one transaction."""

    def __init__(self, ctx: ServiceContext[Settings]):
        self.ctx = ctx
        self.settings = ctx.settings
        self.scorer = ctx.extras.get("empi_scorer") or patient_domain.scorer_for(ctx.settings)
        ctx.extras["empi_scorer"] = self.scorer

    async def handle(self, msg: Message) -> str | None:
        code, trigger, _ = msg.type
        kind = f"{code}^{trigger}"
        handlers = {"ADT^A01": self.admit, "ADT^A04": self.admit, "ADT^A08": self.update, "ADT^A40": self.merge,
                    "ORM^O01": self.order, "OMI^O23": self.order}
        handler = handlers.get(kind)
        if handler is None:
            err = acks.UNSUPPORTED_MESSAGE_TYPE if code not in ("ADT", "ORM", "OMI") else acks.UNSUPPORTED_EVENT_CODE
            raise HL7Error(err, f"{kind} is not accepted (ADT^A01/A04/A08/A40, ORM^O01, OMI^O23)", "MSH", 1, 9,
                           reject=True)
        actor = Actor(f"his:{msg.field('MSH', 3, component=1) or 'unknown'}")
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            try:
                return await handler(conn, msg, actor)
            except InvalidIdentifier as exc:
                raise HL7Error(acks.DATA_TYPE_ERROR, f"identifier refused: {exc}", "PID", 1, 3) from None
            except order_domain.DuplicateOrder as exc:
                note_order(await order_domain.load_order(conn, exc.order_id))
                return f"order already received ({exc.order_id})"
            except store.EmpiError as exc:  # e.g. merging a person already merged elsewhere
                code = acks.UNKNOWN_KEY_IDENTIFIER if isinstance(exc, store.PersonNotFound) \
                    else acks.APPLICATION_RECORD_LOCKED
                raise HL7Error(code, str(exc), "PID", 1, 3) from None

    async def _find(self, conn: Any, incoming: IncomingPerson, his_id: str | None) -> Person | None:
        if his_id:
            found = await store.find_by_identifier(conn, IdType.HIS_PATIENT_ID.value, his_id)
            if found:
                return found
        return None

    async def _register_or_update(self, conn: Any, msg: Message, actor: Actor,
                                  explicit: bool = False) -> tuple[Person, str]:
        """The PID's patient, found by HIS patient ID or matched. Only an explicit update (A08) changes who
        a known patient is (name, birth date, sex); any other message's different values wait for the desk."""
        incoming, his_id = person_from_pid(msg)
        known = await self._find(conn, incoming, his_id)
        if known is not None:
            before = known.version
            person, _ = await patient_domain.update(conn, known.empi_id, incoming, actor=actor, strict=False,
                                                    confirm=explicit)
            held = not explicit and person.version == before and await store.has_pending(conn, person.empi_id)
            return person, "updated" + (" (a change of name, birth date or sex waits for the desk)" if held else "")
        res = await patient_domain.register(conn, incoming, actor=actor, scorer=self.scorer, strict=False,
                                            patient_id_prefix=self.settings.patient_id_prefix, confirm=explicit)
        return res.person, res.outcome

    async def admit(self, conn: Any, msg: Message, actor: Actor) -> str:
        person, outcome = await self._register_or_update(conn, msg, actor)
        return f"{outcome} {person.patient_id}"

    async def update(self, conn: Any, msg: Message, actor: Actor) -> str:
        person, outcome = await self._register_or_update(conn, msg, actor, explicit=True)
        return f"{outcome} {person.patient_id}"

    async def merge(self, conn: Any, msg: Message, actor: Actor) -> str:
        incoming, his_id = person_from_pid(msg)
        survivor = await self._find(conn, incoming, his_id)
        if survivor is None:
            raise HL7Error(acks.UNKNOWN_KEY_IDENTIFIER, "PID-3: the surviving patient is not known", "PID", 1, 3)
        if msg.segment("MRG") is None:
            raise HL7Error(acks.SEGMENT_SEQUENCE_ERROR, "MRG segment is required for A40", "MRG", 1, None)
        prior = None
        for cx in msg.repetitions("MRG", 1):
            if cx[0]:
                prior = await store.find_by_identifier(conn, IdType.HIS_PATIENT_ID.value, cx[0])
                if prior:
                    break
        if prior is None:
            raise HL7Error(acks.UNKNOWN_KEY_IDENTIFIER, "MRG-1: the patient to merge is not known", "MRG", 1, 1)
        if prior.empi_id == survivor.empi_id:
            return "already merged"
        person = await patient_domain.merge(conn, survivor.empi_id, prior.empi_id, actor=actor,
                                            reason=f"HL7 A40 {msg.control_id}")
        return f"merged into {person.patient_id}"

    async def order(self, conn: Any, msg: Message, actor: Actor) -> str:
        if msg.segment("ORC") is None or msg.segment("OBR") is None:
            raise HL7Error(acks.SEGMENT_SEQUENCE_ERROR, "ORC and OBR segments are required", "ORC", 1, None)
        control = msg.field("ORC", 1)
        if control not in ("NW", CHANGE_CONTROL, *CANCEL_CONTROLS):
            raise HL7Error(acks.TABLE_VALUE_NOT_FOUND, f"ORC-1 order control {control!r} not supported "
                           f"(NW, {CHANGE_CONTROL}, {', '.join(CANCEL_CONTROLS)})", "ORC", 1, 1)
        placer = msg.field("ORC", 2, component=1) or msg.field("OBR", 2, component=1)
        if not placer:
            raise HL7Error(acks.REQUIRED_FIELD_MISSING, "ORC-2 placer order number is required", "ORC", 1, 2)
        if control in CANCEL_CONTROLS:
            return await self.cancel(conn, msg, placer, control, actor)
        if control == CHANGE_CONTROL:
            return await self.change(conn, msg, placer, actor)
        existing = await conn.fetchval(
            "SELECT order_id FROM exam_order WHERE source = 'his' AND placer_order_number = $1", placer)
        if existing:  # a resend: acknowledge it, change nothing (not even the patient)
            note_order(await order_domain.load_order(conn, str(existing)))
            return f"order already received ({existing})"
        form = order_form(msg)
        person, _ = await self._register_or_update(conn, msg, actor)
        order = await order_domain.create_order(
            conn, empi_id=person.empi_id, actor=actor, accession_prefix=self.settings.accession_prefix,
            source="his", placer_order_number=placer, **form,
        )
        note_order(order)
        return f"order {order['accession_number']} for {person.patient_id}"

    async def change(self, conn: Any, msg: Message, placer: str, actor: Actor) -> str:
        """ORC-1 XO: the order as the HIS now has it (items, time, priority, department...). The patient
        does not change this way: a PID naming someone else is refused, not followed."""
        order_id = await conn.fetchval(
            "SELECT order_id FROM exam_order WHERE source = 'his' AND placer_order_number = $1", placer)
        if order_id is None:
            raise HL7Error(acks.UNKNOWN_KEY_IDENTIFIER, f"ORC-2: no order {placer} to change", "ORC", 1, 2)
        note_order(await order_domain.load_order(conn, str(order_id)))
        _, his_id = person_from_pid(msg)
        owner = await conn.fetchval("SELECT empi_id FROM exam_order WHERE order_id = $1", order_id)
        named = await store.find_by_identifier(conn, IdType.HIS_PATIENT_ID.value, his_id) if his_id else None
        if named is not None and named.empi_id != (await store.get_person(conn, owner, follow_merged=True)).empi_id:
            raise HL7Error(acks.APPLICATION_RECORD_LOCKED, f"ORC-2: order {placer} belongs to another patient; "
                           "cancel it and order again for this one", "PID", 1, 3)
        reason = msg.field("ORC", 16, component=2) or msg.field("ORC", 16, component=1) or "HIS changed the order"
        try:
            order, changed = await order_domain.change_order(conn, order_id=str(order_id), changes=order_form(msg),
                                                             reason=reason, actor=actor)
        except order_domain.OrderClosed as exc:
            raise HL7Error(acks.APPLICATION_RECORD_LOCKED, str(exc), "ORC", 1, 1) from None
        note_order(order)
        return f"order {order['accession_number']} " + (f"changed: {', '.join(changed)}" if changed else "unchanged")

    async def cancel(self, conn: Any, msg: Message, placer: str, control: str, actor: Actor) -> str:
        """ORC-1 CA (cancel) or DC (discontinue) of an order we have: order.cancelled, once."""
        order_id = await conn.fetchval(
            "SELECT order_id FROM exam_order WHERE source = 'his' AND placer_order_number = $1", placer)
        if order_id is None:
            raise HL7Error(acks.UNKNOWN_KEY_IDENTIFIER, f"ORC-2: no order {placer} to cancel", "ORC", 1, 2)
        note_order(await order_domain.load_order(conn, str(order_id)))
        reason = (msg.field("ORC", 16, component=2) or msg.field("ORC", 16, component=1)
                  or ("HIS discontinued the order" if control == "DC" else "HIS cancelled the order"))
        order, changed = await order_domain.cancel_order(conn, order_id=str(order_id), reason=reason, actor=actor,
                                                         by_his=True)
        note_order(order)
        return f"order {order['accession_number']} {'cancelled' if changed else 'already cancelled'}"


def mllp_listener(ctx: ServiceContext[Settings]) -> contextlib.AbstractAsyncContextManager[Any]:
    @contextlib.asynccontextmanager
    async def run() -> AsyncIterator[MLLPServer | None]:
        settings = ctx.settings
        if not settings.mllp_enabled:
            yield None
            return
        feed = HisFeed(ctx)
        service = OrderFeedService(feed.handle, application=settings.hl7_application, facility=settings.hl7_facility,
                                 default_charset=settings.hl7_default_charset)
        async with service_ports(ctx, service, host=settings.mllp_host, port=settings.mllp_port,
                                 tls_port=settings.mllp_tls_port, mode=settings.peer_mode(settings.mllp_peers),
                                 name="registration-mllp") as server:
            yield server

    return run()
