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
through its own API.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aio_pika
import httpx
import pydicom
import pytest
from critical_values.settings import Settings as CriticalSettings
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from imaging_common.allinone import build_platform
from imaging_common.auth import credentials as cred
from imaging_common.auth.testing import issue_test_token
from imaging_common.config import CommonSettings
from imaging_common.empi.identifiers import resident_check_char
from imaging_common.events.topology import exchange_name
from imaging_common.hl7 import Message, MessageService, MLLPServer
from imaging_common.testing import free_port, http_server
from playwright.async_api import async_playwright, expect
from print_scp import testkit as tk
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]
from registration.domain import staff
from reporting.settings import Settings as ReportingSettings
from websockets.asyncio.client import connect as ws_connect

T = TypeVar("T")
TZ = ZoneInfo("Asia/Shanghai")  # scheduling's default site timezone
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
FINDSCU = "/usr/bin/findscu"  # DCMTK's (pynetdicom installs another findscu earlier on PATH)
PASSWORD = "journey front desk 2026"
CV_IDENT = "urn:imaging:critical-values:notification"
expect.set_options(timeout=20_000)  # `make test` runs beside other suites on two cores


# ---- peers -----------------------------------------------------------------------------------------


@dataclass
class ClinicianSystem:
    """The hospital side: ORU^R01 over MLLP (ACK AA), FHIR REST for report Bundles and Communications."""

    hl7: list[Message] = field(default_factory=list)
    fhir: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, resource as posted)
    mllp_port: int = 0
    url: str = ""

    async def on_hl7(self, message: Message) -> str | None:
        self.hl7.append(message)
        return None

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def create(path: str, request: Request) -> JSONResponse:
            body = await request.json()
            rid = uuid.uuid4().hex[:12]
            self.fhir.append((path, {**body, "id": rid}))
            kind = body.get("resourceType", "Bundle")
            return JSONResponse({**body, "id": rid}, status_code=201, headers={"Location": f"{kind}/{rid}"})

        return app


@dataclass
class EventLog:
    """CloudEvents copied off the namespace's topic exchange by a queue of the test's own."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def about(self, *keys: str) -> list[dict[str, Any]]:
        return [e for e in self.events if any(k in json.dumps(e, ensure_ascii=False) for k in keys)]

    def types(self, *keys: str) -> list[str]:
        return [e["type"] for e in self.about(*keys)]


async def eventually(check: Callable[[], Awaitable[T]], what: str, within: float = 30.0) -> T:
    """Poll `check` until it returns something truthy (no fixed sleeps: a deadline instead)."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


async def run(*argv: str, timeout: float = 120) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{argv[0]} exit {proc.returncode}:\n{text}"
    return text


def resident_id() -> str:
    first = f"110105{random.randint(1950, 2000)}{random.randint(1, 12):02d}{random.randint(1, 28):02d}" \
            f"{random.randint(0, 999):03d}"
    return first + resident_check_char(first)


def unique_name() -> str:
    return random.choice("欧阳司马诸葛上官") + "".join(random.choice("霁翀珏璟斐翊琰玥瑾蓁骞弈晟昀") for _ in range(2))


@dataclass
class Platform:
    url: str
    app: Any
    settings: CommonSettings
    clinician: ClinicianSystem
    log: EventLog
    env: dict[str, str]

    def headers(self, *roles: str, username: str | None = None) -> dict[str, str]:
        name = username or f"e2e-{roles[0]}"
        token = issue_test_token(self.settings, roles=list(roles), username=name, display_name=name)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def platform(test_env: dict[str, str]) -> AsyncIterator[Platform]:
    clinician = ClinicianSystem()
    tag = uuid.uuid4().hex[:6]
    async with MLLPServer(MessageService(clinician.on_hl7, application="HIS", facility="WARD"), "127.0.0.1",
                          free_port()) as mllp, http_server(clinician.app()) as stub_url:
        clinician.mllp_port, clinician.url = mllp.port, stub_url
        receivers = [{"id": f"e2e-his-{tag}", "kind": "hl7", "name": "E2E HIS", "host": "127.0.0.1",
                      "port": mllp.port, "charset": "utf-8"},
                     {"id": f"e2e-emr-{tag}", "kind": "fhir", "name": "E2E EMR", "url": f"{stub_url}/report-fhir"}]
        settings_for = {
            # Receivers configured through settings; short polls so the journey is quick.
            "reporting": ReportingSettings(reporting_receivers=json.dumps(receivers), reporting_delivery_poll=0.2,
                                           reporting_delivery_retry_base=0.1, reporting_delivery_retry_max=0.5),
            "critical_values": CriticalSettings(critical_poll_seconds=0.1, critical_retry_seconds=0.2),
        }
        app = build_platform(settings_for=settings_for)
        settings = CommonSettings()
        log = EventLog()
        async with http_server(app) as url:
            connection = await aio_pika.connect_robust(settings.amqp_url)
            try:
                channel = await connection.channel()
                exchange = await channel.get_exchange(exchange_name(settings.namespace), ensure=True)
                queue = await channel.declare_queue(f"{settings.namespace}.e2e-spy-{tag}", exclusive=True,
                                                    auto_delete=True)
                await queue.bind(exchange, routing_key="#")

                async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                    async with message.process():
                        log.events.append(json.loads(message.body))

                await queue.consume(collect)
                yield Platform(url, app, settings, clinician, log, test_env)
            finally:
                await connection.close()
                # Receivers live in the shared test database: later reports must not queue to a gone stub.
                ops = {"Authorization": "Bearer " + issue_test_token(settings, roles=["admin"], username="e2e")}
                async with httpx.AsyncClient(base_url=url) as api:
                    for rec in receivers:
                        body = {k: v for k, v in rec.items() if k != "id"} | {"enabled": False}
                        r = await api.put(f"/api/reporting/receivers/{rec['id']}", json=body, headers=ops)
                        assert r.status_code == 200, r.text


# ---- the journey -----------------------------------------------------------------------------------


async def _clear_of_local_midnight(margin_minutes: int = 8) -> None:  # < the 600 s test timeout
    """The journey books a slot later today and queries "today's" worklist: started in the last
    minutes of the center's day it would straddle midnight, so wait for the new day instead."""
    now = datetime.now(TZ)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
    if midnight - now < timedelta(minutes=margin_minutes):
        await asyncio.sleep((midnight - now).total_seconds())


async def test_one_patient_end_to_end(platform: Platform, tmp_path: Path) -> None:
    await _clear_of_local_midnight()
    p = platform
    tag = uuid.uuid4().hex[:6].upper()
    department = f"呼吸内科{tag}"
    admin = p.headers("admin", username=f"e2e-admin-{tag}")
    async with httpx.AsyncClient(base_url=p.url, timeout=30) as api:
        # ---- 1. registration and order in the web UI (clerk created in the staff domain) ----
        reg_app = p.app.app_for("/api/registration")
        username = f"clerk{tag.lower()}"
        async with reg_app.state.ctx.pool.acquire() as conn:
            clerk = await staff.create_user(conn, username=username, roles=["clerk"], display_name="前台小李",
                                            password=PASSWORD)
        name, id_number = unique_name(), resident_id()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                               timeout=60_000)
            try:
                page = await browser.new_page()
                await page.goto(f"{p.url}/ui/registration/")
                await page.fill("#login-username", username)
                await page.fill("#login-password", PASSWORD)
                await page.fill("#login-totp", cred.totp_code(clerk.totp_secret, time.time()))
                await page.keyboard.press("Enter")
                await expect(page.locator("#main-view")).to_be_visible()
                await expect(page.locator("#whoami")).to_have_text("前台小李")
                await page.keyboard.press("F3")
                await page.fill("#reg-name", name)
                await page.fill("#reg-phone", "13912345678")
                await page.fill("#reg-id", id_number)
                await expect(page.locator("#reg-id-hint")).to_have_text("号码有效")
                if await page.locator("#reg-force-new").is_visible():  # a namesake from another test
                    await page.check("#reg-force-new")
                await page.keyboard.press("Control+Enter")
                await expect(page.locator("#tab-order")).to_be_visible()
                await page.select_option("#ord-item", ["1"])  # 胸部CT平扫 (CT-CHEST)
                await page.fill("#ord-dept", department)
                await page.fill("#ord-doctor", "李医生")
                await page.fill("#ord-diagnosis", "胸痛气促")
                await page.fill("#ord-purpose", "排除气胸")
                await page.keyboard.press("Control+Enter")
                await expect(page.locator("#print-form")).to_be_visible()
                accession = (await page.locator("#print-accession").inner_text()).strip()
            finally:
                await browser.close()
        assert accession
        order = (await api.get(f"/api/registration/orders/{accession}", headers=admin)).json()
        empi_id, order_id = order["empi_id"], order["order_id"]
        patient = (await api.get(f"/api/registration/patients/{empi_id}", headers=admin)).json()
        patient_id = patient["patient_id"]
        assert patient["name"] == name and order["ordering_department"] == department
        await eventually(lambda: _has(p.log, "order.created", accession), "order.created on RabbitMQ")
        assert "patient.registered" in p.log.types(empi_id)
        created = next(e for e in p.log.about(accession) if e["type"] == "order.created")
        study_uid = created["data"]["study_instance_uid"]
        assert created["data"]["items"][0]["code"] == "CT-CHEST" and created["data"]["patient"]["name"] == name

        # ---- 2. appointment: a room and the exam type set up by an admin, booked via the API ----
        room_id, station = f"E2ECT{tag}", f"CT{tag}"
        every_day = [{"weekday": d, "starts": "00:00", "ends": "23:59"} for d in range(1, 8)]
        r = await api.put(f"/api/scheduling/rooms/{room_id}", headers=admin, json={
            "id": room_id, "name": f"CT室{tag}", "modality": "CT", "campus": "main", "building": "A",
            "station_ae_title": station, "slice_minutes": 5, "sessions": every_day})
        assert r.status_code == 200, r.text
        r = await api.put("/api/scheduling/exam-types/CT-CHEST", headers=admin, json={
            "code": "CT-CHEST", "name": "胸部CT平扫", "modality": "CT", "body_part": "CHEST", "duration_minutes": 5})
        assert r.status_code == 200, r.text

        async def request_known() -> Any:
            r = await api.get("/api/scheduling/requests", params={"order_id": order_id}, headers=admin)
            return r.status_code == 200 and r.json()["data"]

        await eventually(request_known, "scheduling to learn the order from order.created")
        now = datetime.now(TZ)
        start = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
        start += timedelta(minutes=(-start.minute) % 5)
        booker = p.headers("clerk", username=f"e2e-booker-{tag}")
        r = await api.post("/api/scheduling/appointments", headers=booker, json={
            "order_id": order_id, "exam_code": "CT-CHEST", "room_id": room_id, "start": start.isoformat()})
        assert r.status_code == 201, r.text
        appointment = r.json()
        assert appointment["status"] == "booked"
        await eventually(lambda: _has(p.log, "appointment.booked", accession), "appointment.booked")

        # ---- 3. queue: set up, check in, call; the hall screen shows the call ----
        qid = f"e2e-q-{tag}"
        r = await api.put(f"/api/queue/queues/{qid}", headers=admin, json={"name": "CT", "ticket_prefix": "CT"})
        assert r.status_code == 200, r.text
        r = await api.put(f"/api/queue/rooms/{room_id}", headers=admin,
                          json={"name": f"CT室{tag}", "door_cap": 2, "queue_ids": [qid]})
        assert r.status_code == 200, r.text
        r = await api.post("/api/queue/placement-rules", headers=admin,
                           json={"queue_id": qid, "room_id": room_id, "rank": -1000})
        assert r.status_code == 201, r.text
        r = await api.put(f"/api/queue/screens/hall-{tag}", headers=admin, json={
            "kind": "hall", "title": "候诊大厅", "room_ids": [room_id], "on_time": "00:00", "off_time": "23:59"})
        assert r.status_code == 200, r.text
        screen = r.json()
        desk = p.headers("clerk", username=f"e2e-desk-{tag}")

        async def checked_in() -> Any:
            r = await api.post("/api/queue/check-ins", headers=desk, json={"kind": "barcode", "value": accession})
            if r.status_code == 201:
                return r.json()
            # the queue learns the appointment from appointment.booked: until then, not found / unplaced
            assert r.status_code in (404, 409), r.text
            return None

        arrival = (await eventually(checked_in, "check-in"))["data"][0]
        assert arrival["queue_id"] == qid
        ticket = arrival["ticket"]
        await eventually(lambda: _has(p.log, "patient.arrived", accession), "patient.arrived")
        await eventually(lambda: _appointment_status(api, appointment["id"], admin, "arrived"),
                         "the appointment marked arrived (scheduling consumed patient.arrived)")
        ws_url = p.url.replace("http://", "ws://") + f"/ui/queue/screens/hall-{tag}/ws?token={screen['token']}"
        async with ws_connect(ws_url) as ws:
            tech = p.headers("technologist", username=f"e2e-tech-{tag}")
            snapshot = await _screen_message(ws, "snapshot")
            assert snapshot["rooms"][0]["waiting"] == 1
            r = await api.post(f"/api/queue/rooms/{room_id}/call-next", headers=tech)
            assert r.status_code == 200, r.text
            assert r.json()["ticket"] == ticket
            update = await _screen_message(ws, "update")
            current = update["rooms"][0]["current"][0]
            assert current["state"] == "called" and current["ticket"] == ticket
            assert current["name"] != name and current["name"][0] == name[0]  # masked on a public screen
            assert not any(name in json.dumps(m, ensure_ascii=False) for m in (snapshot, update))
        entry = (await api.get(f"/api/queue/entries/{arrival['entry_id']}", headers=tech)).json()
        assert entry["state"] == "called"

        # ---- 4. the modality queries the worklist with DCMTK findscu ----
        wl_port = int(p.env["IMAGING_WORKLIST_PORT"])
        out = tmp_path / "mwl"

        async def on_worklist() -> list[pydicom.Dataset]:
            for f in out.glob("rsp*.dcm"):
                f.unlink()
            out.mkdir(exist_ok=True)
            await run(FINDSCU, "-W", "-aet", station, "-aec", "WORKLIST", "-X", "-od", str(out),
                      "-k", "0008,0005=ISO_IR 192", "-k", "PatientName", "-k", "PatientID", "-k", "PatientSex",
                      "-k", f"AccessionNumber={accession}", "-k", "StudyInstanceUID", "-k", "RequestedProcedureID",
                      "-k", f"(0040,0100)[0].ScheduledStationAETitle={station}",
                      "-k", "(0040,0100)[0].ScheduledProcedureStepStartDate", "-k", "(0040,0100)[0].Modality",
                      "-k", "(0040,0100)[0].ScheduledProcedureStepID",
                      "-k", "(0040,0100)[0].ScheduledProcedureStepStatus",
                      "127.0.0.1", str(wl_port))
            return [pydicom.dcmread(f) for f in sorted(out.glob("rsp*.dcm"))]

        [item] = await eventually(on_worklist, "the patient on the modality's worklist")
        assert item.PatientID == patient_id and name[0] in str(item.PatientName), item
        assert item.StudyInstanceUID == study_uid
        sps = item.ScheduledProcedureStepSequence[0]
        assert sps.Modality == "CT" and sps.ScheduledStationAETitle == station

        # ---- 5. MPPS IN PROGRESS then COMPLETED (pynetdicom, in a worker thread) ----
        mpps_uid = generate_uid()
        status = await asyncio.to_thread(_mpps_create, wl_port, mpps_uid, item, station)
        assert status == 0x0000
        await eventually(lambda: _has(p.log, "exam.started", accession), "exam.started")
        await eventually(lambda: _entry_state(api, arrival["entry_id"], tech, "in_exam"), "queue entry in exam")
        status = await asyncio.to_thread(_mpps_complete, wl_port, mpps_uid, station)
        assert status == 0x0000
        await eventually(lambda: _has(p.log, "exam.completed", accession), "exam.completed")
        mpps = (await api.get(f"/api/worklist/mpps/{mpps_uid}", headers=tech)).json()
        assert mpps["status"] == "COMPLETED" and accession in mpps["accession_numbers"]
        steps = (await api.get("/api/worklist/items", params={"accession_number": accession,
                                                              "status": ["completed"]}, headers=tech)).json()
        assert len(steps["data"]) == 1, steps
        await eventually(lambda: _entry_state(api, arrival["entry_id"], tech, "done"), "queue entry done")
        await eventually(lambda: _appointment_status(api, appointment["id"], admin, "fulfilled"),
                         "the appointment fulfilled (scheduling consumed exam.started/exam.completed)")

        # ---- 6. DCMTK's print client prints a film with PID/ACC burned in; OCR matches it ----
        img = tk.burn_text(tk.anatomy(512, 3), [f"PID: {patient_id}", f"ACC: {accession}"],
                           font_path=tk.FONTS[0], font_px=22)
        image = tk.modality_image_file(tmp_path / "ct.dcm", img)
        cfg = tk.dcmtk_print_config(tmp_path / "print", port=int(p.env["IMAGING_PRINT_PORT"]))
        await run("dcmpsprt", "-c", cfg, "-p", "PLATFORM", image)
        [stored_print] = list((tmp_path / "print" / "db").glob("SP_*.dcm"))
        log = await run("dcmprscu", "-c", cfg, "-p", "PLATFORM", "-d", str(stored_print))
        assert "N-ACTION RSP" in log and "N-EVENT-REPORT RQ" in log

        async def film_matched() -> Any:
            r = await api.get("/api/print/films", params={"accession_number": accession}, headers=tech)
            assert r.status_code == 200, r.text
            films = [f for f in r.json()["data"] if f["match_status"] == "matched"]
            return films

        [film] = await eventually(film_matched, "the film matched to the patient", within=60)
        assert film["patient_id"] == patient_id and film["match_method"] == "ocr", film
        assert film["calling_ae_title"] == "DCMPRSCU" and film["image_count"] == 1
        await eventually(lambda: _has(p.log, "film.printed", film["id"]), "film.printed")
        await eventually(lambda: _has(p.log, "film.matched", accession), "film.matched")

        # ---- 7. report: draft (the department's clinician system is set up first: the critical-values
        # service picks the receivers when the value is raised) ----
        receiver = f"e2e-ward-{tag}"
        r = await api.put(f"/api/critical-values/receivers/{receiver}", headers=admin, json={
            "name": "呼吸科临床系统", "department": department, "hl7_host": "127.0.0.1",
            "hl7_port": p.clinician.mllp_port, "fhir_base_url": f"{p.clinician.url}/cv-fhir"})
        assert r.status_code == 200, r.text
        # report with a critical finding, preliminary, final (signed) ----
        rad = p.headers("radiologist", username=f"e2e-rad-{tag}")
        senior = p.headers("senior-radiologist", username=f"e2e-senior-{tag}")

        async def reportable() -> Any:
            r = await api.get(f"/api/reporting/exams/{accession}", headers=rad)
            return r.status_code == 200 and "save" in r.json().get("allowed_actions", []) and r.json()

        await eventually(reportable, "the exam on the reporting worklist")
        content = {"findings": "右侧见张力性气胸，纵隔左移，右肺压缩约70%。", "impression": "右侧张力性气胸。"}
        steps = [("save", rad, {"content": content}), ("preliminary", rad, {}), ("final", senior, {})]
        report: dict[str, Any] = {}
        for action, who, body in steps:
            r = await api.post(f"/api/reporting/exams/{accession}/report/{action}", headers=who, json=body)
            assert r.status_code in (200, 201), (action, r.text)
            report = r.json()
        assert report["state"] == "final"
        report_id = report["report_id"]
        exam = (await api.get(f"/api/reporting/exams/{accession}", headers=rad)).json()
        assert exam["report"]["state"] == "final" and exam["report"]["critical"] is True, exam
        verified = (await api.get(f"/api/reporting/reports/{report_id}/verify", headers=senior)).json()
        assert verified["valid"] is True and verified["outcome"] == "valid" and verified["kind"] == "final", verified
        await eventually(lambda: _has(p.log, "report.signed", accession), "report.signed")
        await eventually(lambda: _has(p.log, "critical.raised", accession), "critical.raised")

        def report_orus() -> list[Message]:
            return [m for m in p.clinician.hl7 if accession in str(m) and "critical_id=" not in m.field("NTE", 3)]

        await eventually(lambda: _async(len({m.field("OBR", 25) for m in report_orus()} & {"P", "F"}) == 2),
                         "the report's ORU^R01 (preliminary and final) at the HIS")
        await eventually(lambda: _async([b for path, b in p.clinician.fhir
                                         if path.startswith("report-fhir") and accession in json.dumps(b)]),
                         "the report's FHIR Bundle at the EMR")

        # ---- 8. critical value: notified over HL7 and FHIR, acknowledged by the clinician system ----

        async def critical_value() -> Any:
            r = await api.get("/api/critical-values/critical-values",
                              params={"accession_number": accession, "state": "all"}, headers=senior)
            return r.json()["data"]

        [cv] = await eventually(critical_value, "the critical value raised from the report")
        critical_id = cv["critical_id"]
        if cv["state"] == "awaiting-confirmation":
            r = await api.post(f"/api/critical-values/critical-values/{critical_id}/confirm", headers=senior, json={})
            assert r.status_code == 200, r.text

        def communications() -> list[dict[str, Any]]:
            return [b for path, b in p.clinician.fhir if path.startswith("cv-fhir") and
                    b.get("resourceType") == "Communication" and critical_id in json.dumps(b)]

        [comm] = await eventually(lambda: _async(communications()), "FHIR Communication at the clinician system")
        assert comm["priority"] == "stat" and any(i["system"] == CV_IDENT for i in comm["identifier"])
        [oru] = await eventually(lambda: _async([m for m in p.clinician.hl7
                                                 if f"critical_id={critical_id};" in m.field("NTE", 3)]),
                                 "HL7 ORU^R01 at the clinician system")
        assert oru.type[:2] == ("ORU", "R01") and oru.field("MSH", 15) == "AL"
        await eventually(lambda: _has(p.log, "critical.notified", critical_id), "critical.notified")
        ack = {"resourceType": "Communication", "status": "completed",
               "inResponseTo": [{"reference": f"Communication/{comm['id']}"}],
               "sender": {"identifier": {"value": "D001"}, "display": "李医生"},
               "payload": [{"contentString": "已行胸腔闭式引流"}]}
        r = await api.post("/api/critical-values/fhir/Communication", json=ack,
                           headers=p.headers("clinician", username=f"e2e-his-{tag}"))
        assert r.status_code == 201, r.text
        value = (await api.get(f"/api/critical-values/critical-values/{critical_id}", headers=senior)).json()
        assert value["state"] == "closed" and value["outcome"] == "acknowledged"
        assert value["acknowledged_by"] == "李医生" and value["action_taken"] == "已行胸腔闭式引流"
        await eventually(lambda: _has(p.log, "critical.closed", critical_id), "critical.closed")

        # ---- every hop went through RabbitMQ ----
        seen = set(p.log.types(accession, empi_id, critical_id, film["id"]))
        expected = {"patient.registered", "order.created", "appointment.booked", "patient.arrived", "exam.started",
                    "exam.completed", "film.printed", "film.matched", "report.signed", "critical.raised",
                    "critical.notified", "critical.acknowledged", "critical.closed"}
        assert expected <= seen, f"missing on the bus: {sorted(expected - seen)}"


# ---- helpers ---------------------------------------------------------------------------------------


async def _async(value: T) -> T:
    return value


async def _has(log: EventLog, event_type: str, key: str) -> bool:
    return event_type in log.types(key)


async def _screen_message(ws: Any, kind: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        text = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
        msg = json.loads(text)
        for m in (msg["messages"] if msg["type"] == "batch" else [msg]):
            if m["type"] == kind:
                return m


async def _entry_state(api: httpx.AsyncClient, entry_id: str, headers: dict[str, str], state: str) -> bool:
    r = await api.get(f"/api/queue/entries/{entry_id}", headers=headers)
    return r.status_code == 200 and r.json()["state"] == state


async def _appointment_status(api: httpx.AsyncClient, appointment_id: str, headers: dict[str, str],
                              status: str) -> bool:
    r = await api.get(f"/api/scheduling/appointments/{appointment_id}", headers=headers)
    return r.status_code == 200 and r.json()["status"] == status


def _modality_ae(station: str) -> AE:
    ae = AE(ae_title=station)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(ModalityPerformedProcedureStep)
    return ae


def _mpps_create(port: int, uid: str, item: pydicom.Dataset, station: str) -> int:
    now = datetime.now(TZ)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    step = Dataset()
    step.StudyInstanceUID = item.StudyInstanceUID
    step.AccessionNumber = item.AccessionNumber
    step.RequestedProcedureID = item.get("RequestedProcedureID", "")
    step.ScheduledProcedureStepID = item.ScheduledProcedureStepSequence[0].get("ScheduledProcedureStepID", "")
    step.ScheduledProcedureStepDescription = ""
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientName = item.PatientName
    ds.PatientID = item.PatientID
    ds.PatientBirthDate = ""
    ds.PatientSex = item.get("PatientSex", "")
    ds.PerformedProcedureStepID = "PPS" + uid[-8:]
    ds.PerformedStationAETitle = station
    ds.PerformedStationName = station
    ds.PerformedLocation = ""
    ds.PerformedProcedureStepStartDate = now.strftime("%Y%m%d")
    ds.PerformedProcedureStepStartTime = now.strftime("%H%M%S")
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepDescription = "胸部CT平扫"
    ds.PerformedProcedureTypeDescription = ""
    ds.ProcedureCodeSequence = []
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.Modality = "CT"
    ds.StudyID = ""
    ds.PerformedProtocolCodeSequence = []
    ds.PerformedSeriesSequence = []
    assoc = _modality_ae(station).associate("127.0.0.1", port, ae_title="WORKLIST")
    assert assoc.is_established, "worklist SCP refused the MPPS association"
    try:
        status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid)
        return int(status.Status)
    finally:
        assoc.release()


def _mpps_complete(port: int, uid: str, station: str) -> int:
    now = datetime.now(TZ)
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    ds.PerformedProcedureStepEndDate = now.strftime("%Y%m%d")
    ds.PerformedProcedureStepEndTime = now.strftime("%H%M%S")
    series = Dataset()
    series.SeriesInstanceUID = generate_uid()
    series.PerformingPhysicianName = ""
    series.ProtocolName = "CHEST"
    series.OperatorsName = ""
    series.SeriesDescription = ""
    series.RetrieveAETitle = ""
    series.ReferencedImageSequence = []
    series.ReferencedNonImageCompositeSOPInstanceSequence = []
    ds.PerformedSeriesSequence = [series]
    assoc = _modality_ae(station).associate("127.0.0.1", port, ae_title="WORKLIST")
    assert assoc.is_established, "worklist SCP refused the MPPS association"
    try:
        status, _ = assoc.send_n_set(ds, ModalityPerformedProcedureStep, uid)
        return int(status.Status)
    finally:
        assoc.release()
