"""One patient through the whole platform (all-in-one process), real protocols only.

Front desk in Chromium (password + TOTP) registers the patient and orders a chest CT → the
appointment is booked through the scheduling API in a room set up for this test → check-in and call
through the queue API, seen on a hall screen's WebSocket → the modality (DCMTK findscu) finds the
patient on the worklist → MPPS IN PROGRESS / COMPLETED (pynetdicom) → DCMTK's print client prints a
film with PID/ACC burned in, matched to the patient by OCR → a report saved with a critical finding,
signed preliminary and final, delivered over HL7 (MLLP) and FHIR to a clinician-system stub → the
critical value reaches the stub as ORU^R01 and FHIR Communication → the stub acknowledges → closed.

Every hop between services goes through RabbitMQ: a queue of the test's own, bound to the
namespace's topic exchange with '#', collects the CloudEvents, and each service's state is read
through its own API. The steps live in `e2e.journey` (shared with the fault tests and the bench).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from critical_values.settings import Settings as CriticalSettings
from imaging_common.allinone import build_platform
from imaging_common.config import CommonSettings
from imaging_testing import eventually, http_server
from imaging_testing.auth import issue_test_token
from playwright.async_api import async_playwright, expect
from reporting.settings import Settings as ReportingSettings
from websockets.asyncio.client import connect as ws_connect

from e2e.journey import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Journey,
    Site,
    clear_of_local_midnight,
    clinician_system,
    now_true,
    set_up_department,
    spy_on_bus,
    steps,
)

expect.set_options(timeout=20_000)  # `make test` runs beside other suites on two cores


@pytest.fixture(scope="module")
async def site(test_env: dict[str, str]) -> AsyncIterator[Site]:
    tag = uuid.uuid4().hex[:6]
    async with clinician_system() as clinician:
        receivers = clinician.report_receivers(tag)
        settings_for = {
            # Receivers configured through settings; short polls so the journey is quick.
            "reporting": ReportingSettings(reporting_receivers=json.dumps(receivers), reporting_delivery_poll=0.2,
                                           reporting_delivery_retry_base=0.1, reporting_delivery_retry_max=0.5),
            "critical_values": CriticalSettings(critical_poll_seconds=0.1, critical_retry_seconds=0.2),
        }
        settings = CommonSettings()
        platform = build_platform(settings_for=settings_for)
        async with http_server(platform) as url, spy_on_bus(settings) as log, \
                httpx.AsyncClient(base_url=url, timeout=30) as api:
            registration = next(app for app in platform.apps if app.state.ctx.spec.name == "registration")
            yield Site(api=api, settings=settings, worklist_port=int(test_env["IMAGING_WORKLIST_PORT"]),
                       print_port=int(test_env["IMAGING_PRINT_PORT"]), clinician=clinician, log=log,
                       ui_url=lambda prefix: url, mllp_port=registration.state.ctx.extras["mllp_port"])
            # Receivers live in the shared test database: later reports must not queue to a gone stub.
            ops = {"Authorization": "Bearer " + issue_test_token(settings, roles=["admin"], username="e2e")}
            for rec in receivers:
                body = {k: v for k, v in rec.items() if k != "id"} | {"enabled": False}
                r = await api.put(f"/api/reporting/receivers/{rec['id']}", json=body, headers=ops)
                assert r.status_code == 200, r.text


async def test_one_patient_end_to_end(site: Site, tmp_path: Path) -> None:
    await clear_of_local_midnight()
    dept = await set_up_department(site, uuid.uuid4().hex[:6].upper())
    j = Journey(site, dept, tmp_path)

    # 1. registration and order in the web UI (a clerk account created by an admin)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                           timeout=60_000)
        try:
            await j.register_in_browser(await browser.new_page())
        finally:
            await browser.close()
    await j.order_on_bus()

    # 2. appointment booked in the room set up for this test
    await j.book()

    # 3. check-in; the call is seen on the hall screen, with the name masked
    await j.check_in()
    async with ws_connect(j.screen_ws_url()) as ws:
        snapshot = await _screen_message(ws, "snapshot")
        assert snapshot["rooms"][0]["waiting"] == 1
        called = await j.call()
        assert called["ticket"] == j.ticket
        update = await _screen_message(ws, "update")
        current = update["rooms"][0]["current"][0]
        assert current["state"] == "called" and current["ticket"] == j.ticket
        assert current["name"] != j.name and current["name"][0] == j.name[0]  # masked on a public screen
        assert not any(j.name in json.dumps(m, ensure_ascii=False) for m in (snapshot, update))
    assert await j.entry_is("called")

    # 4.–5. DCMTK findscu finds the patient; MPPS in progress, then completed;
    # 6. DCMTK's print client prints the film, OCR matches it to the patient;
    # 7. a report with a critical finding: preliminary, final, delivered over HL7 and FHIR;
    # 8. the critical value notified over HL7 and FHIR, acknowledged by the clinician system, closed
    await steps(j, "query_worklist", "acknowledge_critical")
    j.assert_every_hop_on_bus()


async def _screen_message(ws: Any, kind: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        text = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
        msg = json.loads(text)
        for m in (msg["messages"] if msg["type"] == "batch" else [msg]):
            if m["type"] == kind:
                return m


async def test_the_his_cancels_and_merges_and_the_modality_sees_it(site: Site, tmp_path: Path) -> None:
    """Issue 17, done when: ORC-1 CA from the HIS takes a booked, checked-in exam off the worklist (DCMTK
    findscu) within seconds, frees the slot and empties the queue entry; after ADT^A40 findscu answers
    another exam of the merged patient with the surviving PatientID."""
    await clear_of_local_midnight()
    dept = await set_up_department(site, uuid.uuid4().hex[:6].upper())
    tag = uuid.uuid4().hex[:8]
    cancelled = Journey(site, dept, tmp_path)
    await cancelled.order_from_his(f"HC{tag}", f"PC{tag}")
    await cancelled.book()
    await cancelled.check_in()
    await cancelled.query_worklist()
    await cancelled.his_says("ORM^O01^ORM_O01", f"PID|1||HC{tag}^^^HIS^PI", f"ORC|CA|PC{tag}",
                             "OBR|1|||CT-CHEST^胸部CT平扫")
    started = time.perf_counter()

    async def off_the_worklist() -> bool:
        return not await cancelled.worklist_items()

    await eventually(off_the_worklist, "the HIS-cancelled step gone from findscu's answer")
    off_after = time.perf_counter() - started
    await eventually(lambda: cancelled.appointment_is("cancelled"), "the slot freed")
    await eventually(lambda: cancelled.entry_is("cancelled"), "the queue entry gone")
    assert off_after < 10, off_after

    merged, survivor = Journey(site, dept, tmp_path), Journey(site, dept, tmp_path)
    await merged.order_from_his(f"HM{tag}", f"PM{tag}")
    await survivor.order_from_his(f"HS{tag}", f"PS{tag}")
    await merged.book()
    await merged.query_worklist()
    await merged.his_says("ADT^A40^ADT_A39", "EVN|A40",
                          f"PID|1||HS{tag}^^^HIS^PI||{survivor.name[0]}^{survivor.name[1:]}", f"MRG|HM{tag}^^^HIS^PI")

    async def shows_the_survivor() -> bool:
        items = await merged.worklist_items()
        return len(items) == 1 and items[0].PatientID == survivor.patient_id

    await eventually(shows_the_survivor, "findscu answering the merged patient's exam with the surviving PatientID")


async def test_an_order_cancelled_after_check_in_leaves_every_service(site: Site, tmp_path: Path) -> None:
    """The desk cancels a booked, checked-in exam: the modality's worklist (DCMTK findscu) no longer has
    it, the appointment is cancelled (its slot free) and the queue entry leaves the hall screen."""
    await clear_of_local_midnight()
    dept = await set_up_department(site, uuid.uuid4().hex[:6].upper())
    j = Journey(site, dept, tmp_path)
    await j.register_by_api()
    await j.book()
    await j.check_in()
    await j.query_worklist()
    r = await j.api.post(f"/api/registration/orders/{j.accession}/cancel", headers=j.who("clerk"),
                         json={"reason": "患者取消检查"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    await eventually(lambda: now_true(site.log.has("order.cancelled", j.accession)), "order.cancelled on RabbitMQ")

    async def off_the_worklist() -> bool:
        return not await j.worklist_items()

    await eventually(off_the_worklist, "the step gone from the modality's worklist")
    await eventually(lambda: j.appointment_is("cancelled"), "the appointment cancelled")
    await eventually(lambda: j.entry_is("cancelled"), "the queue entry cancelled")
    again = await j.api.post(f"/api/registration/orders/{j.accession}/cancel", headers=j.who("clerk"),
                             json={"reason": "again"})
    assert again.status_code == 200
    assert site.log.types(j.accession).count("order.cancelled") == 1
    nobody = await j.api.post("/api/registration/orders/NO-SUCH-ORDER/cancel", headers=j.who("clerk"),
                              json={"reason": "x"})
    assert nobody.status_code == 404
    unreasoned = await j.api.post(f"/api/registration/orders/{j.accession}/cancel", headers=j.who("clerk"), json={})
    assert unreasoned.status_code == 422
