"""The print SCP's DICOM ports know their peers and speak TLS (issue 18 items 1 and 2), like the worklist's:
an unknown calling AE is refused with A-ASSOCIATE-RJ 1/1/3 and audited; a registered modality prints a
whole film over DICOM TLS (pynetdicom, mutual TLS) and DCMTK's echoscu is served with its certificate
and refused without one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from imaging_common.tls import client_context
from imaging_testing import eventually
from imaging_testing import print_kit as tk
from print_scp.app import SERVICE
from print_scp.settings import Settings

from security.dicom_ports import DicomPorts, serving
from security.test_dicom_peers_tls import ECHOSCU, _rejected_1_1_3, _run, _tls

API = "/api/print/admin/peers"


Printer = DicomPorts


@pytest.fixture(scope="module")
async def printer(settings_for: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Printer]:
    async with serving(SERVICE, Settings, settings_for, tmp_path_factory.mktemp("print-tls"), ports="print",
                       data_dir=tmp_path_factory.mktemp("print-data")) as ports:
        yield ports


def _ae() -> str:
    return f"CT{uuid.uuid4().hex[:10].upper()}"


async def test_an_unknown_modality_cannot_print(printer: Printer) -> None:
    ae = _ae()
    result = await _run(ECHOSCU, "-aet", ae, "-aec", "PRINT_SCP", "127.0.0.1", str(printer.port))
    _rejected_1_1_3(result)
    rows = await eventually(lambda: printer.audit_rows(f"dicom:{ae}"), "the refusal's audit row")
    assert rows[-1]["outcome"] == "failure"


def _print_over_tls(port: int, ae_title: str, context: Any) -> dict[str, Any] | None:
    item = tk.to_item(tk.anatomy(1024, 2), bits=12)  # 2 MB: PDUs read in several TLS records
    assoc = tk.print_ae(ae_title=ae_title).associate("127.0.0.1", port, ae_title="PRINT_SCP",
                                                     tls_args=(context, "localhost"))
    if not assoc.is_established:
        return None
    try:
        return tk.print_film(assoc, [item])
    finally:
        assoc.release()


async def test_a_registered_modality_prints_a_film_over_mutual_tls(printer: Printer) -> None:
    ae = _ae()
    certs = printer.certs
    await printer.register(ae, cert_sha256=certs.client.sha256)
    context = client_context(ca_file=certs.ca, cert_file=certs.client.cert, key_file=certs.client.key)
    out = await asyncio.to_thread(_print_over_tls, printer.tls_port, ae, context)
    assert out is not None and out["print"] == 0 and out["image_boxes"] == [0], out
    # Without a client certificate there is no association (mutual TLS required).
    assert await asyncio.to_thread(_print_over_tls, printer.tls_port, ae, client_context(ca_file=certs.ca)) is None


async def test_dcmtk_echoscu_over_tls_with_and_without_a_certificate(printer: Printer) -> None:
    ae = _ae()
    await printer.register(ae)
    ok = await _run(ECHOSCU, *_tls(printer.certs), "-aet", ae, "-aec", "PRINT_SCP", "127.0.0.1",
                    str(printer.tls_port))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    anonymous = await _run(ECHOSCU, "+tla", "+cf", str(printer.certs.ca), "-aet", ae, "-aec", "PRINT_SCP",
                           "127.0.0.1", str(printer.tls_port))
    assert anonymous.returncode != 0 and "Association Accepted" not in anonymous.stdout + anonymous.stderr
