"""fast_dul answers print requests in the DUL thread: never before pynetdicom counts the association as
established (its N-service SCPs drop the response to a request served earlier), and an abort from that
thread never waits for the thread itself. Real DICOM over TCP: a pynetdicom SCP made fast as the print
SCP makes its associations, a pynetdicom SCU."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from imaging_testing import free_port
from imaging_testing import print_kit as tk
from print_scp.adapters.fast_dul import make_fast
from pydicom.dataset import Dataset
from pynetdicom import AE, evt

PRINTER = "1.2.840.10008.5.1.1.16"
PRINTER_INSTANCE = "1.2.840.10008.5.1.1.17"


def _printer(event: evt.Event) -> tuple[int, Dataset]:
    ds = Dataset()
    ds.PrinterStatus = "NORMAL"
    return 0x0000, ds


def _slow_accept(event: evt.Event) -> None:
    # What the print SCP's observer and peer audit do at EVT_ACCEPTED, made slow as on a loaded machine:
    # the modality has its A-ASSOCIATE-AC and sends its first request meanwhile.
    time.sleep(0.5)


def _serve() -> tuple[Any, int]:
    ae = AE(ae_title="PRINT_SCP")
    ae.add_supported_context(tk.GRAY_META)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[
        (evt.EVT_CONN_OPEN, lambda event: make_fast(event.assoc)), (evt.EVT_ACCEPTED, _slow_accept),
        (evt.EVT_N_GET, _printer)])
    return server, port


def _first_request_at_once(port: int) -> tuple[int, float]:
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(tk.GRAY_META)
    ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", port, ae_title="PRINT_SCP")
    assert assoc.is_established
    try:
        started = time.perf_counter()
        status, _ = assoc.send_n_get([0x21100010], PRINTER, PRINTER_INSTANCE, meta_uid=tk.GRAY_META)
        return int(status.get("Status", -1)), time.perf_counter() - started
    finally:
        assoc.release()


async def test_a_request_sent_the_moment_the_association_is_accepted_is_answered() -> None:
    server, port = _serve()
    try:
        status, seconds = await asyncio.to_thread(_first_request_at_once, port)
    finally:
        await asyncio.to_thread(server.shutdown)
    assert status == 0x0000  # -1: no answer, the DIMSE timeout ran out
    assert seconds < 5
