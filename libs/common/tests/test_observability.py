"""Correlation ids and metrics of observability.py, hl7/observe.py (over real MLLP) and dicom/observe.py
(a real pynetdicom SCP and SCU)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator

import pytest
from imaging_common.dicom.observe import DimseObserver, count_responses, status_class
from imaging_common.hl7 import HL7Error, HL7Metrics, Message, MessageService
from imaging_common.hl7 import ack as acks
from imaging_common.hl7.mllp import MLLPClient, MLLPServer
from imaging_common.hl7.observe import ack_code, message_correlation_id, message_type, msh_fields
from imaging_common.observability import (
    accepted_correlation_id,
    bind_correlation_id,
    correlation_id_from,
    correlation_scope,
    current_correlation_id,
)
from imaging_testing import free_port
from imaging_testing.logs import JsonLines, json_lines
from prometheus_client import CollectorRegistry
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

ADT = ("MSH|^~\\&|HIS|HOSP|RIS|IMG|20240101120000||ADT^A04^ADT_A01|{control}|P|2.5\r"
       "EVN|A04|20240101120000\r"
       "PID|1||H123^^^HIS^PI||张三^^^^^^L||19491231|M\r")


@pytest.fixture
def json_logs() -> Iterator[JsonLines]:
    with json_lines() as handler:
        yield handler


# ---- correlation ids and the JSON formatter ---------------------------------------------------------


def test_json_lines_carry_the_correlation_id_and_extra_fields(json_logs: JsonLines) -> None:
    log = logging.getLogger("test.observability")
    with correlation_scope("cid-outer"):
        with correlation_scope("cid-inner"):
            log.info("inner %s", 1, extra={"calling_ae": "CT01"})
        log.info("outer")
    log.info("none")
    inner, outer, none = json_logs.lines
    assert inner["message"] == "inner 1" and inner["correlation_id"] == "cid-inner" and inner["calling_ae"] == "CT01"
    assert outer["correlation_id"] == "cid-outer"
    assert "correlation_id" not in none and current_correlation_id() is None


def test_outside_ids_are_kept_only_when_plain() -> None:
    assert accepted_correlation_id("order-42.retry_1") == "order-42.retry_1"
    for bad in ("", None, "x" * 200, "two words", "line\nbreak", '{"json":1}'):
        made = accepted_correlation_id(bad)
        assert made != bad and len(made) == 32
    assert correlation_id_from("HIS 2", "MSG|001") == "HIS_2-MSG_001"
    assert correlation_id_from("", "MSG1") == "MSG1" and len(correlation_id_from("", "")) == 32


async def test_the_id_bound_in_a_thread_reaches_coroutines_it_hands_to_the_loop() -> None:
    """What the DICOM SCPs rely on: run_coroutine_threadsafe runs the coroutine in a copy of the
    calling thread's context."""
    loop = asyncio.get_running_loop()

    async def seen() -> str | None:
        return current_correlation_id()

    def association_thread() -> str | None:
        bind_correlation_id("assoc-1")
        return asyncio.run_coroutine_threadsafe(seen(), loop).result(5)

    assert await asyncio.to_thread(association_thread) == "assoc-1"
    assert current_correlation_id() is None  # the loop's own context is untouched


# ---- HL7 -----------------------------------------------------------------------------------------------


def test_msh_and_msa_read_from_raw_bytes() -> None:
    fields = msh_fields(ADT.format(control="MSG001").encode())
    assert message_type(fields) == "ADT^A04" and message_correlation_id(fields) == "HIS-MSG001"
    assert message_type(msh_fields(b"not hl7")) == "unknown" and len(message_correlation_id([])) == 32
    assert message_type(msh_fields(b"MSH|^~\\&|A|B|C|D|1||<script>^x|1|P|2.5")) == "unknown"
    assert ack_code(b"MSH|^~\\&|RIS|IMG|||1||ACK^A04^ACK|A1|P|2.5\rMSA|AE|MSG001|bad") == "AE"
    assert ack_code(None) == "none" and ack_code(b"MSH|^~\\&|x") == "none"


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_mllp_counts_both_directions_and_handles_each_message_under_its_control_id(json_logs) -> None:
    registry = CollectorRegistry()
    seen: list[str | None] = []

    async def handle(msg: Message) -> str | None:
        seen.append(current_correlation_id())
        if msg.type[0] != "ADT":
            raise HL7Error(acks.UNSUPPORTED_MESSAGE_TYPE, "only ADT", "MSH", 1, 9, reject=True)
        logging.getLogger("test.his").info("patient registered")
        return None

    server_metrics, client_metrics = HL7Metrics("registration", registry), HL7Metrics("reporting", registry)
    port = free_port()
    async with MLLPServer(MessageService(handle), "127.0.0.1", port, metrics=server_metrics), \
            MLLPClient("127.0.0.1", port, metrics=client_metrics) as client:
        assert b"MSA|AA|MSG001" in await client.send(ADT.format(control="MSG001"))
        assert b"MSA|AR|Q1" in await client.send(ADT.format(control="Q1").replace("ADT^A04^ADT_A01", "QRY^Q01"))
    assert seen == ["HIS-MSG001", "HIS-Q1"]
    assert current_correlation_id() is None
    handled = [line for line in json_logs.lines if line["message"] == "patient registered"]
    assert handled and handled[0]["correlation_id"] == "HIS-MSG001"
    assert sample(registry, "hl7_messages_total", service="registration", direction="in", type="ADT^A04",
                  ack="AA") == 1
    assert sample(registry, "hl7_messages_total", service="registration", direction="in", type="QRY^Q01",
                  ack="AR") == 1
    assert sample(registry, "hl7_messages_total", service="reporting", direction="out", type="ADT^A04",
                  ack="AA") == 1
    assert sample(registry, "hl7_mllp_duration_seconds_count", service="registration", direction="in",
                  type="ADT^A04") == 1

    async with MLLPClient("127.0.0.1", free_port(), timeout=2, metrics=client_metrics) as nobody:
        with pytest.raises(OSError):
            await nobody.send(ADT.format(control="MSG002"))
    assert sample(registry, "hl7_messages_total", service="reporting", direction="out", type="ADT^A04",
                  ack="error") == 1


def test_message_types_from_peers_are_bounded() -> None:
    metrics = HL7Metrics("registration", CollectorRegistry())
    for n in range(100):
        metrics.record("in", f"Z{n:02d}^A01", "AR", 0.001)
    assert len(metrics._types) == 64
    assert metrics.messages.labels("registration", "in", "other", "AR")._value.get() == 36


# ---- DICOM ---------------------------------------------------------------------------------------------


def test_status_classes() -> None:
    assert [status_class(c) for c in (0x0000, 0xFF00, 0xFF01, 0xFE00, 0xB605, 0x0107, 0x0001, 0xC001, 0x0110,
                                      0xA700, None)] == [
        "success", "pending", "pending", "cancel", "warning", "warning", "warning", "failure", "failure",
        "failure", "failure"]


async def test_each_association_has_its_id_in_handlers_logs_and_the_coroutines_they_start(json_logs) -> None:
    registry = CollectorRegistry()
    observer = DimseObserver("worklist", registry)
    loop = asyncio.get_running_loop()
    seen_in_loop: list[str | None] = []

    async def on_loop() -> None:
        seen_in_loop.append(current_correlation_id())
        logging.getLogger("test.dicom").info("echo handled on the loop")

    def on_echo(event: evt.Event) -> int:
        asyncio.run_coroutine_threadsafe(on_loop(), loop).result(5)
        count_responses(event.assoc, "C-FIND", 0xFF00, 3)  # as an SCP writing responses itself does
        return 0x0000

    ae = AE(ae_title="OBSERVED")
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", 0), block=False,
                             evt_handlers=[(evt.EVT_C_ECHO, on_echo), *observer.handlers()])
    port = server.server_address[1]

    def echo_twice() -> list[int]:
        scu = AE(ae_title="MODALITY1")
        scu.add_requested_context(Verification)
        statuses = []
        for _ in range(2):
            assoc = scu.associate("127.0.0.1", port, ae_title="OBSERVED")
            assert assoc.is_established
            statuses.append(int(assoc.send_c_echo().Status))
            assoc.release()
        return statuses

    try:
        assert await asyncio.to_thread(echo_twice) == [0, 0]
        deadline = time.monotonic() + 5
        while sample(registry, "dicom_associations_active", service="worklist") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        await asyncio.to_thread(server.shutdown)

    accepted = [line for line in json_logs.lines if line["message"].startswith("DICOM association from MODALITY1")]
    assert len(accepted) == 2 and all(line["calling_ae"] == "MODALITY1" for line in accepted)
    ids = [line["correlation_id"] for line in accepted]
    assert ids[0] != ids[1] and seen_in_loop == ids  # one id per association, carried onto the loop
    on_loop_lines = [line for line in json_logs.lines if line["message"] == "echo handled on the loop"]
    assert [line["correlation_id"] for line in on_loop_lines] == ids
    assert sample(registry, "dicom_associations_total", service="worklist", outcome="accepted") == 2
    assert sample(registry, "dicom_associations_total", service="worklist", outcome="released") == 2
    assert sample(registry, "dicom_associations_active", service="worklist") == 0
    assert sample(registry, "dicom_dimse_responses_total", service="worklist", command="C-ECHO",
                  status="success") == 2
    assert sample(registry, "dicom_dimse_responses_total", service="worklist", command="C-FIND",
                  status="pending") == 6
    assert threading.current_thread() is threading.main_thread() and current_correlation_id() is None


async def test_a_rejected_association_is_counted_and_logged(json_logs) -> None:
    registry = CollectorRegistry()
    observer = DimseObserver("print_scp", registry)
    ae = AE(ae_title="PRINTER")
    ae.require_called_aet = True
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", 0), block=False)
    observer.bind(server)  # on a server already running (how the worklist SCP is observed)

    def wrong_called_ae() -> bool:
        scu = AE(ae_title="MODALITY2")
        scu.add_requested_context(Verification)
        assoc = scu.associate("127.0.0.1", server.server_address[1], ae_title="SOMEONE")
        return bool(assoc.is_rejected)

    try:
        assert await asyncio.to_thread(wrong_called_ae)
    finally:
        await asyncio.to_thread(server.shutdown)
    assert sample(registry, "dicom_associations_total", service="print_scp", outcome="rejected") == 1
    rejected = [line for line in json_logs.lines if "rejected by print_scp" in line["message"]]
    assert rejected and rejected[0]["calling_ae"] == "MODALITY2" and rejected[0]["correlation_id"]


# ---- queue depth ---------------------------------------------------------------------------------------


async def test_queue_depth_without_a_broker_leaves_no_figure_and_no_error() -> None:
    from imaging_common.config import CommonSettings
    from imaging_common.events import EventBus

    registry = CollectorRegistry()
    bus = EventBus(settings=CommonSettings(), service="scheduling", pool=None, handlers={},  # type: ignore[arg-type]
                   registry=registry)
    bus.metrics.queue_depth.labels("scheduling", "dlq").set(3)  # a figure from before the broker went away
    await bus.refresh_queue_depth()  # not connected: must not raise
    assert sample(registry, "events_queue_depth", service="scheduling", queue="dlq") == 0.0
    assert registry.get_sample_value("events_queue_depth", {"service": "scheduling", "queue": "dlq"}) is None
