"""The HIS feed over real MLLP/TCP: ADT register/update/merge, ORM/OMI orders, charsets, AE/AR, atomicity.
ADT is answered ACK, ORM^O01 ORR^O02 and OMI^O23 ORI^O24 with the order's ORC (table 0119 response codes)."""

from __future__ import annotations

import uuid

import pytest
from imaging_common.hl7 import Message
from imaging_common.hl7.mllp import MLLPClient
from imaging_testing import asgi_client, free_port
from registration.app import create_app
from registration.settings import Settings
from regtest_helpers import events, rid, uname


@pytest.fixture(scope="module")
async def feed(settings_for):
    settings = settings_for(Settings, mllp_enabled=True, mllp_host="127.0.0.1", mllp_port=free_port())
    app = create_app(settings)
    async with asgi_client(app):
        ctx = app.state.ctx
        async with MLLPClient("127.0.0.1", ctx.extras["mllp_port"], timeout=20) as client:
            yield client, ctx.pool


def msg(kind: str, *segments: str, charset: str = "UNICODE UTF-8", control: str | None = None) -> str:
    control = control or uuid.uuid4().hex[:12]
    head = f"MSH|^~\\&|HIS|HOSP|RIS|IMG|20240601083000||{kind}|{control}|P|2.5||||||{charset}"
    return "\r".join([head, *segments]) + "\r"


def pid(his_id: str, name: str, idn: str | None = None, dob: str = "19800101", sex: str = "F",
        phone: str = "13500001111") -> str:
    ids = f"{his_id}^^^HIS^PI" + (f"~{idn}^^^CHN^NNCHN" if idn else "")
    return f"PID|1||{ids}||{name}||{dob}|{sex}|||解放路1号^^武汉^湖北^430000||{phone}"


async def send(client: MLLPClient, text: str, charset: str = "utf-8") -> Message:
    reply = await client.send(text.encode(charset))
    return Message.parse(reply.decode(charset))


def order_reply(reply: Message, request: str, control: str, placer: str, accession: str | None) -> None:
    """`reply` answers the ORM^O01 / OMI^O23 `request` as HL7 v2.5 says: ORR^O02 / ORI^O24, MSA-2 its
    MSH-10, ORC-1 `control`, ORC-2 and OBR-2 the placer number, ORC-3 and OBR-3 our accession (or none)."""
    sent = Message.parse(request)
    expected = {"ORM": ("ORR", "O02", "ORR_O02"), "OMI": ("ORI", "O24", "ORI_O24")}[sent.type[0]]
    assert reply.type == expected, reply.to_er7()
    assert reply.field("MSA", 2) == sent.control_id and reply.version == "2.5"
    assert [s.id for s in reply.segments][:2] == ["MSH", "MSA"]
    assert reply.field("ORC", 1) == control, reply.to_er7()
    assert reply.field("ORC", 2, component=1) == placer and reply.field("OBR", 2, component=1) == placer
    assert reply.field("ORC", 3, component=1) == (accession or "") == reply.field("OBR", 3, component=1)
    if accession:
        assert reply.field("ORC", 3, component=2) == "IMAGING"
    assert reply.field("OBR", 4, component=1) == sent.field("OBR", 4, component=1)
    if control.startswith("U"):  # refused: AE and the ERR naming why
        assert reply.field("MSA", 1) == "AE" and reply.field("ERR", 3, component=1) and reply.field("ERR", 8)
    else:
        assert reply.field("MSA", 1) == "AA" and reply.segment("ERR") is None


async def test_adt_register_update_and_typo_duplicate_linked(feed) -> None:
    client, pool = feed
    name, idn, his = uname(), rid(born="19800101"), f"H{uuid.uuid4().hex[:8]}"
    family, given = name[:2], name[2:]
    ack = await send(client, msg("ADT^A04^ADT_A01", "EVN|A04", pid(his, f"{family}^{given}", idn),
                                 "PV1|1|O"))
    assert ack.field("MSA", 1) == "AA", ack.to_er7()
    assert ack.type == ("ACK", "A04", "ACK") and ack.segment("ORC") is None  # ADT is answered ACK
    empi = await pool.fetchval("SELECT empi_id FROM empi_identifier WHERE type = 'his-patient-id' AND value = $1", his)
    assert empi and (await events(pool, "patient.registered", empi))
    # The same person from another HIS registration, ID with one wrong digit, GB 18030 bytes: linked.
    his2 = f"H{uuid.uuid4().hex[:8]}"
    typo = idn[:15] + str((int(idn[15]) + 1) % 10) + idn[16:]
    ack = await send(client, msg("ADT^A01^ADT_A01", "EVN|A01", pid(his2, f"{family}^{given}", typo),
                                 charset="GB 18030-2000"), "gb18030")
    assert ack.field("MSA", 1) == "AA" and "linked" in ack.field("MSA", 3)
    assert await pool.fetchval("SELECT empi_id FROM empi_identifier WHERE value = $1", his2) == empi
    # A08 updates the phone.
    ack = await send(client, msg("ADT^A08^ADT_A01", "EVN|A08", pid(his, f"{family}^{given}", idn, phone="13300002222")))
    assert ack.field("MSA", 1) == "AA"
    assert await pool.fetchval("SELECT phone FROM empi_person WHERE empi_id = $1", empi) == "13300002222"
    # A twin (consecutive valid ID) is a new person.
    twin = rid(idn[:6], "19800101", (int(idn[14:17]) + 2) % 1000)
    his3 = f"H{uuid.uuid4().hex[:8]}"
    ack = await send(client, msg("ADT^A04^ADT_A01", "EVN|A04", pid(his3, f"{family}^婷", twin)))
    assert ack.field("MSA", 1) == "AA"
    assert await pool.fetchval("SELECT empi_id FROM empi_identifier WHERE value = $1", his3) != empi


async def test_a40_merge(feed) -> None:
    client, pool = feed
    a, b = f"H{uuid.uuid4().hex[:8]}", f"H{uuid.uuid4().hex[:8]}"
    await send(client, msg("ADT^A04", "EVN|A04", pid(a, uname(), dob="19700505", phone="13100000001")))
    await send(client, msg("ADT^A04", "EVN|A04", pid(b, uname(), dob="19710606", phone="13100000002")))
    ea = await pool.fetchval("SELECT empi_id FROM empi_identifier WHERE value = $1", a)
    eb = await pool.fetchval("SELECT empi_id FROM empi_identifier WHERE value = $1", b)
    ack = await send(client, msg("ADT^A40^ADT_A39", "EVN|A40", pid(a, uname()), f"MRG|{b}^^^HIS^PI"))
    assert ack.field("MSA", 1) == "AA", ack.to_er7()
    assert await pool.fetchval("SELECT merged_into FROM empi_person WHERE empi_id = $1", eb) == ea
    assert await pool.fetchval("SELECT empi_id FROM empi_identifier WHERE value = $1", b) == ea
    assert (await events(pool, "patient.merged", ea))
    ack = await send(client, msg("ADT^A40^ADT_A39", "EVN|A40", pid(a, uname()), "MRG|NOSUCH^^^HIS^PI"))
    assert ack.field("MSA", 1) == "AE" and ack.field("ERR", 3, component=1) == "204"
    assert ack.field("ERR", 2, component=1) == "MRG"


async def test_orm_and_omi_orders_emit_order_created(feed) -> None:
    client, pool = feed
    his, placer = f"H{uuid.uuid4().hex[:8]}", f"ORD{uuid.uuid4().hex[:8]}"
    text = msg("ORM^O01^ORM_O01", pid(his, "孙^悦", rid()), "PV1|1|I|呼吸科^301^12||||||||RES|||||||||V778",
               f"ORC|NW|{placer}|||||^^^^^S|||||D001^王^医生|||||^呼吸内科",
               "OBR|1|||CT-CHEST^胸部CT平扫^LOCAL||||||||INF^传染病|咳嗽发热||CHEST|||||||||CT|||||||^肺部感染",
               "NTE|1||排除肺结核")
    ack = await send(client, text)
    assert ack.field("MSA", 1) == "AA", ack.to_er7()
    row = await pool.fetchrow("SELECT * FROM exam_order WHERE placer_order_number = $1", placer)
    order_reply(ack, text, "OK", placer, row["accession_number"])
    assert ack.field("ORC", 5) == ""  # not scheduled yet
    assert row["patient_class"] == "inpatient" and row["ward"] == "呼吸科" and row["bed"] == "12"
    assert row["priority"] == "stat" and row["ordering_doctor"] == "王医生" and row["ordering_department"] == "呼吸内科"
    assert row["clinical_diagnosis"] == "肺部感染" and row["purpose"] == "排除肺结核" and row["history"] == "咳嗽发热"
    ev = (await events(pool, "order.created", row["accession_number"]))[0]["data"]
    assert ev["special"]["infectious"] is True and ev["items"][0]["modality"] == "CT"
    # Resent: acknowledged, not duplicated, the patient untouched.
    sources = await pool.fetchval("SELECT count(*) FROM empi_source_record WHERE empi_id = $1", row["empi_id"])
    ack = await send(client, text)
    assert await pool.fetchval("SELECT count(*) FROM empi_source_record WHERE empi_id = $1", row["empi_id"]) == sources
    assert ack.field("MSA", 1) == "AA" and "already" in ack.field("MSA", 3)
    order_reply(ack, text, "OK", placer, row["accession_number"])  # the order we already have
    assert await pool.fetchval("SELECT count(*) FROM exam_order WHERE placer_order_number = $1", placer) == 1
    placer2 = f"OMI{uuid.uuid4().hex[:8]}"
    omi = msg("OMI^O23^OMI_O23", pid(his, "孙^悦"), "PV1|1|O", f"ORC|NW|{placer2}", "TQ1|1||||||||R",
              "OBR|1|||MR-HEAD^头颅MR平扫" + "|" * 20 + "MR", "IPC|1.2.3|4.5.6|1.2.840.1|SPS1|MR")
    ack = await send(client, omi)
    assert ack.field("MSA", 1) == "AA", ack.to_er7()
    row2 = await pool.fetchrow("SELECT * FROM exam_order WHERE placer_order_number = $1", placer2)
    assert row2["items"] and "MR" in str(row2["items"])
    order_reply(ack, omi, "OK", placer2, row2["accession_number"])
    # ORI^O24: IPC with our accession, requested procedure and Study Instance UID, the request's step id.
    assert [ack.field("IPC", n) for n in range(1, 6)] == [
        row2["accession_number"], row2["requested_procedure_id"], row2["study_instance_uid"], "SPS1", "MR"]
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message
    parse_message(ack.to_er7(), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()


async def test_malformed_messages_get_ae_or_ar_and_store_nothing(feed) -> None:
    client, pool = feed
    his, placer = f"H{uuid.uuid4().hex[:8]}", f"BAD{uuid.uuid4().hex[:8]}"
    persons = await pool.fetchval("SELECT count(*) FROM empi_person")
    # No name: AE 101 at PID-5.
    ack = await send(client, msg("ADT^A04", "EVN|A04", f"PID|1||{his}^^^HIS^PI||||19800101|F"))
    assert ack.field("MSA", 1) == "AE" and ack.field("ERR", 3, component=1) == "101"
    assert ack.field("ERR", 2, component=3) == "5"
    # Bad birth date: AE 102 at PID-7.
    ack = await send(client, msg("ADT^A04", "EVN|A04", pid(his, "钱^多", dob="19801399")))
    assert ack.field("MSA", 1) == "AE" and ack.field("ERR", 3, component=1) == "102"
    # An order whose exam item is missing: the patient in its PID is NOT registered either (one transaction).
    bad = msg("ORM^O01", pid(his, "钱^多"), f"ORC|NW|{placer}", "OBR|1|||")
    ack = await send(client, bad)
    assert ack.field("MSA", 1) == "AE" and ack.field("ERR", 2, component=1) == "OBR"
    order_reply(ack, bad, "UA", placer, None)  # unable to accept: no filler number
    # Unsupported type: AR 200; not HL7 at all: AR.
    ack = await send(client, msg("QRY^Q01", "QRD|1"))
    assert ack.field("MSA", 1) == "AR" and ack.field("ERR", 3, component=1) == "200"
    assert ack.type[0] == "ACK"
    ack = await send(client, "hello, this is not HL7")
    assert ack.field("MSA", 1) == "AR"
    # Unsupported order control: AE naming ORC-1.
    ack = await send(client, msg("ORM^O01", pid(his, "钱^多"), f"ORC|RP|{placer}", "OBR|1|||CT-1^CT"))
    assert ack.field("MSA", 1) == "AE" and ack.field("ERR", 2, component=3) == "1"
    # ORR^O02 still, but no ORC: no response code answers an order control we do not take.
    assert ack.type == ("ORR", "O02", "ORR_O02") and ack.segment("ORC") is None
    assert await pool.fetchval("SELECT count(*) FROM empi_person") == persons
    assert await pool.fetchval("SELECT count(*) FROM empi_identifier WHERE value = $1", his) == 0


async def test_orm_cancel_and_discontinue_cancel_the_order_once(feed) -> None:
    client, pool = feed
    his = f"H{uuid.uuid4().hex[:8]}"
    for control in ("CA", "DC"):
        placer = f"ORD{uuid.uuid4().hex[:8]}"
        ack = await send(client, msg("ORM^O01", pid(his, "周^芷若", rid()), f"ORC|NW|{placer}",
                                     "OBR|1|||DX-CHEST^胸部正位" + "|" * 20 + "DX"))
        assert ack.field("MSA", 1) == "AA", ack.to_er7()
        accession = await pool.fetchval("SELECT accession_number FROM exam_order WHERE placer_order_number = $1",
                                        placer)
        reason = "||||||||||||||^患者拒绝检查"  # ORC-16 order control code reason
        request = msg("ORM^O01", pid(his, "周^芷若"), f"ORC|{control}|{placer}{reason}", "OBR|1|||DX-CHEST^胸部正位")
        ack = await send(client, request)
        assert ack.field("MSA", 1) == "AA" and "cancelled" in ack.field("MSA", 3), ack.to_er7()
        answer, status = {"CA": ("CR", "CA"), "DC": ("DR", "DC")}[control]
        order_reply(ack, request, answer, placer, accession)
        assert ack.field("ORC", 5) == status
        status = await pool.fetchval("SELECT status FROM exam_order WHERE placer_order_number = $1", placer)
        assert status == "cancelled"
        [cancelled] = await events(pool, "order.cancelled", accession)
        assert cancelled["data"]["reason"] == "患者拒绝检查"
        # Said again (a resend): acknowledged, announced once.
        again = msg("ORM^O01", pid(his, "周^芷若"), f"ORC|{control}|{placer}", "OBR|1|||DX-CHEST")
        ack = await send(client, again)
        assert ack.field("MSA", 1) == "AA" and "already cancelled" in ack.field("MSA", 3)
        order_reply(ack, again, answer, placer, accession)
        assert len(await events(pool, "order.cancelled", accession)) == 1
    # A cancel of an order nobody sent: AE naming ORC-2.
    unknown = msg("ORM^O01", pid(his, "周^芷若"), "ORC|CA|NOSUCH1", "OBR|1|||DX-CHEST")
    ack = await send(client, unknown)
    assert ack.field("MSA", 1) == "AE" and ack.field("ERR", 2, component=3) == "2"
    order_reply(ack, unknown, "UC", "NOSUCH1", None)
    unknown = msg("ORM^O01", pid(his, "周^芷若"), "ORC|DC|NOSUCH1", "OBR|1|||DX-CHEST")
    order_reply(await send(client, unknown), unknown, "UD", "NOSUCH1", None)


async def test_orm_xo_changes_the_order_and_announces_the_whole_order_once(feed) -> None:
    client, pool = feed
    his, other, placer = f"H{uuid.uuid4().hex[:8]}", f"H{uuid.uuid4().hex[:8]}", f"ORD{uuid.uuid4().hex[:8]}"
    obr = "OBR|1|||CT-CHEST^胸部CT平扫" + "|" * 20 + "CT"
    ack = await send(client, msg("ORM^O01", pid(his, "吴^桐", rid()), "PV1|1|O", f"ORC|NW|{placer}", obr))
    assert ack.field("MSA", 1) == "AA", ack.to_er7()
    accession = await pool.fetchval("SELECT accession_number FROM exam_order WHERE placer_order_number = $1", placer)
    [created] = await events(pool, "order.created", accession)
    # The HIS changes the item, the priority (TQ1-9 S), the wanted time (TQ1-7, +08:00) and the department.
    reason = "||||||||||||||^临床更改检查项目"
    change = msg("ORM^O01", pid(his, "吴^桐"), "PV1|1|O", f"ORC|XO|{placer}{reason}|^急诊科",
                 "TQ1|1||||||202612081430+0800||S", "OBR|1|||CT-HEAD^头颅CT平扫" + "|" * 20 + "CT")
    ack = await send(client, change)
    assert ack.field("MSA", 1) == "AA" and "changed" in ack.field("MSA", 3), ack.to_er7()
    order_reply(ack, change, "XR", placer, accession)
    row = await pool.fetchrow("SELECT * FROM exam_order WHERE placer_order_number = $1", placer)
    assert "CT-HEAD" in str(row["items"]) and "CT-CHEST" not in str(row["items"])
    assert row["priority"] == "stat" and row["ordering_department"] == "急诊科"
    assert row["requested_at"].isoformat() == "2026-12-08T06:30:00+00:00"
    [changed] = await events(pool, "order.changed", accession)
    data = changed["data"]
    assert data["version"] == created["data"]["version"] + 1
    assert [i["code"] for i in data["items"]] == ["CT-HEAD"] and data["reason"] == "临床更改检查项目"
    assert set(data["changed"]) >= {"items", "priority", "requested_at", "ordering_department"}
    assert data["patient"]["empi_id"] == row["empi_id"]  # a whole snapshot: the patient rides along
    # Said again: acknowledged, nothing announced.
    ack = await send(client, change)
    assert ack.field("MSA", 1) == "AA" and "unchanged" in ack.field("MSA", 3)
    assert len(await events(pool, "order.changed", accession)) == 1
    # An XO naming another known patient is refused: an order never moves to someone else this way.
    await send(client, msg("ADT^A04", "EVN|A04", pid(other, uname(), dob="19650303")))
    elsewhere = msg("ORM^O01", pid(other, "郑^爽"), f"ORC|XO|{placer}", obr)
    ack = await send(client, elsewhere)
    assert ack.field("MSA", 1) == "AE" and ack.field("ERR", 2, component=1) == "PID", ack.to_er7()
    order_reply(ack, elsewhere, "UX", placer, accession)  # unable to change the order we do have
    # Unknown order: AE naming ORC-2; a cancelled order cannot change.
    ack = await send(client, msg("ORM^O01", pid(his, "吴^桐"), "ORC|XO|NOSUCH2", obr))
    assert ack.field("MSA", 1) == "AE" and ack.field("ERR", 2, component=3) == "2"
    await send(client, msg("ORM^O01", pid(his, "吴^桐"), f"ORC|CA|{placer}", obr))
    late = msg("ORM^O01", pid(his, "吴^桐"), f"ORC|XO|{placer}", obr)
    ack = await send(client, late)
    assert ack.field("MSA", 1) == "AE" and "cancelled" in ack.field("ERR", 8), ack.to_er7()
    order_reply(ack, late, "UX", placer, accession)
    [cancelled] = await events(pool, "order.cancelled", accession)
    assert cancelled["data"]["version"] == data["version"] + 1


async def test_only_an_a08_renames_a_known_patient_other_messages_wait_for_the_desk(feed) -> None:
    client, pool = feed
    his, idn = f"H{uuid.uuid4().hex[:8]}", rid(born="19750607")
    tag = uname()[-3:]
    await send(client, msg("ADT^A04^ADT_A01", "EVN|A04", pid(his, f"张^子涵{tag}", idn, dob="19750607")))
    empi = await pool.fetchval("SELECT empi_id FROM empi_identifier WHERE type = 'his-patient-id' AND value = $1", his)
    # A re-registration (A04) or an order's PID with a homophone: acknowledged, nothing renamed, a pending change.
    ack = await send(client, msg("ADT^A04^ADT_A01", "EVN|A04", pid(his, f"张^子寒{tag}", idn, dob="19750607")))
    assert ack.field("MSA", 1) == "AA" and "waits for the desk" in ack.field("MSA", 3), ack.to_er7()
    assert await pool.fetchval("SELECT name FROM empi_person WHERE empi_id = $1", empi) == f"张子涵{tag}"
    assert await pool.fetchval("SELECT count(*) FROM empi_source_record WHERE empi_id = $1 AND status = 'pending'",
                               empi) == 1
    assert await events(pool, "patient.updated", empi) == []
    # The HIS's explicit update (A08) is the change itself.
    ack = await send(client, msg("ADT^A08^ADT_A01", "EVN|A08", pid(his, f"张^子寒{tag}", idn, dob="19750607")))
    assert ack.field("MSA", 1) == "AA", ack.to_er7()
    assert await pool.fetchval("SELECT name FROM empi_person WHERE empi_id = $1", empi) == f"张子寒{tag}"
    assert (await events(pool, "patient.updated", empi))[-1]["data"]["patient"]["name"] == f"张子寒{tag}"
