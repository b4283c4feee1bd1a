"""MLLP output escapes what it takes from data (issue 18, 8): a value holding MLLP's <VT> (0x0B) or
<FS> (0x1C), HL7 delimiters or a line break — from the HIS's own (escaped) message, or typed into a
finding — goes out as \\X0B\\, \\X1C\\, \\F\\ \\S\\ \\R\\ \\E\\ \\T\\, \\.br\\: the peer reads one
frame, one message, and the value as it was, never a forged segment or a second message."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from critical_values.domain import recipients
from imaging_common.hl7 import Message
from imaging_common.hl7.ack import build_ack
from imaging_common.hl7.mllp import MLLPServer, frame
from imaging_testing import eventually, free_port

from security.conftest import Sandbox
from security.unavailable import Resending

CV = "/api/critical-values"
# What an attacker would like to smuggle: an end of frame, a start of frame, a forged segment and message.
NASTY = "气胸\x1c\r\x0bMSH|^~\\&|EVIL|X|||||ACK|1|P|2.5\rOBX|9|ST|x^y&z~w"


async def _exchange(port: int, payload: bytes) -> bytes:
    """Send one frame and read everything the peer answers within a moment (all frames, raw)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame(payload))
        await writer.drain()
        data = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 20)
        try:  # anything after the first frame would be a second, forged message
            data += await asyncio.wait_for(reader.read(65536), 1.0)
        except TimeoutError:
            pass
        return data
    finally:
        writer.close()


async def test_replies_to_the_his_escape_what_they_echo(sandbox: Sandbox) -> None:
    port = int(sandbox.apps["registration"].state.ctx.extras["mllp_port"])
    placer = f"ORD{uuid.uuid4().hex[:8]}"
    # The HIS escapes its values correctly; we unescape them on reading and must escape them again.
    item_name = "胸部CT\\X0B\\平扫\\X1C\\\\F\\MSH\\S\\x\\R\\y\\E\\\\T\\"
    message = "\r".join([
        f"MSH|^~\\&|HIS|HOSP|RIS|IMG|20240601083000||ORM^O01^ORM_O01|{uuid.uuid4().hex[:12]}|P|2.5||||||UNICODE UTF-8",
        f"PID|1||H{uuid.uuid4().hex[:8]}^^^HIS^PI||测试^患者||19800101|F",
        "PV1|1|O", f"ORC|NW|{placer}", f"OBR|1|||CT-CHEST^{item_name}" + "|" * 20 + "CT"]) + "\r"
    raw = await _exchange(port, message.encode())
    assert raw.startswith(b"\x0b") and raw.endswith(b"\x1c\r") and raw.count(b"\x1c") == 1, raw
    assert raw.count(b"\x0b") == 1, raw
    reply = Message.parse(raw[1:-2].decode())
    assert reply.field("MSA", 2) == message.split("|")[9]
    assert [s.id for s in reply.segments].count("MSH") == 1
    # The item the reply echoes reads back as the HIS meant it.
    assert reply.field("OBR", 4, component=2) == "胸部CT\x0b平扫\x1c|MSH^x~y\\&"


async def test_critical_value_notification_escapes_the_finding(sandbox: Sandbox) -> None:
    received: list[bytes] = []

    async def clinician_system(payload: bytes, peer: tuple[str, int]) -> bytes:
        received.append(payload)
        return build_ack(Message.parse(payload.decode()), "AA", sending_app="HIS").to_er7().encode()

    uid = uuid.uuid4().hex[:8]
    department, receiver, port = f"ESC-{uid}", f"esc-{uid}", free_port()
    async with MLLPServer(clinician_system, "127.0.0.1", port), httpx.AsyncClient(
            base_url=sandbox.url, timeout=30, transport=Resending()) as api:
        r = await api.put(f"{CV}/receivers/{receiver}", headers=sandbox.headers("admin"), json={
            "name": "HIS", "department": department, "hl7_host": "127.0.0.1", "hl7_port": port})
        assert r.status_code == 200, r.text
        accession = f"ESC{uid}"
        async with sandbox.apps["critical_values"].state.ctx.pool.acquire() as conn:
            await recipients.remember_order(
                conn, accession_number=accession, order_id=f"O-{accession}",
                patient={"patient_id": f"P{uid}", "name": "张^三\x0b丰"}, patient_class="E",
                ordering_doctor_id="D001", ordering_doctor="李\x1c医生", ordering_department=department,
                ward=None, modality="CT")
        r = await api.post(f"{CV}/critical-values", headers=sandbox.headers("radiologist"), json={
            "accession_number": accession, "finding": NASTY})
        assert r.status_code == 201, r.text

        await eventually(lambda: received, "the notification reaching the clinician system")
    [payload] = received[:1]
    assert b"\x0b" not in payload and b"\x1c" not in payload, payload
    message = Message.parse(payload.decode())
    assert [s.id for s in message.segments].count("MSH") == 1 and len(message.all("OBX")) == 1
    assert message.field("OBX", 3, component=2) == NASTY.replace("\r", "\n")  # a line break stays one
    assert message.field("PV1", 7, component=2) == "李\x1c医生"
