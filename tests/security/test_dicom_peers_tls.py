"""The worklist's DICOM ports know their peers and speak TLS (issue 18 items 1 and 2), through the real
protocol: DCMTK's echoscu/findscu and pynetdicom against the worklist service as it runs (its plain
port and its DICOM TLS port, mutual TLS required, known peers enforced), its admin API for the
registry, and the audit log.

- an unknown calling AE title, or a known one from an address it is not registered at, or without
  its registered certificate, is refused with A-ASSOCIATE-RJ 1/1/3 and audited;
- TLS (BCP 195): DCMTK and Python clients with a certificate signed by the CA are served; a client
  without a certificate, with one signed by another CA, or offering only TLS 1.1 fails the handshake
  (audited);
- audit-only lets an unknown AE in, audited; off checks nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from imaging_common.peers import PeerRegistry
from imaging_common.tls import client_context
from imaging_testing import eventually, free_port
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind, Verification  # type: ignore[attr-defined]
from worklist.adapters.dicom.scp import WorklistSCP
from worklist.app import SERVICE
from worklist.settings import Settings

from security.certs import Certificates
from security.dicom_ports import DicomPorts, serving
from security.unavailable import connect

ECHOSCU, FINDSCU = "/usr/bin/echoscu", "/usr/bin/findscu"  # DCMTK's (pynetdicom ships others on PATH)
API = "/api/worklist/admin/peers"


Worklist = DicomPorts


@pytest.fixture(scope="module")
async def worklist(settings_for: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Worklist]:
    folder = tmp_path_factory.mktemp("dicom-tls")
    async with serving(SERVICE, Settings, settings_for, folder, ports="worklist") as ports:
        yield ports


def _detail(row: Any) -> dict[str, Any]:
    value = row["detail"]
    return value if isinstance(value, dict) else json.loads(value)


def _ae_title() -> str:
    return f"T{uuid.uuid4().hex[:10].upper()}"


async def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, list(argv), capture_output=True, text=True, timeout=60)


def _tls(certs: Certificates, identity: Any = "client") -> list[str]:
    who = getattr(certs, identity)
    return ["+tls", str(who.key), str(who.cert), "+cf", str(certs.ca)]


def _rejected_1_1_3(result: subprocess.CompletedProcess[str]) -> None:
    text = result.stdout + result.stderr
    assert result.returncode != 0, text
    assert "Association Rejected" in text, text
    assert "Rejected Permanent" in text and "Service User" in text, text
    assert "Calling AE Title Not Recognized" in text, text


# -- known peers on the plain port ---------------------------------------------------------------


async def test_unknown_calling_ae_is_refused_with_1_1_3_and_audited(worklist: Worklist) -> None:
    ae = _ae_title()
    result = await _run(ECHOSCU, "-aet", ae, "-aec", "WORKLIST", "127.0.0.1", str(worklist.port))
    _rejected_1_1_3(result)
    rows = await eventually(lambda: worklist.audit_rows(f"dicom:{ae}"), "the refusal's audit row")
    assert rows[-1]["outcome"] == "failure" and rows[-1]["source_ip"] == "127.0.0.1"
    detail = _detail(rows[-1])
    assert detail["refused"] is True and detail["mode"] == "enforce" and ae in detail["reason"]


async def test_pynetdicom_sees_result_source_reason_1_1_3(worklist: Worklist) -> None:
    client = AE(ae_title=_ae_title())
    client.add_requested_context(Verification)
    assoc = await asyncio.to_thread(client.associate, "127.0.0.1", worklist.port, ae_title="WORKLIST")
    try:
        assert assoc.is_rejected
        rj = assoc.acceptor.primitive
        assert (rj.result, rj.result_source, rj.diagnostic) == (1, 1, 3)
    finally:
        assoc.release() if assoc.is_established else None


async def test_known_ae_from_another_address_is_refused(worklist: Worklist) -> None:
    ae = _ae_title()
    await worklist.register(ae, ["10.20.30.0/24"])
    result = await _run(ECHOSCU, "-aet", ae, "-aec", "WORKLIST", "127.0.0.1", str(worklist.port))
    _rejected_1_1_3(result)
    rows = await eventually(lambda: worklist.audit_rows(f"dicom:{ae}"), "the refusal's audit row")
    assert "not registered at address 127.0.0.1" in str(rows[-1]["detail"])


async def test_known_ae_from_its_address_is_served(worklist: Worklist) -> None:
    ae = _ae_title()
    await worklist.register(ae, ["127.0.0.1"])
    echo = await _run(ECHOSCU, "-aet", ae, "-aec", "WORKLIST", "127.0.0.1", str(worklist.port))
    assert echo.returncode == 0, echo.stdout + echo.stderr
    find = await _run(FINDSCU, "-W", "-aet", ae, "-aec", "WORKLIST", "-k", "PatientName=NOBODY*", "-k", "PatientID",
                      "127.0.0.1", str(worklist.port))
    assert find.returncode == 0, find.stdout + find.stderr
    assert await worklist.audit_rows(f"dicom:{ae}") == []  # a known peer is no audit event of this kind


async def test_a_peer_registered_with_a_certificate_must_come_over_tls_with_it(worklist: Worklist) -> None:
    ae = _ae_title()
    await worklist.register(ae, ["127.0.0.1"], cert_sha256=worklist.certs.client.sha256)
    plain = await _run(ECHOSCU, "-aet", ae, "-aec", "WORKLIST", "127.0.0.1", str(worklist.port))
    _rejected_1_1_3(plain)
    other = await _run(ECHOSCU, *_tls(worklist.certs, "other_client"), "-aet", ae, "-aec", "WORKLIST",
                       "127.0.0.1", str(worklist.tls_port))
    _rejected_1_1_3(other)  # a certificate our CA signed, but another device's
    own = await _run(ECHOSCU, *_tls(worklist.certs), "-aet", ae, "-aec", "WORKLIST", "127.0.0.1",
                     str(worklist.tls_port))
    assert own.returncode == 0, own.stdout + own.stderr


async def test_admin_api_refuses_bad_entries_and_other_roles(worklist: Worklist) -> None:
    async with httpx.AsyncClient(base_url=worklist.url, timeout=30) as api:
        body = {"kind": "modality", "ae_title": "CT01", "addresses": ["127.0.0.1"]}
        assert (await api.put(f"{API}/x1", json=body)).status_code == 401
        assert (await api.put(f"{API}/x1", json=body, headers=worklist.headers("technologist"))).status_code == 403
        for bad in ({**body, "addresses": []}, {**body, "addresses": ["not-an-ip"]}, {**body, "ae_title": None},
                    {**body, "cert_sha256": "abc"}, {**body, "kind": "toaster"}):
            r = await api.put(f"{API}/x1", json=bad, headers=worklist.headers())
            assert r.status_code == 422, (bad, r.text)
        listing = await api.get(API, headers=worklist.headers("admin"))
        assert listing.status_code == 200 and listing.json()["modes"] == {"dicom": "enforce"}


# -- DICOM TLS -----------------------------------------------------------------------------------


async def test_dcmtk_findscu_and_echoscu_over_tls(worklist: Worklist) -> None:
    ae = _ae_title()
    await worklist.register(ae, ["127.0.0.1"])
    echo = await _run(ECHOSCU, *_tls(worklist.certs), "-aet", ae, "-aec", "WORKLIST", "127.0.0.1",
                      str(worklist.tls_port))
    assert echo.returncode == 0, echo.stdout + echo.stderr
    find = await _run(FINDSCU, *_tls(worklist.certs), "-W", "-aet", ae, "-aec", "WORKLIST",
                      "-k", "PatientName=NOBODY*", "-k", "PatientID", "127.0.0.1", str(worklist.tls_port))
    assert find.returncode == 0, find.stdout + find.stderr
    # BCP 195 is DCMTK's default profile (+py, non-downgrading); the extended one is accepted too.
    strict = await _run(ECHOSCU, *_tls(worklist.certs), "+pz", "-aet", ae, "-aec", "WORKLIST", "127.0.0.1",
                        str(worklist.tls_port))
    assert strict.returncode == 0, strict.stdout + strict.stderr


async def test_unknown_ae_over_tls_is_refused_too(worklist: Worklist) -> None:
    result = await _run(ECHOSCU, *_tls(worklist.certs), "-aet", _ae_title(), "-aec", "WORKLIST", "127.0.0.1",
                        str(worklist.tls_port))
    _rejected_1_1_3(result)


async def test_mutual_tls_refuses_a_client_without_a_certificate(worklist: Worklist) -> None:
    ae = _ae_title()
    await worklist.register(ae, ["127.0.0.1"])
    anonymous = await _run(ECHOSCU, "+tla", "+cf", str(worklist.certs.ca), "-aet", ae, "-aec", "WORKLIST",
                           "127.0.0.1", str(worklist.tls_port))
    assert anonymous.returncode != 0, anonymous.stdout + anonymous.stderr
    assert "Association Accepted" not in anonymous.stdout + anonymous.stderr
    stranger = await _run(ECHOSCU, *_tls(worklist.certs, "stranger"), "-aet", ae, "-aec", "WORKLIST",
                          "127.0.0.1", str(worklist.tls_port))
    assert stranger.returncode != 0, stranger.stdout + stranger.stderr
    rows = await eventually(lambda: worklist.audit_rows("tls:127.0.0.1"), "the failed handshake's audit row")
    assert rows[-1]["outcome"] == "failure" and "TLS handshake failed" in str(rows[-1]["detail"])
    # The port still serves after refusing: one failed handshake holds nothing.
    ok = await _run(ECHOSCU, *_tls(worklist.certs), "-aet", ae, "-aec", "WORKLIST", "127.0.0.1",
                    str(worklist.tls_port))
    assert ok.returncode == 0, ok.stdout + ok.stderr


def _python_echo(port: int, ae_title: str, context: ssl.SSLContext) -> Any:
    client = AE(ae_title=ae_title)
    client.add_requested_context(Verification)
    client.add_requested_context(ModalityWorklistInformationFind)
    assoc = client.associate("127.0.0.1", port, ae_title="WORKLIST", tls_args=(context, "localhost"))
    try:
        if not assoc.is_established:
            return None
        echo = assoc.send_c_echo()
        query = Dataset()
        query.PatientName = "NOBODY*"
        query.PatientID = ""
        query.ScheduledProcedureStepSequence = []
        statuses = [status.Status for status, _ in assoc.send_c_find(query, ModalityWorklistInformationFind)]
        return echo.Status, statuses
    finally:
        if assoc.is_established:
            assoc.release()


async def test_python_client_over_tls(worklist: Worklist) -> None:
    ae = _ae_title()
    await worklist.register(ae, ["127.0.0.1"], cert_sha256=worklist.certs.client.sha256)
    certs = worklist.certs
    context = client_context(ca_file=certs.ca, cert_file=certs.client.cert, key_file=certs.client.key)
    assert await asyncio.to_thread(_python_echo, worklist.tls_port, ae, context) == (0, [0])
    # Without a client certificate the handshake fails (mutual TLS required): no association.
    bare = client_context(ca_file=certs.ca)
    assert await asyncio.to_thread(_python_echo, worklist.tls_port, ae, bare) is None
    # Offering only TLS 1.1 is refused by the BCP 195 profile (TLS 1.2+).
    old = client_context(ca_file=certs.ca, cert_file=certs.client.cert, key_file=certs.client.key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with contextlib.suppress(ssl.SSLError, ValueError):
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
    assert await asyncio.to_thread(_python_echo, worklist.tls_port, ae, old) is None


async def test_many_replies_and_a_cancel_over_tls(worklist: Worklist) -> None:
    """The C-FIND fast path writes replies to the socket itself, beside pynetdicom's DUL thread: over
    TLS the two take turns (one SSL socket, one thread at a time). 600 replies in one query reach
    the modality whole, and a C-CANCEL read while replies are being written ends the query cleanly."""
    ae, tag = _ae_title(), uuid.uuid4().hex[:8].upper()
    await worklist.register(ae, ["127.0.0.1"])
    conn = await connect(worklist.database_url)
    try:
        await conn.execute(
            """INSERT INTO worklist.scheduled_procedure_steps (accession_number, protocol_code, source, patient_id,
                   patient_name, pn_alpha, modality, station_ae_title, start_at)
               SELECT 'TLS' || $1 || g, 'TLS', 'import', 'P' || g, 'TLS' || $1 || '^' || g, 'TLS' || $1 || '^' || g,
                      'CT', $2, now()
               FROM generate_series(1, 600) g""", tag, ae)
        certs = worklist.certs
        context = client_context(ca_file=certs.ca, cert_file=certs.client.cert, key_file=certs.client.key)

        def query(cancel_after: int | None) -> list[int]:
            client = AE(ae_title=ae)
            client.add_requested_context(ModalityWorklistInformationFind)
            assoc = client.associate("127.0.0.1", worklist.tls_port, ae_title="WORKLIST",
                                     tls_args=(context, "localhost"))
            assert assoc.is_established
            try:
                identifier = Dataset()
                identifier.PatientName = f"TLS{tag}*"
                identifier.AccessionNumber = ""
                statuses: list[int] = []
                for status, _ in assoc.send_c_find(identifier, ModalityWorklistInformationFind, msg_id=9):
                    statuses.append(int(status.Status))
                    if cancel_after is not None and len(statuses) == cancel_after:
                        cx = assoc.accepted_contexts[0]
                        assoc.send_c_cancel(9, cx.context_id)
                assert assoc.is_established, "the association was dropped"
                return statuses
            finally:
                if assoc.is_established:
                    assoc.release()

        statuses = await asyncio.to_thread(query, None)
        assert statuses.count(0xFF00) == 600 and statuses[-1] == 0
        cancelled = await asyncio.to_thread(query, 5)
        # Cancelled mid-stream (0xFE00), or, on a quiet machine, every reply already in the socket buffers
        # when the C-CANCEL is read (then the query ends as it would have, PS3.7 9.1.2.1.6 allows it):
        # either way in step, on an association still up.
        assert (cancelled[-1] == 0xFE00 and cancelled.count(0xFF00) < 600) or \
            (cancelled[-1] == 0 and cancelled.count(0xFF00) == 600), cancelled[-3:]
        findscu = await _run(FINDSCU, *_tls(worklist.certs), "-W", "-aet", ae, "-aec", "WORKLIST",
                             "-k", f"PatientName=TLS{tag}*", "-k", "AccessionNumber", "127.0.0.1",
                             str(worklist.tls_port))
        assert findscu.returncode == 0, findscu.stderr[-2000:]
        assert (findscu.stdout + findscu.stderr).count("Find Response:") >= 600
    finally:
        await conn.execute("DELETE FROM worklist.scheduled_procedure_steps WHERE accession_number LIKE $1",
                           f"TLS{tag}%")
        await conn.close()


# -- migration modes -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _scp(worklist: Worklist, mode: str) -> AsyncIterator[WorklistSCP]:
    from imaging_common import db

    pool = await db.create_pool(worklist.database_url, SERVICE.schema, max_size=2)
    registry = PeerRegistry(pool, "worklist")
    await registry.start()
    scp = WorklistSCP(pool, Settings(worklist_host="127.0.0.1", worklist_port=free_port(), worklist_peers=mode),
                      asyncio.get_running_loop(), peers=registry)
    await asyncio.to_thread(scp.start)
    try:
        yield scp
    finally:
        await asyncio.to_thread(scp.stop)
        await registry.stop()
        await pool.close()


async def test_audit_only_lets_an_unknown_ae_in_and_audits_it(worklist: Worklist) -> None:
    ae = _ae_title()
    async with _scp(worklist, "audit-only") as scp:
        echo = await _run(ECHOSCU, "-aet", ae, "-aec", "WORKLIST", "127.0.0.1", str(scp.port))
        assert echo.returncode == 0, echo.stdout + echo.stderr
        rows = await eventually(lambda: worklist.audit_rows(f"dicom:{ae}"), "the unknown peer's audit row")
        assert rows[-1]["outcome"] == "success" and "audit-only" in str(rows[-1]["detail"])


async def test_off_checks_nothing(worklist: Worklist) -> None:
    ae = _ae_title()
    async with _scp(worklist, "off") as scp:
        echo = await _run(ECHOSCU, "-aet", ae, "-aec", "WORKLIST", "127.0.0.1", str(scp.port))
        assert echo.returncode == 0, echo.stdout + echo.stderr
    await asyncio.sleep(0.5)
    assert await worklist.audit_rows(f"dicom:{ae}") == []
