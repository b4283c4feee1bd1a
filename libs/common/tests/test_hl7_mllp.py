"""HL7 v2 parsing, escaping, MSH-18 charsets, ACK/ERR, and MLLP framing over real TCP."""

from __future__ import annotations

import asyncio

import pytest
from imaging_common.hl7 import HL7Error, Message, MessageService, build_segment
from imaging_common.hl7 import ack as acks
from imaging_common.hl7.charset import decode, msh18_of
from imaging_common.hl7.message import Encoding, HL7ParseError
from imaging_common.hl7.mllp import END, START, MLLPClient, MLLPServer
from imaging_testing import free_port

ADT = ("MSH|^~\\&|HIS|HOSP|RIS|IMG|20240101120000||ADT^A04^ADT_A01|MSG001|P|2.5||||||{charset}\r"
       "EVN|A04|20240101120000\r"
       "PID|1||H123^^^HIS^PI~110105194912310020^^^CHN^NNCHN||张三^^^^^^L||19491231|M|||朝阳区\\T\\建国路88号^^北京^^100020"
       "||13812345678\r")


def test_parse_fields_components_repetitions_and_escapes() -> None:
    msg = Message.parse(ADT.format(charset="UNICODE UTF-8"))
    assert msg.type == ("ADT", "A04", "ADT_A01") and msg.control_id == "MSG001"
    assert msg.field("PID", 5, component=1) == "张三"
    assert msg.repetitions("PID", 3)[1][:5] == ["110105194912310020", "", "", "CHN", "NNCHN"]
    assert msg.field("PID", 11, component=1) == "朝阳区&建国路88号"
    assert msg.field("MSH", 1) == "|" and msg.field("MSH", 2) == "^~\\&"
    assert msg.charset == "UNICODE UTF-8"


def test_escape_round_trip() -> None:
    enc = Encoding()
    text = "a|b^c~d\\e&f\nline"
    assert enc.unescape(enc.escape_text(text)) == text
    seg = build_segment("NTE", "1", None, text)
    assert Message.parse("MSH|^~\\&|A|B|C|D|1||ADT^A08|X|P|2.5\r" + "|".join(seg.fields)).field("NTE", 3) == text


@pytest.mark.parametrize("bad", ["", "PID|1", "MSH|^~\\&|A|B|C|D|1||||P|2.5", "MSH|^~\\&|A|B|C|D|1||ADT^A01||P|2.5",
                                 "MSH|^~\\&|A|B|C|D|1||ADT^A01|X|P|2.5\rpid|bad"])
def test_malformed_messages_raise(bad: str) -> None:
    with pytest.raises(HL7ParseError):
        Message.parse(bad)


def test_charsets_utf8_gb18030_and_unlabelled_gb() -> None:
    utf8 = ADT.format(charset="UNICODE UTF-8").encode("utf-8")
    gb = ADT.format(charset="GB 18030-2000").encode("gb18030")
    unlabelled_gb = ADT.format(charset="").encode("gb18030")
    assert msh18_of(gb) == "GB 18030-2000"
    for raw, codec in ((utf8, "utf-8"), (gb, "gb18030"), (unlabelled_gb, "gb18030")):
        text, used = decode(raw)
        assert used == codec and "张三" in text


def test_ack_with_err_segment() -> None:
    msg = Message.parse(ADT.format(charset=""))
    err = HL7Error(acks.REQUIRED_FIELD_MISSING, "PID-5 patient name is required", "PID", 1, 5)
    reply = Message.parse(acks.build_ack(msg, "AE", error=err).to_er7())
    assert reply.type[0] == "ACK" and reply.field("MSA", 1) == "AE" and reply.field("MSA", 2) == "MSG001"
    assert reply.field("ERR", 2, component=1) == "PID" and reply.field("ERR", 2, component=3) == "5"
    assert reply.field("ERR", 3, component=1) == "101" and reply.field("ERR", 8) == "PID-5 patient name is required"


async def test_mllp_round_trip_over_tcp_with_charset_and_errors() -> None:
    seen: list[str] = []

    async def handle(msg: Message) -> str | None:
        if msg.type[0] != "ADT":
            raise HL7Error(acks.UNSUPPORTED_MESSAGE_TYPE, f"{msg.type[0]} not accepted", "MSH", 1, 9, reject=True)
        seen.append(msg.field("PID", 5, component=1))
        return "ok"

    port = free_port()
    async with MLLPServer(MessageService(handle), "127.0.0.1", port), MLLPClient("127.0.0.1", port) as client:
        reply = await client.send(ADT.format(charset="GB 18030-2000").encode("gb18030"))
        assert b"MSA|AA|MSG001" in reply and "GB 18030-2000" in reply.decode("gb18030")
        reply = await client.send(ADT.format(charset="").replace("ADT^A04^ADT_A01", "QRY^Q01"))
        assert b"MSA|AR|MSG001" in reply and b"|200^" in reply
        reply = await client.send(b"this is not HL7")
        assert b"MSA|AR|" in reply and b"ERR|" in reply
        reply = await client.send(ADT.format(charset="KOI8-R").encode())
        assert b"MSA|AR" in reply and b"103" in reply
        assert seen == ["张三"]
        # Two frames in one TCP write: both answered, in order.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        one = ADT.format(charset="").replace("MSG001", "M1").encode()
        two = ADT.format(charset="").replace("MSG001", "M2").encode()
        writer.write(START + one + END + START + two + END)
        await writer.drain()
        data = b""
        while data.count(END) < 2:
            data += await asyncio.wait_for(reader.read(65536), 5)
        assert data.index(b"MSA|AA|M1") < data.index(b"MSA|AA|M2")
        writer.close()
        # A frame that never ends is not accepted; the server keeps serving others.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"garbage before a frame")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed by the server
        writer.close()
        reply = await client.send(ADT.format(charset=""))
        assert b"MSA|AA" in reply


async def test_a_late_ack_goes_to_its_own_message_not_the_next() -> None:
    """An ACK slower than the client's timeout is matched to its message by MSA-2 (and handed to
    on_late_reply); the next message on the same connection reads its own ACK, sent once."""
    received: list[str] = []
    slow = {"M1": 0.7, "M4": 0.7}

    async def handle(msg: Message) -> str | None:
        received.append(msg.control_id)
        if received.count(msg.control_id) == 1:
            await asyncio.sleep(slow.get(msg.control_id, 0))
        return None

    late: list[str] = []

    async def on_late(reply: bytes) -> None:
        late.append(Message.parse(reply.decode()).field("MSA", 2))

    port = free_port()
    message = ADT.format(charset="")
    async with MLLPServer(MessageService(handle), "127.0.0.1", port), \
            MLLPClient("127.0.0.1", port, timeout=0.5, on_late_reply=on_late) as client:
        with pytest.raises(TimeoutError):
            await client.send(message.replace("MSG001", "M1"))
        reply = await client.send(message.replace("MSG001", "M2"))
        assert b"MSA|AA|M2" in reply
        assert late == ["M1"] and client.late_replies == 1
        reply = await client.send(message.replace("MSG001", "M3"))
        assert b"MSA|AA|M3" in reply
        # The same message sent again after a timeout: the first answer serves it, the duplicate's
        # answer is late and does not reach M5.
        with pytest.raises(TimeoutError):
            await client.send(message.replace("MSG001", "M4"))
        assert b"MSA|AA|M4" in await client.send(message.replace("MSG001", "M4"))
        assert b"MSA|AA|M5" in await client.send(message.replace("MSG001", "M5"))
        assert late == ["M1", "M4"]
    assert received == ["M1", "M2", "M3", "M4", "M4", "M5"]


@pytest.mark.parametrize("version", ["2.3.1", "2.4", "2.5", "2.6"])
def test_acks_pass_hl7apy_strict_validation(version: str) -> None:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    msg = Message.parse(f"MSH|^~\\&|HIS|HOSP|RIS|IMG|20240101120000||ADT^A04^ADT_A01|MSG001|P|{version}\rPID|1||X")
    for code, err in (("AA", None), ("AE", HL7Error(acks.REQUIRED_FIELD_MISSING, "PID-5 is required", "PID", 1, 5))):
        er7 = acks.build_ack(msg, code, error=err).to_er7()
        parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=False).validate()
        assert Message.parse(er7).field("ERR", 1, component=4) == (err.code if err else "")
