"""Operability of the all-in-one platform: one correlation id followed from an HTTP request through
RabbitMQ into the consuming services' JSON logs; DICOM associations (DCMTK echoscu, a pynetdicom print)
and HL7 messages over MLLP logged under their own ids and counted on each service's /metrics; queue
depth read from RabbitMQ at scrape time."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import aio_pika
import httpx
import pytest
from imaging_common.allinone import build_platform
from imaging_common.config import CommonSettings
from imaging_common.empi.identifiers import resident_check_char
from imaging_common.events.topology import dead_letter_queue_name, exchange_name, queue_name
from imaging_common.hl7 import Message
from imaging_common.hl7.mllp import MLLPClient
from imaging_testing import eventually, http_server
from imaging_testing import print_kit as tk
from imaging_testing.auth import issue_test_token
from imaging_testing.logs import JsonLines, json_lines

T = TypeVar("T")
FINDSCU = "/usr/bin/findscu"
ECHOSCU = "/usr/bin/echoscu"  # DCMTK's (pynetdicom installs another echoscu earlier on PATH)
# Every service that consumes order.created (topology.subscriptions(): those whose HANDLERS take OrderCreated).
ORDER_CONSUMERS = {"scheduling", "worklist", "queue_calling", "print_scp", "reporting", "critical_values",
                   "patient_portal", "dashboard"}


@dataclass
class Platform:
    url: str
    app: Any
    settings: CommonSettings
    events: list[dict[str, Any]] = field(default_factory=list)

    def headers(self, *roles: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + issue_test_token(self.settings, roles=list(roles), username="ops-test")}

    def ctx(self, prefix: str) -> Any:
        app = self.app.app_for(f"/api/{prefix}")
        return app.state.ctx


@pytest.fixture(scope="module")
def logs(platform: Platform) -> Iterator[JsonLines]:
    """Added once the platform is built (its logging set-up replaces the root logger's handlers)."""
    with json_lines(logging.INFO) as handler:
        yield handler


@pytest.fixture(scope="module")
async def platform(test_env: dict[str, str]) -> AsyncIterator[Platform]:
    app = build_platform()
    settings = CommonSettings()
    async with http_server(app) as url:
        connection = await aio_pika.connect_robust(settings.amqp_url)
        try:
            channel = await connection.channel()
            exchange = await channel.get_exchange(exchange_name(settings.namespace), ensure=True)
            spy = await channel.declare_queue(f"{settings.namespace}.ops-spy-{uuid.uuid4().hex[:6]}", exclusive=True,
                                              auto_delete=True)
            await spy.bind(exchange, routing_key="#")
            platform = Platform(url, app, settings)

            async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                async with message.process():
                    platform.events.append(json.loads(message.body))

            await spy.consume(collect)
            yield platform
        finally:
            await connection.close()


async def metric(platform: Platform, prefix: str, name: str, **labels: str) -> float | None:
    """One sample of a service's /metrics, as Prometheus would scrape it (None when absent)."""
    async with httpx.AsyncClient(base_url=platform.url) as client:
        r = await client.get(f"/api/{prefix}/metrics")
    assert r.status_code == 200
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", r.text, re.M)
    return float(found.group(1)) if found else None


def resident_id() -> str:
    first = f"110105{1950 + uuid.uuid4().int % 50}0{1 + uuid.uuid4().int % 9}1{uuid.uuid4().int % 9}" \
            f"{uuid.uuid4().int % 1000:03d}"
    return first + resident_check_char(first)


# ---- one id across HTTP, RabbitMQ and the consumers ----------------------------------------------------


async def test_a_request_id_reaches_the_event_and_every_consumer_log(platform: Platform, logs: JsonLines) -> None:
    cid = f"front-desk-{uuid.uuid4().hex[:12]}"
    headers = {**platform.headers("clerk"), "X-Correlation-ID": cid}
    async with httpx.AsyncClient(base_url=platform.url) as api:
        r = await api.post("/api/registration/patients", headers=headers, json={
            "name": "欧阳霁翀", "identifiers": [{"value": resident_id()}], "verified": True})
        assert r.status_code == 201, r.text
        assert r.headers["x-correlation-id"] == cid
        empi_id = r.json()["patient"]["empi_id"]
        r = await api.post("/api/registration/orders", headers=headers, json={
            "empi_id": empi_id, "items": [{"code": "CT-CHEST", "name": "胸部CT平扫", "modality": "CT",
                                           "body_part": "CHEST"}]})
        assert r.status_code == 201, r.text
        accession = r.json()["accession_number"]

    # (a) on RabbitMQ: the CloudEvents carry it as their correlationid
    order_created = await eventually(
        lambda: [e for e in platform.events if e["type"] == "order.created" and e.get("subject") == accession],
        "order.created on the exchange")
    assert order_created[0]["correlationid"] == cid
    registered = [e for e in platform.events if e["type"] == "patient.registered" and e.get("subject") == empi_id]
    assert registered and registered[0]["correlationid"] == cid

    # (b) in the JSON logs: every consumer logged its handling of that order under the same id
    def consumers_logged() -> set[str]:
        return {line.get("service", "") for line in logs.with_id(cid)
                if line.get("event_type") == "order.created" and accession in line["message"]}

    await eventually(lambda: consumers_logged() >= ORDER_CONSUMERS, "every consumer's log line")
    line = next(line for line in logs.with_id(cid) if line.get("service") == "worklist")
    assert line["logger"] == "imaging_common.events.consumer" and line["level"] == "INFO"
    assert line["event_id"] == order_created[0]["id"]


# ---- DICOM ---------------------------------------------------------------------------------------------


def print_one_film(port: int) -> dict[str, Any]:
    """Appendix A over pynetdicom: N-GET printer, N-CREATE session and film box, N-SET, N-ACTION, N-DELETE."""
    assoc = tk.print_ae().associate("127.0.0.1", port, ae_title="PRINT_SCP")
    assert assoc.is_established
    try:
        return tk.print_film(assoc, [tk.to_item(tk.anatomy(64))])
    finally:
        assoc.release()


async def test_dicom_associations_are_logged_under_their_own_id_and_counted(platform: Platform,
                                                                          logs: JsonLines) -> None:
    port = platform.ctx("print").extras["print"].scp.port
    proc = await asyncio.create_subprocess_exec(ECHOSCU, "-aet", "OPS_ECHO", "-aec", "PRINT_SCP", "127.0.0.1",
                                                str(port), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode(errors="replace")
    printed = await asyncio.to_thread(print_one_film, port)
    assert printed["print"] == 0, printed

    accepted = [line for line in logs.lines if line["message"].startswith("DICOM association from")
                and line.get("calling_ae") in ("OPS_ECHO", "MODALITY1") and line.get("service") == "print_scp"]
    assert {line["calling_ae"] for line in accepted} == {"OPS_ECHO", "MODALITY1"}
    ids = {line["correlation_id"] for line in accepted}
    assert len(ids) == 2  # one id per association
    # The print itself is logged under its association's id, naming the films it spooled.
    print_id = next(line["correlation_id"] for line in accepted if line["calling_ae"] == "MODALITY1")
    assert any(line["message"].startswith("print from MODALITY1") for line in logs.with_id(print_id))

    for command, least in (("C-ECHO", 1), ("N-GET", 1), ("N-CREATE", 2), ("N-SET", 1), ("N-ACTION", 1),
                           ("N-DELETE", 2)):
        count = await metric(platform, "print", "dicom_dimse_responses_total", service="print_scp",
                             command=command, status="success")
        assert count is not None and count >= least, (command, count)
    assert (await metric(platform, "print", "dicom_associations_total", service="print_scp",
                         outcome="accepted") or 0) >= 2
    assert await eventually(lambda: _active_is_zero(platform), "both associations closed")
    # Each service's /metrics holds its own: the worklist's registry has no print SCP in it.
    assert await metric(platform, "worklist", "dicom_dimse_responses_total", service="print_scp",
                        command="C-ECHO", status="success") is None


async def test_worklist_queries_are_counted_though_their_replies_bypass_pynetdicom(platform: Platform) -> None:
    """The worklist writes C-FIND pendings to the socket itself: they are counted all the same."""
    tag = uuid.uuid4().hex[:6].upper()
    start = datetime.now().replace(microsecond=0).isoformat()
    items = [{"accession_number": f"OPS{tag}{i}", "patient_id": f"OPS{tag}{i}", "patient_name": f"OPS^{tag}",
              "modality": "CT", "station_ae_title": f"OPS{tag}", "start": start} for i in range(3)]
    async with httpx.AsyncClient(base_url=platform.url) as client:
        r = await client.post("/api/worklist/items", json={"items": items}, headers=platform.headers("admin"))
        assert r.status_code in (200, 201), r.text
    before = {s: await metric(platform, "worklist", "dicom_dimse_responses_total", service="worklist",
                              command="C-FIND", status=s) or 0 for s in ("pending", "success")}
    port = platform.ctx("worklist").extras["worklist_scp"].port
    proc = await asyncio.create_subprocess_exec(FINDSCU, "-W", "-aet", f"OPS{tag}", "-aec", "WORKLIST",
                                                "-k", f"PatientName=OPS^{tag}", "-k", "PatientID", "127.0.0.1",
                                                str(port), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode(errors="replace")
    after = {s: await metric(platform, "worklist", "dicom_dimse_responses_total", service="worklist",
                             command="C-FIND", status=s) or 0 for s in ("pending", "success")}
    assert after["pending"] - before["pending"] == 3 and after["success"] - before["success"] == 1, (before, after)
    assert (await metric(platform, "worklist", "dicom_associations_total", service="worklist",
                         outcome="accepted") or 0) >= 1


async def _active_is_zero(platform: Platform) -> bool:
    return await metric(platform, "print", "dicom_associations_active", service="print_scp") == 0


# ---- HL7 -----------------------------------------------------------------------------------------------


async def test_an_hl7_order_is_handled_under_its_control_id_and_counted(platform: Platform, logs: JsonLines) -> None:
    control = f"OPS{uuid.uuid4().hex[:10].upper()}"
    placer = f"P{uuid.uuid4().hex[:10]}"
    his = f"H{uuid.uuid4().hex[:8]}"
    text = "\r".join([
        f"MSH|^~\\&|HIS|HOSP|RIS|IMG|20240601083000||ORM^O01^ORM_O01|{control}|P|2.5||||||UNICODE UTF-8",
        f"PID|1||{his}^^^HIS^PI||孙^悦||19800101|F",
        "PV1|1|O",
        f"ORC|NW|{placer}",
        "OBR|1|||CT-CHEST^胸部CT平扫^LOCAL||||||||||||CHEST|||||||||CT",
    ]) + "\r"
    before = await metric(platform, "registration", "hl7_messages_total", service="registration", direction="in",
                          type="ORM^O01", ack="AA") or 0
    port = platform.ctx("registration").extras["mllp_port"]
    async with MLLPClient("127.0.0.1", port, timeout=30) as client:
        ack = Message.parse((await client.send(text.encode("utf-8"))).decode("utf-8"))
    assert ack.field("MSA", 1) == "AA", ack.to_er7()

    cid = f"HIS-{control}"
    accepted = [line for line in logs.with_id(cid) if line["logger"] == "imaging_common.hl7.receiver"]
    assert accepted and control in accepted[0]["message"]
    accession = ack.field("MSA", 3).split()[1]  # "order <accession> for <patient id>"
    order = await eventually(lambda: [e for e in platform.events if e["type"] == "order.created"
                                      and e.get("subject") == accession], "order.created from the HL7 order")
    assert order[0]["correlationid"] == cid  # the event the message caused carries the message's id
    assert await eventually(lambda: any(line.get("event_type") == "order.created" for line in logs.with_id(cid)),
                            "a consumer's log line under the HL7 id")

    after = await metric(platform, "registration", "hl7_messages_total", service="registration", direction="in",
                         type="ORM^O01", ack="AA")
    assert after == before + 1
    latency = await metric(platform, "registration", "hl7_mllp_duration_seconds_count", service="registration",
                           direction="in", type="ORM^O01")
    assert latency is not None and latency >= 1


# ---- queue depth ---------------------------------------------------------------------------------------


async def test_queue_depth_is_read_from_rabbitmq_at_scrape_time(platform: Platform) -> None:
    for q in ("main", "retry", "dlq"):
        depth = await metric(platform, "scheduling", "events_queue_depth", service="scheduling", queue=q)
        assert depth is not None and 0 <= depth < 1000, (q, depth)
    # A message that is no CloudEvent goes to scheduling's DLQ at once: the gauge shows it, then its removal.
    settings = platform.settings
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"not an event", message_id="ops-malformed"),
                                               routing_key=queue_name(settings.namespace, "scheduling"))

        async def dlq_depth() -> float | None:
            return await metric(platform, "scheduling", "events_queue_depth", service="scheduling", queue="dlq")

        assert await eventually(lambda: _equals(dlq_depth(), 1.0), "DLQ depth 1") is True
        dlq = await channel.declare_queue(dead_letter_queue_name(settings.namespace, "scheduling"), passive=True)
        await dlq.purge()  # leave the session's DLQs empty (other tests check them)
        assert await eventually(lambda: _equals(dlq_depth(), 0.0), "DLQ depth back to 0") is True
    finally:
        await connection.close()


async def _equals(value: Awaitable[float | None], expected: float) -> bool:
    return await value == expected
