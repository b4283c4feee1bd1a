"""The HL7 v2 interface specification (docs/hl7-interface.md) tied to what the platform does.

The document's message tables are read by `imaging_common.hl7.conformance`. Against a platform of its
own (all-in-one, its own database and namespace), this module:
- sends each message type the document says we accept to the real MLLP ports (registration 2575,
  critical values 2577) and checks the answer is the documented one, and conforms to its table;
- for each field whose table names an answer when it is missing or invalid, sends it so and checks
  that answer (MSA-1, ERR-3, ERR-2 naming the field); types the document does not list get AR;
- drives one patient from the HIS's order to the critical value's acknowledgement (booking, DCMTK
  findscu, MPPS, report, critical value), and a desk cancel, so that every outbound message type is
  sent to a stub HIS / clinician system over MLLP;
- taps every frame the platform writes, and checks each message against its table and with hl7apy
  (STRICT, declared version and v2.5.1, less the document's listed deviations); every outbound table
  must have been exercised, and no builder in the code makes a type the document does not list.
The last test reads what the earlier ones put on the wire: run the module whole.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.journey import Journey, Site, clinician_system, set_up_department, spy_on_bus, unique_name
from imaging_common.config import CommonSettings
from imaging_common.hl7 import Message, MessageService, MLLPClient, MLLPServer
from imaging_common.hl7 import conformance as conf
from imaging_common.hl7.charset import decode
from imaging_testing import eventually
from imaging_testing.helpers import environment
from security.conftest import sandbox_platform

REPO = Path(__file__).resolve().parents[2]
SPEC = conf.load(REPO / "docs" / "hl7-interface.md")
OURS = {"IMAGING", "IMAGING-CV"}  # MSH-3 of the platform's messages (the settings' defaults)


# ---- the specification itself (no platform) ----------------------------------------------------


def test_the_specification_is_complete_and_consistent() -> None:
    assert {m.id for m in SPEC.inbound()} == {"adt-a01", "adt-a04", "adt-a08", "adt-a40", "orm-o01", "omi-o23",
                                              "critical-app-ack"}
    assert {m.id for m in SPEC.outbound()} == {"ack", "orr-o02", "ori-o24", "status-update", "report-oru",
                                               "critical-oru"}
    # each accepted type is sent below: registration's by the parametrized tests, the ACK in the journey
    assert {m.id for m in SPEC.inbound()} == {*REGISTRATION_IN, "critical-app-ack"}
    for spec in SPEC.messages.values():
        assert spec.segments and spec.segments[0].id == "MSH", spec.id
        assert spec.fields, f"{spec.id} has no field table"
        if spec.direction == "in":
            assert spec.reply in SPEC.messages and SPEC.messages[spec.reply].direction == "out", spec.id
        listed = {s.id for s in spec.segments}
        for f in spec.fields.values():
            assert f.opt in ("R", "RE", "O", "C", "B", "X"), (spec.id, f.ref, f.opt)
            assert f.datatype and f.name and f.length, (spec.id, f.ref)
            if spec.direction == "out":
                assert f.segment in listed, (spec.id, f.ref)
            if f.rule.startswith("table "):
                assert f.rule[6:] in SPEC.tables, (spec.id, f.ref, f.rule)
        if spec.direction == "out":  # every MSH field a receiver needs is specified
            assert {("MSH", n) for n in (1, 2, 3, 4, 7, 9, 10, 11, 12)} <= set(spec.fields), spec.id
    # The answer codes we document are the ones the code has.
    from imaging_common.hl7 import ack as acks
    from registration.adapters.hl7_replies import RESPONSE_CODES

    assert {c for pair in RESPONSE_CODES.values() for c in pair} == SPEC.tables["0119-reply"]
    assert set(RESPONSE_CODES) == SPEC.tables["0119-in"]
    assert SPEC.tables["0357-out"] <= set(acks.ERROR_TEXT)


_TYPE_LITERAL = re.compile(r"""[\[(]\s*"([A-Z]{3})",\s*"([A-Z0-9]{3})",\s*"([A-Z]{3}_[A-Z0-9]{3})"\s*[\])]""")
_ACK_LITERAL = re.compile(r"""\[\s*"(ACK)",\s*\w+,\s*"(ACK)"\s*\]""")
BUILDERS = {  # every module that builds an MSH, and the message types it makes
    "libs/common/imaging_common/hl7/ack.py": {("ACK", "*", "ACK")},
    "services/registration/registration/adapters/hl7_replies.py": {("ORR", "O02", "ORR_O02"),
                                                                   ("ORI", "O24", "ORI_O24")},
    "services/registration/registration/adapters/hl7_status.py": {("ORM", "O01", "ORM_O01")},
    "services/reporting/reporting/adapters/hl7_oru.py": {("ORU", "R01", "ORU_R01")},
    "services/critical-values/critical_values/adapters/messages.py": {("ORU", "R01", "ORU_R01")},
}


def test_no_builder_makes_a_message_type_the_specification_does_not_list() -> None:
    sources = [p for top in ("services", "libs") for p in (REPO / top).rglob("*.py")
               if "/tests/" not in str(p) and ".venv" not in p.parts]
    building = {str(p.relative_to(REPO)) for p in sources
                if re.search(r"\bbuild_msh\(|\.fields\[9\]\s*=", p.read_text(encoding="utf-8"))}
    building.discard("libs/common/imaging_common/hl7/message.py")  # build_msh itself
    assert building == set(BUILDERS), "a module builds HL7 messages: add its types to docs/hl7-interface.md"
    listed = {m.type for m in SPEC.outbound()}
    for path, expected in BUILDERS.items():
        text = (REPO / path).read_text(encoding="utf-8")
        found = {m.groups() for m in _TYPE_LITERAL.finditer(text)}
        found |= {(a, "*", b) for a, b in _ACK_LITERAL.findall(text)}
        assert found == expected, (path, found)
        assert found <= listed, (path, found - listed)


def test_the_checker_finds_what_departs_from_a_table() -> None:
    """A conforming status update, then one departure at a time: each is reported, naming the field."""
    good = "\r".join([
        "MSH|^~\\&|IMAGING|RIS|HIS|HOSP|20261207083000+0800||ORM^O01^ORM_O01|S0123456789abcdef012|P|2.5||||||"
        "UNICODE UTF-8", "PID|1||H1^^^HIS^PI~P1^^^IMAGING^PT||张三||19800102|M", "PV1|1|I",
        "ORC|SC|ORD1|A1^IMAGING||IP||||20261207083000+0800", "OBR|1|ORD1|A1^IMAGING|CT-CHEST^胸部CT平扫"]) + "\r"
    spec = SPEC.messages["status-update"]
    assert conf.check(good, spec, SPEC.tables) == []
    departures = {
        "ORC|SC|ORD1|A1^IMAGING||IP||||20261207083000+0800": ("ORC|SC|ORD1|A1^IMAGING||XX||||20261207083000+0800",
                                                               "ORC-5 (Order Status): 'XX' is not in table"),
        "PV1|1|I": ("PV1|1|I||||||||||||||||||||||||||||||||||||||||||||X", "PV1-46 'X' is sent but not"),
        "PID|1||": ("PID|||", "PID-1 (Set ID - PID) is required and empty"),
        "|19800102|": ("|1980-01-02|", "PID-7: '1980-01-02' is not an HL7 TS"),
        "ORD1|A1^IMAGING||IP": ("ORD1ORD1ORD1ORD1ORD1ORD1|A1^IMAGING||IP", "ORC-2 is 24 characters, at most 22"),
        "\rOBR|": ("\rNTE|1||x\rOBR|", "segments MSH,PID,PV1,ORC,NTE,OBR do not follow"),
        "|2.5|": ("|2.4|", "MSH-12 '2.4' is not one of ['2.5']"),
    }
    for old, (new, problem) in departures.items():
        found = conf.check(good.replace(old, new, 1), spec, SPEC.tables)
        assert any(problem in p for p in found), (problem, found)
    assert any("MSA-2" in p for p in conf.check(
        "MSH|^~\\&|IMAGING|RIS|HIS||20261207083000+0800||ACK^A04^ACK|A0123456789abcdef012|P|2.5\rMSA|AA|WRONG\r",
        SPEC.messages["ack"], SPEC.tables, original=Message.parse("MSH|^~\\&|HIS||||x||ADT^A04|M1|P|2.5\r")))


def test_report_and_status_variants_conform() -> None:
    """What the journey below does not reach: every report status (W is a documented deviation), a
    GB 18030 receiver, coded and numeric fields; every status update (SC/IP/DC/CM, OC)."""
    from imaging_common.empi.identifiers import IdType
    from registration.adapters.hl7_status import status_message
    from registration.domain.his_status import Endpoint
    from reporting.adapters.hl7_oru import build_oru

    snap: dict[str, Any] = {
        "patient": {"patient_id": "P000001", "empi_id": "01JEMPI", "name": "欧阳娜娜", "name_latin": "OUYANG^NANA",
                    "birth_date": "1980-01-02", "sex": "F"},
        "exam": {"patient_class": "inpatient", "ordering_doctor_id": "D001", "ordering_doctor": "李医生",
                 "order_id": str(uuid.uuid4()), "exam_code": "MR-HEAD", "exam_name": "头颅MR平扫",
                 "completed_at": datetime.now(UTC), "modality": "MR"},
        "content": {"findings": "左侧基底节区见斑片状异常信号。\n中线结构居中。", "impression": "腔隙性脑梗死",
                    "recommendation": "随访", "fields": {
                        "size": {"value": 12.5, "unit": "mm"}, "note": {"value": "a|b^c"},
                        "side": {"value": "left", "code": "7771000", "display": "Left", "code_system": "SNOMED-CT",
                                 "critical": True}}},
        "accession_number": "A2612070000001", "signer_id": "R001", "signer_name": "王医生",
        "signed_at": datetime.now(UTC), "field_labels": {"size": "大小"}}
    for status in ("P", "F", "C", "W", "X"):
        for charset in ("utf-8", "gb18030"):
            er7 = build_oru({**snap, "result_status": status}, charset=charset).to_er7()
            _conforms(er7.encode(charset), expect="report-oru")
    person = type("Person", (), {"identifiers": [{"type": IdType.HIS_PATIENT_ID.value, "value": "H1", "valid": True}],
                                 "patient_id": "P000001", "name": "张三", "birth_date": date(1980, 1, 2),
                                 "sex": "M"})()
    order = {"items": [{"code": "CT-CHEST", "name": "胸部CT平扫", "modality": "CT"}], "patient_class": "physical-exam",
             "ward": "呼吸科", "bed": "12", "visit_number": "V0001", "placer_order_number": "ORD0001",
             "accession_number": "A2612070000001"}
    for charset in ("utf-8", "gb18030"):
        target = Endpoint("127.0.0.1", 1, "IMAGING", "RIS", "HIS", "HOSP", charset)
        for control, status, start, reason in (("SC", "SC", datetime.now(UTC), None), ("SC", "IP", None, None),
                                               ("SC", "DC", None, None), ("SC", "CM", None, None),
                                               ("OC", "CA", None, "患者取消")):
            er7 = status_message(order, person, target, control=control, order_status=status, at=datetime.now(UTC),
                                 control_id=f"S{uuid.uuid4().hex[:19]}", start=start, reason=reason).to_er7()
            _conforms(er7.encode(charset), expect="status-update")


# ---- checking what is on the wire ---------------------------------------------------------------


def _conforms(raw: bytes, *, expect: str | None = None, original: Message | None = None) -> Message:
    table, problems = conf.problems_of(raw, SPEC, original=original)
    text = decode(raw)[0]
    assert table is not None, "\n".join(problems) + "\n" + text.replace("\r", "\n")
    if expect is not None:
        assert table.id == expect, (table.id, expect)
    assert not problems, f"{table.id} does not conform:\n" + "\n".join(problems) + "\n" + text.replace("\r", "\n")
    return Message.parse(text)


@dataclass
class StubHis:
    """The HIS's status listener: every ORM^O01 it gets, answered AA."""

    received: list[Message] = field(default_factory=list)

    async def on_message(self, message: Message) -> str | None:
        self.received.append(message)
        return None

    def about(self, placer: str) -> list[tuple[str, str]]:
        return [(m.field("ORC", 1), m.field("ORC", 5)) for m in self.received if m.field("ORC", 2) == placer]


@dataclass
class World:
    site: Site
    his: StubHis
    registration_port: int
    critical_port: int
    tap: list[bytes]
    workdir: Path
    seen: set[str] = field(default_factory=set)  # outbound specs met on the wire

    async def send(self, port: int, text: str) -> Message:
        async with MLLPClient("127.0.0.1", port, timeout=30) as client:
            raw = await client.send(text.encode("utf-8"))
        return Message.parse(decode(raw)[0])


@pytest.fixture(scope="module")
async def world(common_settings: CommonSettings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    his = StubHis()
    async with clinician_system() as clinician, \
            MLLPServer(MessageService(his.on_message, application="HIS", facility="HOSP"), "127.0.0.1", 0) as status:
        receivers = [{"id": "conf-his", "kind": "hl7", "name": "HIS (results)", "host": "127.0.0.1",
                      "port": clinician.mllp_port, "charset": "utf-8"}]
        overrides = {
            "IMAGING_HIS_STATUS_HOST": "127.0.0.1", "IMAGING_HIS_STATUS_PORT": str(status.port),
            "IMAGING_HIS_STATUS_APPLICATION": "HIS", "IMAGING_HIS_STATUS_FACILITY": "HOSP",
            "IMAGING_HIS_STATUS_POLL": "0.3", "IMAGING_HIS_STATUS_RETRY_BASE": "0.3",
            "IMAGING_HIS_STATUS_RETRY_MAX": "1",
            "IMAGING_REPORTING_RECEIVERS": json.dumps(receivers), "IMAGING_REPORTING_DELIVERY_POLL": "0.2",
            "IMAGING_REPORTING_DELIVERY_RETRY_BASE": "0.1", "IMAGING_REPORTING_DELIVERY_RETRY_MAX": "0.5",
            "IMAGING_CRITICAL_POLL_SECONDS": "0.1", "IMAGING_CRITICAL_RETRY_SECONDS": "0.2",
        }
        with conf.wire_tap() as tap, environment(overrides):
            async with sandbox_platform(common_settings, "hl7conf") as box, spy_on_bus(box.settings) as log, \
                    httpx.AsyncClient(base_url=box.url, timeout=30) as api:
                registration = box.apps["registration"].state.ctx
                site = Site(api=api, settings=box.settings,
                            worklist_port=box.apps["worklist"].state.ctx.extras["worklist_scp"].port, print_port=0,
                            clinician=clinician, log=log, ui_url=lambda prefix: box.url,
                            mllp_port=registration.extras["mllp_port"])
                yield World(site=site, his=his, registration_port=registration.extras["mllp_port"],
                            critical_port=box.apps["critical_values"].state.ctx.extras["mllp_port"], tap=tap,
                            workdir=tmp_path_factory.mktemp("hl7conf"))


# ---- what the HIS sends: accepted, and refused as documented ------------------------------------


def _msh(kind: str, version: str = "2.5", app: str = "HIS") -> str:
    return (f"MSH|^~\\&|{app}|HOSP|IMAGING|RIS|20261207083000+0800||{kind}|{uuid.uuid4().hex[:16]}|P|{version}"
            "||||||UNICODE UTF-8")


def _pid(his_id: str, name: str | None = None) -> str:
    name = name or unique_name() + uuid.uuid4().hex[:2].upper()
    return f"PID|1||{his_id}^^^HIS^PI||{name[0]}^{name[1:]}||19800101|F|||北京市^^东城区||010-12345678"


def _order(kind: str, his_id: str, placer: str, control: str = "NW") -> str:
    segments = [_msh(kind), _pid(his_id), "PV1|1|I|呼吸科^^12|||||||300||||||||V0001",
                f"ORC|{control}|{placer}|||||^^^^^R|||||D001^李^医生||||^家属要求|^呼吸内科"]
    if kind.startswith("OMI"):
        segments.append("TQ1|1||||||20261208090000+0800||R")
    segments += ["OBR|1|||CT-CHEST^胸部CT平扫|||||||||胸痛|||CHEST||||||||CT|||||||^胸痛待查",
                 "NTE|1||排除气胸"]
    if kind.startswith("OMI"):
        segments.append("IPC|1.2.3|RP1|1.2.840.99|SPS1|CT")
    return "\r".join(segments) + "\r"


async def _example(w: World, spec_id: str) -> str:
    """A message of this inbound table that is accepted (AA), made unique for each call."""
    his, placer = f"H{uuid.uuid4().hex[:10]}", f"ORD{uuid.uuid4().hex[:10]}"
    if spec_id in ("adt-a01", "adt-a04", "adt-a08"):
        kind = {"adt-a01": "ADT^A01^ADT_A01", "adt-a04": "ADT^A04^ADT_A01", "adt-a08": "ADT^A08^ADT_A01"}[spec_id]
        return "\r".join([_msh(kind), f"EVN|{kind[4:7]}|20261207083000", _pid(his), "PV1|1|O"]) + "\r"
    if spec_id == "adt-a40":
        prior = f"H{uuid.uuid4().hex[:10]}"
        for patient in (his, prior):  # both known first
            ack = await w.send(w.registration_port, await _adt(patient))
            assert ack.field("MSA", 1) == "AA", ack.to_er7()
        return "\r".join([_msh("ADT^A40^ADT_A39"), "EVN|A40|20261207083000", _pid(his),
                          f"MRG|{prior}^^^HIS^PI"]) + "\r"
    if spec_id == "orm-o01":
        return _order("ORM^O01^ORM_O01", his, placer)
    if spec_id == "omi-o23":
        return _order("OMI^O23^OMI_O23", his, placer)
    raise AssertionError(spec_id)


async def _adt(his: str) -> str:
    return "\r".join([_msh("ADT^A04^ADT_A01"), "EVN|A04", _pid(his), "PV1|1|O"]) + "\r"


def _with_field(text: str, ref: str, value: str) -> str | None:
    """`text` with SEG-n set to `value` in the segment's first instance; None when it has no such segment."""
    seg, _, pos = ref.partition("-")
    n = int(pos)
    lines = text.rstrip("\r").split("\r")
    for i, line in enumerate(lines):
        if line.startswith(seg + "|"):
            parts = line.split("|")
            index = n if seg != "MSH" else n - 1  # MSH-1 is the separator itself
            parts += [""] * (index + 1 - len(parts))
            parts[index] = value
            lines[i] = "|".join(parts)
            return "\r".join(lines) + "\r"
    return None


REGISTRATION_IN = ["adt-a01", "adt-a04", "adt-a08", "adt-a40", "orm-o01", "omi-o23"]


@pytest.mark.parametrize("spec_id", REGISTRATION_IN)
async def test_each_accepted_message_is_answered_as_specified(world: World, spec_id: str) -> None:
    spec = SPEC.messages[spec_id]
    text = await _example(world, spec_id)
    request = Message.parse(text)
    assert conf.check(request, spec, SPEC.tables) == []  # the example is what the table describes
    raw = await _raw_send(world.registration_port, text)
    reply = _conforms(raw, expect=spec.reply, original=request)
    assert reply.field("MSA", 1) == "AA", reply.to_er7()
    if spec_id in ("orm-o01", "omi-o23"):
        assert reply.field("ORC", 1) == "OK" and reply.field("ORC", 3, component=1)
        # the order's other controls the table 0119-in lists: change, then cancel (answered XR, CR)
        placer = request.field("ORC", 2)
        for control, answer in (("XO", "XR"), ("CA", "CR")):
            change = _with_field(text, "ORC-1", control)
            assert change is not None
            change = _with_field(change, "MSH-10", uuid.uuid4().hex[:16])
            assert change is not None
            reply = _conforms(await _raw_send(world.registration_port, change), expect=spec.reply,
                              original=Message.parse(change))
            assert (reply.field("MSA", 1), reply.field("ORC", 1), reply.field("ORC", 2)) == ("AA", answer, placer)


async def _raw_send(port: int, text: str) -> bytes:
    async with MLLPClient("127.0.0.1", port, timeout=30) as client:
        return await client.send(text.encode("utf-8"))


def _error_cases() -> list[tuple[str, str, str]]:
    # ORM^O01 has no TQ1 or IPC (v2.5): the shared table's rules for them are tried with OMI^O23
    return [(spec_id, f.ref, f.on_error) for spec_id in REGISTRATION_IN
            for f in SPEC.messages[spec_id].fields.values()
            if f.on_error and not (spec_id == "orm-o01" and f.segment in ("TQ1", "IPC"))]


@pytest.mark.parametrize(("spec_id", "ref", "on_error"), _error_cases())
async def test_a_missing_or_invalid_field_is_answered_as_specified(world: World, spec_id: str, ref: str,
                                                                   on_error: str) -> None:
    code, err, *bad = on_error.replace("←", " ").split()
    text = _with_field(await _example(world, spec_id), ref, bad[0] if bad else "")
    if text is None:
        pytest.fail(f"the {spec_id} example has no {ref.split('-')[0]} to change")
    raw = await _raw_send(world.registration_port, text)
    original = None if ref in ("MSH-9", "MSH-10") else Message.parse(text)
    reply = _conforms(raw, original=original)
    assert reply.field("MSA", 1) == code and reply.field("ERR", 3, component=1) == err, reply.to_er7()
    seg, _, pos = ref.partition("-")
    assert reply.field("ERR", 2).split("^")[::2] == [seg, pos], reply.to_er7()
    if code == "AR":
        assert reply.type[0] == "ACK"
    elif spec_id in ("orm-o01", "omi-o23"):
        assert reply.type[0] in ("ORR", "ORI")


@pytest.mark.parametrize(("kind", "code"), [("ADT^A03^ADT_A03", "201"), ("ADT^A31^ADT_A05", "201"),
                                            ("OMG^O19^OMG_O19", "200"), ("ORU^R01^ORU_R01", "200"),
                                            ("QRY^Q01^QRY_Q01", "200"), ("SIU^S12^SIU_S12", "200")])
async def test_a_type_the_specification_does_not_list_is_rejected(world: World, kind: str, code: str) -> None:
    text = "\r".join([_msh(kind), _pid(f"H{uuid.uuid4().hex[:8]}")]) + "\r"
    assert SPEC.spec_for(Message.parse(text), "in") is None
    reply = _conforms(await _raw_send(world.registration_port, text), expect="ack", original=Message.parse(text))
    assert (reply.field("MSA", 1), reply.field("ERR", 3, component=1)) == ("AR", code), reply.to_er7()
    # Critical values' port takes application acknowledgements only.
    reply = _conforms(await _raw_send(world.critical_port, text), expect="ack", original=Message.parse(text))
    assert (reply.field("MSA", 1), reply.field("ERR", 3, component=1)) == ("AR", "200"), reply.to_er7()


async def test_an_older_version_is_answered_in_its_own_err_form(world: World) -> None:
    for version in ("2.3.1", "2.4"):
        text = "\r".join([_msh("ADT^A04^ADT_A01", version), "EVN|A04", "PID|1||X^^^HIS^PI"]) + "\r"
        reply = _conforms(await _raw_send(world.registration_port, text), expect="ack", original=Message.parse(text))
        assert reply.field("MSH", 12) == version and reply.field("MSA", 1) == "AE"
        assert reply.field("ERR", 1, component=4) == "101" and not reply.field("ERR", 3)


# ---- one patient: every outbound message over MLLP ----------------------------------------------


async def _until(check: Callable[[], Any], what: str, within: float = 60) -> Any:
    return await eventually(check, what, within=within)


async def test_one_patient_sends_every_outbound_message(world: World) -> None:
    site, his = world.site, world.his
    tag = uuid.uuid4().hex[:6].upper()
    dept = await set_up_department(site, tag)
    j = Journey(site, dept, world.workdir)
    placer = f"ORD{uuid.uuid4().hex[:10]}"
    await j.order_from_his(f"H{uuid.uuid4().hex[:10]}", placer)  # ADT^A04 + ORM^O01 NW over MLLP
    await j.book()
    await _until(lambda: ("SC", "SC") in his.about(placer), "ORM^O01 SC/SC at the HIS")
    await j.check_in()
    await j.call()
    await j.query_worklist()
    await j.start_exam()
    await _until(lambda: ("SC", "IP") in his.about(placer), "ORM^O01 SC/IP at the HIS")
    await j.complete_exam()
    await _until(lambda: ("SC", "CM") in his.about(placer), "ORM^O01 SC/CM at the HIS")
    assert his.about(placer) == [("SC", "SC"), ("SC", "IP"), ("SC", "CM")]
    for message in his.received:
        _conforms(message.to_er7().encode(), expect="status-update")

    await j.report(critical=True)
    await _until(lambda: {m.field("OBR", 25) for m in j.report_orus()} >= {"P", "F"}, "ORU^R01 P and F at the HIS")
    for message in j.report_orus():
        _conforms(message.to_er7().encode(), expect="report-oru")
    await j.critical_notified()
    [oru] = j.critical_orus()
    _conforms(oru.to_er7().encode(), expect="critical-oru")

    # The clinician's application acknowledgement to port 2577: accepted (AA), then as documented.
    receiver = f"e2e-ward-{tag}"
    ack_spec = SPEC.messages["critical-app-ack"]
    text = "\r".join([_msh("ACK^R01^ACK", app=receiver).replace("|HOSP|", "|WARD|", 1), f"MSA|AA|{oru.control_id}",
                      "EVN|||||D001^李医生|20261207120000+0800", "NTE|1||已行胸腔闭式引流"]) + "\r"
    assert conf.check(Message.parse(text), ack_spec, SPEC.tables) == []
    reply = _conforms(await _raw_send(world.critical_port, text), expect="ack", original=Message.parse(text))
    assert reply.field("MSA", 1) == "AA", reply.to_er7()
    for f in ack_spec.fields.values():
        if not f.on_error:
            continue
        code, err = f.on_error.split()[:2]
        bad = _with_field(_with_field(text, "MSH-10", uuid.uuid4().hex[:16]) or "", f.ref, "")
        assert bad is not None
        original = None if f.ref in ("MSH-9", "MSH-10") else Message.parse(bad)
        reply = _conforms(await _raw_send(world.critical_port, bad), expect="ack", original=original)
        assert (reply.field("MSA", 1), reply.field("ERR", 3, component=1)) == (code, err), (f.ref, reply.to_er7())
    unknown = _with_field(text, "MSA-2", "CV-NEVER-SENT") or ""
    reply = _conforms(await _raw_send(world.critical_port, unknown), expect="ack", original=Message.parse(unknown))
    assert (reply.field("MSA", 1), reply.field("ERR", 3, component=1)) == ("AE", "204"), reply.to_er7()

    # A HIS order cancelled at the imaging desk: ORC-1 OC.
    other = f"ORD{uuid.uuid4().hex[:10]}"
    await j.his_says("ORM^O01^ORM_O01", _pid(f"H{uuid.uuid4().hex[:10]}"), "PV1|1|O", f"ORC|NW|{other}",
                     "OBR|1|||CT-CHEST^胸部CT平扫" + "|" * 20 + "CT")
    r = await site.api.get("/api/registration/orders", params={"limit": 200}, headers=j.who("admin"))
    accession = next(o["accession_number"] for o in r.json()["data"] if o["placer_order_number"] == other)
    r = await site.api.post(f"/api/registration/orders/{accession}/cancel", json={"reason": "患者取消检查"},
                            headers=j.who("admin"))
    assert r.status_code == 200, r.text
    await _until(lambda: his.about(other) == [("OC", "CA")], "ORM^O01 OC at the HIS")


# ---- everything the platform put on the wire -----------------------------------------------------


async def test_every_message_the_platform_sent_conforms(world: World) -> None:
    await asyncio.sleep(0.5)  # answers still being framed
    ours = [raw for raw in list(world.tap) if _sender(raw) in OURS]
    assert ours, "nothing of ours was on the wire"
    seen: dict[str, int] = {}
    for raw in ours:
        message = _conforms(raw)
        spec = SPEC.spec_for(message)
        assert spec is not None
        seen[spec.id] = seen.get(spec.id, 0) + 1
    missing = {m.id for m in SPEC.outbound()} - set(seen)
    assert not missing, f"outbound messages the tests never sent: {sorted(missing)} (sent: {seen})"


def _sender(raw: bytes) -> str:
    first = raw.split(b"\r", 1)[0]
    parts = first.split(b"|")
    return parts[2].split(b"^")[0].decode("latin-1") if first.startswith(b"MSH") and len(parts) > 2 else ""

