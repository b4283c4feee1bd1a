"""Where the platform sends things (issue 18, 8): receivers and webhooks must be on the outbound
allow-list — cloud metadata, link-local, loopback and private addresses are refused unless listed —,
checked again against the resolved address at every call (DNS rebinding); each FHIR receiver gets its
own credential, never one token sent everywhere; and no database transaction stays open while a
receiver is called. Over HTTP against the sandbox platform and real HTTP peers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from critical_values.domain import recipients
from fastapi import FastAPI, Request
from imaging_common.outbound import AllowList, DestinationRefused, guarded_client
from imaging_testing import eventually, http_server

from security.conftest import Sandbox
from security.unavailable import Resending

CV, REP, Q = "/api/critical-values", "/api/reporting", "/api/queue"
REFUSED_URLS = ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x", "http://100.100.100.200/",
                "http://metadata.google.internal/computeMetadata/v1/", "http://evil.example.com/fhir",
                "http://0.0.0.0:8080/", "ftp://127.0.0.1/x", "http://user:pw@127.0.0.1/x"]


async def test_receivers_and_webhooks_must_be_allowed(sandbox: Sandbox) -> None:
    admin = sandbox.headers("admin")
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=30, transport=Resending()) as api:
        for url in REFUSED_URLS:
            r = await api.put(f"{CV}/receivers/out-{uuid.uuid4().hex[:6]}", headers=admin, json={
                "name": "x", "fhir_base_url": url})
            assert r.status_code == 422, (url, r.text)
            r = await api.put(f"{REP}/receivers/out-{uuid.uuid4().hex[:6]}", headers=sandbox.headers("it-ops", "admin"),
                              json={"kind": "fhir", "name": "x", "url": url})
            assert r.status_code == 422, (url, r.text)
        for host in ("169.254.169.254", "fe80::1", "his.elsewhere.example"):
            r = await api.put(f"{CV}/receivers/out-{uuid.uuid4().hex[:6]}", headers=admin, json={
                "name": "x", "hl7_host": host, "hl7_port": 2575})
            assert r.status_code == 422, (host, r.text)
            r = await api.put(f"{REP}/receivers/out-{uuid.uuid4().hex[:6]}", headers=sandbox.headers("it-ops", "admin"),
                              json={"kind": "hl7", "name": "x", "host": host, "port": 2575})
            assert r.status_code == 422, (host, r.text)
        # A patient's notification webhook from the check-in terminal, likewise.
        r = await api.post(f"{Q}/check-ins", headers=sandbox.headers("nurse", "clerk"), json={
            "kind": "barcode", "value": "NOSUCH", "notify": [{"channel": "webhook",
                                                             "target": "http://169.254.169.254/latest/"}]})
        assert r.status_code == 422, r.text
        # The development default lists loopback and the private networks: a local receiver is accepted.
        r = await api.put(f"{CV}/receivers/out-{uuid.uuid4().hex[:6]}", headers=admin, json={
            "name": "x", "fhir_base_url": "http://127.0.0.1:9/fhir", "active": False})
        assert r.status_code == 200, r.text


async def test_call_time_check_follows_the_resolved_address() -> None:
    """A name on the list that resolves to an address not on it (DNS rebinding, or a name pointed at
    the metadata service) is refused when called, before any connection; the list's production form."""
    hits: list[str] = []
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        hits.append("ping")
        return {"ok": "yes"}

    async with http_server(app) as url:
        port = url.rsplit(":", 1)[1]
        # "localhost" is listed by name, but its address 127.0.0.1 is not: refused at call time.
        by_name = AllowList.parse("localhost")
        async with guarded_client(by_name, timeout=5) as client:
            with pytest.raises(httpx.ConnectError, match="destination refused"):
                await client.get(f"http://localhost:{port}/ping")
        assert hits == []
        # Listing the network lets it through, to the checked address, with the Host header kept.
        async with guarded_client(AllowList.parse("localhost,127.0.0.0/8"), timeout=5) as client:
            r = await client.get(f"http://localhost:{port}/ping")
            assert r.status_code == 200 and hits == ["ping"]
        # Production with nothing configured sends nowhere.
        with pytest.raises(DestinationRefused):
            AllowList.from_settings(type("S", (), {"env": "production", "outbound_allow": None})()).check_url(url)
        # Metadata addresses stay refused even when a network holding them is listed.
        with pytest.raises(DestinationRefused, match="metadata"):
            AllowList.parse("169.254.0.0/16").check_host("169.254.169.254")
        assert AllowList.parse("10.0.0.0/8").check_addresses("his", ["10.1.2.3"]) == "10.1.2.3"
        with pytest.raises(DestinationRefused):  # one bad address among several is enough to refuse
            AllowList.parse("10.0.0.0/8").check_addresses("his", ["10.1.2.3", "169.254.169.254"])


class FhirPeer:
    """A clinician system's FHIR endpoint that records who called it and can hold its answer."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.app = FastAPI()

        @self.app.post("/fhir/{kind}")
        async def create(kind: str, request: Request) -> dict[str, Any]:
            self.calls.append({"kind": kind, "authorization": request.headers.get("authorization")})
            await self.release.wait()
            return {"resourceType": kind, "id": uuid.uuid4().hex}


async def test_per_receiver_credentials_and_no_transaction_during_a_call(sandbox: Sandbox) -> None:
    engine = sandbox.apps["critical_values"].state.ctx.extras["engine"]
    uid = uuid.uuid4().hex[:8]
    a, b = FhirPeer(), FhirPeer()
    engine.tokens.update({f"a-{uid}": f"token-a-{uid}", f"b-{uid}": f"token-b-{uid}"})
    pool = sandbox.apps["critical_values"].state.ctx.pool
    try:
        async with http_server(a.app) as url_a, http_server(b.app) as url_b, httpx.AsyncClient(
                base_url=sandbox.url, timeout=30, transport=Resending()) as api:
            for peer, url in (("a", url_a), ("b", url_b)):
                r = await api.put(f"{CV}/receivers/{peer}-{uid}", headers=sandbox.headers("admin"), json={
                    "name": peer, "department": f"OUT-{peer}-{uid}", "fhir_base_url": f"{url}/fhir"})
                assert r.status_code == 200, r.text
            b.release.clear()  # b answers only when told: the send is in flight meanwhile
            for peer in ("a", "b"):
                accession = f"OUT{peer}{uid}"
                async with pool.acquire() as conn:
                    await recipients.remember_order(
                        conn, accession_number=accession, order_id=f"O-{accession}",
                        patient={"patient_id": f"P{uid}", "name": "张三"}, patient_class="E",
                        ordering_doctor_id="D1", ordering_doctor="李医生", ordering_department=f"OUT-{peer}-{uid}",
                        ward=None, modality="CT")
                r = await api.post(f"{CV}/critical-values", headers=sandbox.headers("radiologist"), json={
                    "accession_number": accession, "finding": "张力性气胸"})
                assert r.status_code == 201, r.text
            await eventually(lambda: a.calls and b.calls, "both receivers called")
            # While b's call hangs, its notification row is not locked by an open transaction.
            async with pool.acquire() as conn, conn.transaction():
                note = await conn.fetchrow(
                    "SELECT notification_id FROM notification WHERE receiver_id = $1 AND status = 'pending' "
                    "FOR UPDATE NOWAIT", f"b-{uid}")
                assert note is not None
                idle = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'idle in transaction' AND query ILIKE '%notification%FOR UPDATE%SKIP LOCKED%'")
                assert idle == 0
            b.release.set()
            await eventually(lambda: len(b.calls) >= 1, "b answered")
    except asyncpg.LockNotAvailableError:
        pytest.fail("the notification row stayed locked while its receiver was being called")
    finally:
        b.release.set()
    # Each receiver got its own token and only its own.
    assert {c["authorization"] for c in a.calls} == {f"Bearer token-a-{uid}"}
    assert {c["authorization"] for c in b.calls} == {f"Bearer token-b-{uid}"}
