"""The MLLP ports know their peers and speak TLS (issue 18 items 1 and 2), over real MLLP/TCP and
MLLP/TLS against the registration service (HIS feed) and the critical-values service (clinicians'
acknowledgements, and its outbound notifications), each with known peers enforced and a TLS port
requiring client certificates. Distinct peers are distinct loopback addresses (127.0.0.x).

- a connection from an address no system is registered at is closed before anything is answered,
  and audited; a registered address speaking with another system's MSH-3 is answered AR (ERR names
  why), and audited; nothing is handled;
- on the ACK port, a clinician system closes only values whose notification went to it: another
  registered system acknowledging it gets AE, the same system claiming the other's MSH-3 gets AR;
- MLLP over TLS: served with a client certificate our CA signed, refused without one (audited);
- outbound: critical-values delivers its notification over TLS to a destination listed in
  IMAGING_MLLP_CLIENT_TLS_DESTINATIONS, checking the destination's certificate, presenting its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from critical_values.domain import recipients
from critical_values.settings import Settings as CriticalSettings
from imaging_common.hl7 import Message
from imaging_common.hl7.mllp import MLLPServer, frame, read_frame
from imaging_common.service import create_service_app
from imaging_common.tls import client_context, server_context
from imaging_testing import eventually, free_port, http_server
from imaging_testing.auth import issue_test_token
from registration.settings import Settings as RegistrationSettings

from security.certs import Certificates, make_certificates
from security.unavailable import connect

REG, CV = "/api/registration", "/api/critical-values"


@dataclass
class Running:
    url: str
    settings: Any
    ctx: Any

    @property
    def port(self) -> int:
        return int(self.ctx.extras["mllp_port"])

    @property
    def tls_port(self) -> int:
        return int(self.ctx.extras["mllp_tls_port"])

    def headers(self, *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_test_token(self.settings, roles=roles or ('admin',))}"}

    async def register(self, prefix: str, kind: str, application: str, addresses: list[str],
                       facility: str | None = None) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as api:
            r = await api.put(f"{prefix}/admin/peers/{application.lower()}", headers=self.headers("it-ops"), json={
                "kind": kind, "name": application, "hl7_application": application, "hl7_facility": facility,
                "addresses": addresses})
        assert r.status_code == 200, r.text


@dataclass
class World:
    certs: Certificates
    registration: Running
    critical: Running
    his_out: MLLPServer  # a clinician system receiving our notifications over TLS
    received: list[bytes]
    database_url: str

    async def audit_rows(self, actor: str) -> list[dict[str, Any]]:
        conn = await connect(self.database_url)
        try:
            rows = await conn.fetch("SELECT * FROM audit.audit_log WHERE actor = $1 AND entity = 'peer' ORDER BY seq",
                                    actor)
        finally:
            await conn.close()
        out = []
        for row in rows:
            item = dict(row)
            if isinstance(item["detail"], str):
                item["detail"] = json.loads(item["detail"])
            out.append(item)
        return out


async def _reply_aa(payload: bytes, peer: tuple[str, int]) -> bytes:
    text = payload.decode("utf-8")
    control = Message.parse(text).control_id
    return (f"MSH|^~\\&|WARDSYS|WARD|IMAGING-CV|RIS|20240101120000||ACK^R01^ACK|R{control}|P|2.5\r"
            f"MSA|AA|{control}\r").encode()


@pytest.fixture(scope="module")
async def world(settings_for: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    certs = make_certificates(tmp_path_factory.mktemp("mllp-tls"))
    tls = {"mllp_tls_cert_file": certs.server.cert, "mllp_tls_key_file": certs.server.key,
           "mllp_tls_ca_file": certs.ca}
    received: list[bytes] = []

    async def clinician_system(payload: bytes, peer: tuple[str, int]) -> bytes:
        received.append(payload)
        return await _reply_aa(payload, peer)

    # The clinician system our notifications go to: MLLP over TLS only, requiring our client certificate.
    his_context = server_context(certs.server.cert, certs.server.key, ca_file=certs.ca, require_client_cert=True)
    async with contextlib.AsyncExitStack() as stack:
        his_out = await stack.enter_async_context(MLLPServer(clinician_system, "127.0.0.1", 0, ssl=his_context))
        registration_settings = settings_for(RegistrationSettings, mllp_enabled=True, mllp_host="127.0.0.1",
                                             mllp_port=free_port(), mllp_tls_port=free_port(),
                                             mllp_peers="enforce", db_pool_max=3, **tls)
        critical_settings = settings_for(
            CriticalSettings, critical_mllp_host="127.0.0.1", critical_mllp_port=free_port(),
            critical_mllp_tls_port=free_port(), critical_mllp_peers="enforce", critical_retry_seconds=0.5,
            db_pool_max=4, critical_delivery_workers=1,
            mllp_client_tls_destinations=f"localhost:{his_out.port}", mllp_client_tls_ca_file=certs.ca,
            mllp_client_tls_cert_file=certs.client.cert, mllp_client_tls_key_file=certs.client.key, **tls)
        from critical_values.app import SERVICE as CRITICAL
        from registration.app import SERVICE as REGISTRATION

        running = {}
        for name, spec, settings in (("registration", REGISTRATION, registration_settings),
                                     ("critical", CRITICAL, critical_settings)):
            app = create_service_app(spec, settings)
            url = await stack.enter_async_context(http_server(app))
            running[name] = Running(url, settings, app.state.ctx)
        yield World(certs, running["registration"], running["critical"], his_out, received,
                    registration_settings.database_url)


async def _exchange(port: int, text: str, *, source: str = "127.0.0.1",
                    context: ssl.SSLContext | None = None) -> bytes | None:
    """Send one framed message from `source` (a loopback address); the reply, or None when the peer
    closed the connection without one."""
    tls: dict[str, Any] = {} if context is None else {"ssl": context, "server_hostname": "localhost"}
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0), **tls), 10)
    try:
        writer.write(frame(text.encode("utf-8")))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        try:
            return await asyncio.wait_for(read_frame(reader), 10)
        except (ConnectionError, ssl.SSLError):
            return None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _adt(sender: str, facility: str = "HOSP") -> str:
    control = uuid.uuid4().hex[:12]
    return (f"MSH|^~\\&|{sender}|{facility}|RIS|IMG|20240601083000||ADT^A04^ADT_A01|{control}|P|2.5||||||"
            f"UNICODE UTF-8\rEVN|A04\rPID|1||H{control}^^^HIS^PI||测试^一||19800101|F\r")


def _ack(sender: str, ref: str) -> str:
    return (f"MSH|^~\\&|{sender}|WARD|IMAGING-CV|RIS|20240101120000||ACK^R01^ACK|T{uuid.uuid4().hex[:8]}|P|2.5|||||"
            f"UNICODE UTF-8\rMSA|AA|{ref}\rEVN||||||\r")


def _parsed(reply: bytes | None) -> Message:
    assert reply is not None, "the connection was closed without a reply"
    return Message.parse(reply.decode("utf-8"))


async def _eventually_rows(world: World, actor: str) -> list[dict[str, Any]]:
    check: Callable[[], Awaitable[list[dict[str, Any]]]] = lambda: world.audit_rows(actor)  # noqa: E731
    return await eventually(check, f"audit rows of {actor}")


# -- the HIS feed (registration) -----------------------------------------------------------------


async def test_feed_closes_a_connection_from_an_unknown_address_and_audits_it(world: World) -> None:
    reply = await _exchange(world.registration.port, _adt("HIS"), source="127.0.0.31")
    assert reply is None
    rows = await _eventually_rows(world, "mllp:127.0.0.31")
    assert rows[-1]["outcome"] == "failure" and rows[-1]["source_ip"] == "127.0.0.31"
    assert rows[-1]["detail"]["refused"] is True and rows[-1]["detail"]["port"] == "registration-mllp"


async def test_feed_answers_ar_to_a_known_address_speaking_for_another_system(world: World) -> None:
    await world.registration.register(REG, "his", "HISA", ["127.0.0.32"])
    ok = _parsed(await _exchange(world.registration.port, _adt("HISA"), source="127.0.0.32"))
    assert "not registered" not in ok.field("ERR", 8) and "not registered" not in ok.field("MSA", 3)
    spoof = _parsed(await _exchange(world.registration.port, _adt("LAB"), source="127.0.0.32"))
    assert spoof.field("MSA", 1) == "AR"
    assert "LAB^HOSP is not registered at address 127.0.0.32" in spoof.field("ERR", 8), spoof.to_er7()
    rows = await _eventually_rows(world, "hl7:LAB^HOSP")
    assert rows[-1]["outcome"] == "failure" and rows[-1]["detail"]["stage"] == "message"


async def test_feed_over_tls_with_and_without_a_client_certificate(world: World) -> None:
    await world.registration.register(REG, "his", "HISTLS", ["127.0.0.33"])
    certs = world.certs
    mutual = client_context(ca_file=certs.ca, cert_file=certs.client.cert, key_file=certs.client.key)
    reply = _parsed(await _exchange(world.registration.tls_port, _adt("HISTLS"), source="127.0.0.33",
                                    context=mutual))
    assert reply.field("MSA", 2) and "not registered" not in reply.field("ERR", 8)
    bare = client_context(ca_file=certs.ca)
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        assert await _exchange(world.registration.tls_port, _adt("HISTLS"), source="127.0.0.33", context=bare) \
            is None
    rows = await _eventually_rows(world, "tls:127.0.0.33")
    assert rows[-1]["outcome"] == "failure" and "TLS handshake failed" in rows[-1]["detail"]["reason"]
    # The TLS port knows its peers too: an unknown address with a good certificate is closed.
    assert await _exchange(world.registration.tls_port, _adt("HISTLS"), source="127.0.0.34",
                           context=mutual) is None


# -- the critical-value ACK port -----------------------------------------------------------------


class Ward:
    def __init__(self, critical: Running) -> None:
        self.critical = critical
        self.uid = uuid.uuid4().hex[:8]
        self.department = f"ICU-{self.uid}"

    async def receiver(self, receiver_id: str, hl7_host: str, hl7_port: int, department: str | None = None) -> None:
        async with httpx.AsyncClient(base_url=self.critical.url, timeout=30) as api:
            r = await api.put(f"{CV}/receivers/{receiver_id}", headers=self.critical.headers("admin"), json={
                "name": receiver_id, "department": department or self.department, "hl7_host": hl7_host,
                "hl7_port": hl7_port})
        assert r.status_code == 200, r.text

    async def raise_value(self) -> tuple[str, str]:
        accession = f"SEC{self.uid}{uuid.uuid4().hex[:5]}"
        async with self.critical.ctx.pool.acquire() as conn:
            await recipients.remember_order(
                conn, accession_number=accession, order_id=f"O-{accession}",
                patient={"patient_id": f"P{self.uid}", "name": "张三"}, patient_class="E",
                ordering_doctor_id="D001", ordering_doctor="李医生", ordering_department=self.department,
                ward=None, modality="CT")
        async with httpx.AsyncClient(base_url=self.critical.url, timeout=30) as api:
            r = await api.post(f"{CV}/critical-values", headers=self.critical.headers("radiologist"),
                               json={"accession_number": accession, "finding": "张力性气胸"})
            assert r.status_code == 201, r.text
            critical_id = r.json()["critical_id"]
            value = (await api.get(f"{CV}/critical-values/{critical_id}",
                                   headers=self.critical.headers("radiologist"))).json()
        note = next(n["notification_id"] for n in value["notifications"] if n["channel"] == "hl7")
        return critical_id, note

    async def state(self, critical_id: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.critical.url, timeout=30) as api:
            r = await api.get(f"{CV}/critical-values/{critical_id}", headers=self.critical.headers("radiologist"))
        assert r.status_code == 200, r.text
        return dict(r.json())


async def test_an_ack_is_accepted_only_from_the_receiver_its_notification_went_to(world: World) -> None:
    critical = world.critical
    ward = Ward(critical)
    a, b = f"WARDA{ward.uid}".upper(), f"WARDB{ward.uid}".upper()
    await ward.receiver(a, "127.0.0.1", free_port())  # its own endpoint is a closed port: only ACKs matter here
    await ward.receiver(b, "127.0.0.1", free_port(), department=f"other-{ward.uid}")  # another ward's system
    await critical.register(CV, "clinician-system", a, ["127.0.0.41"])
    await critical.register(CV, "clinician-system", b, ["127.0.0.42"])
    critical_id, note = await ward.raise_value()

    # Another registered system acknowledging A's notification: not its notification (AE 204).
    other = _parsed(await _exchange(critical.port, _ack(b, note), source="127.0.0.42"))
    assert other.field("MSA", 1) == "AE" and other.field("ERR", 3, component=1) == "204", other.to_er7()
    # The same system claiming to be A: AR, audited, nothing closed.
    spoof = _parsed(await _exchange(critical.port, _ack(a, note), source="127.0.0.42"))
    assert spoof.field("MSA", 1) == "AR" and "not registered at address 127.0.0.42" in spoof.field("ERR", 8)
    assert (await _eventually_rows(world, f"hl7:{a}^WARD"))[-1]["outcome"] == "failure"
    # An address nobody registered: the connection is closed, audited, nothing closed.
    assert await _exchange(critical.port, _ack(a, note), source="127.0.0.43") is None
    assert (await _eventually_rows(world, "mllp:127.0.0.43"))[-1]["detail"]["port"] == "critical-values-mllp"
    assert (await ward.state(critical_id))["acknowledged_at"] is None

    # A, from its own address: acknowledged.
    mine = _parsed(await _exchange(critical.port, _ack(a, note), source="127.0.0.41"))
    assert mine.field("MSA", 1) == "AA", mine.to_er7()
    assert (await ward.state(critical_id))["acknowledged_at"] is not None


async def test_an_ack_over_tls_needs_a_client_certificate(world: World) -> None:
    critical = world.critical
    ward = Ward(critical)
    a = f"WARDT{ward.uid}".upper()
    await ward.receiver(a, "127.0.0.1", free_port())
    await critical.register(CV, "clinician-system", a, ["127.0.0.44"])
    critical_id, note = await ward.raise_value()
    certs = world.certs
    bare = client_context(ca_file=certs.ca)
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        assert await _exchange(critical.tls_port, _ack(a, note), source="127.0.0.44", context=bare) is None
    assert (await ward.state(critical_id))["acknowledged_at"] is None
    mutual = client_context(ca_file=certs.ca, cert_file=certs.client.cert, key_file=certs.client.key)
    reply = _parsed(await _exchange(critical.tls_port, _ack(a, note), source="127.0.0.44", context=mutual))
    assert reply.field("MSA", 1) == "AA", reply.to_er7()
    assert (await ward.state(critical_id))["acknowledged_at"] is not None


# -- outbound MLLP over TLS ----------------------------------------------------------------------


async def test_notifications_go_out_over_tls_to_listed_destinations(world: World) -> None:
    ward = Ward(world.critical)
    receiver = f"WARDO{ward.uid}".upper()
    await ward.receiver(receiver, "localhost", world.his_out.port)  # listed: TLS, certificate checked
    critical_id, note = await ward.raise_value()

    async def delivered() -> bool:
        return any(note.encode() in m for m in world.received)

    await eventually(delivered, "the ORU over TLS at the clinician system")

    async def marked() -> bool:
        value = await ward.state(critical_id)
        return any(n["notification_id"] == note and n["status"] == "accepted" for n in value["notifications"])

    await eventually(marked, "the notification marked delivered")
