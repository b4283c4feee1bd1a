"""One patient's path through the platform, as steps over the real protocols.

Used three ways: the end-to-end test (all-in-one process, registration in Chromium), the fault tests
(one process per service, a service killed between steps) and the day's-load bench (thousands of
patients at once, registration through the API the web page uses). A `Site` says where the platform
is reachable; a `Department` is the room, exam type, queue, screen and clinician system set up for a
run; a `Journey` holds one patient's identifiers as the steps learn them.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from imaging_common.config import CommonSettings
from imaging_common.empi.identifiers import resident_check_char
from imaging_common.events.topology import exchange_name
from imaging_common.hl7 import Message, MessageService, MLLPServer
from imaging_common.hl7.mllp import MLLPClient
from imaging_testing import eventually, free_port, http_server, mpps
from imaging_testing import print_kit as tk
from imaging_testing.auth import issue_test_token
from imaging_testing.browser import desk_sign_in
from imaging_testing.fhir import r4b_resource
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]

T = TypeVar("T")
TZ = ZoneInfo("Asia/Shanghai")  # scheduling's default site timezone
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
FINDSCU = "/usr/bin/findscu"  # DCMTK's (pynetdicom installs another findscu earlier on PATH)
CV_IDENT = "urn:imaging:critical-values:notification"
CHEST_CT = {"code": "CT-CHEST", "name": "胸部CT平扫", "modality": "CT", "body_part": "CHEST"}
# What a patient's whole journey puts on the bus (keyed by accession, EMPI id, critical id or film id).
JOURNEY_EVENTS = {"patient.registered", "order.created", "appointment.booked", "patient.arrived", "exam.started",
                  "exam.completed", "film.printed", "film.matched", "report.signed", "critical.raised",
                  "critical.notified", "critical.acknowledged", "critical.closed"}


# ---- peers -----------------------------------------------------------------------------------------


@dataclass
class ClinicianSystem:
    """The hospital side: ORU^R01 over MLLP (ACK AA), FHIR REST for report Bundles and Communications
    (each parsed with the R4B models, refused 400 when not valid)."""

    hl7: list[Message] = field(default_factory=list)
    fhir: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, resource as posted)
    mllp_port: int = 0
    url: str = ""
    # A fault test may hold back the ACK of chosen messages (the sender then waits, as on a slow HIS).
    hold_ack: Callable[[Message], asyncio.Event | None] | None = None

    async def on_hl7(self, message: Message) -> str | None:
        self.hl7.append(message)
        gate = self.hold_ack(message) if self.hold_ack else None
        if gate is not None:
            await gate.wait()
        return None

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def create(path: str, request: Request) -> JSONResponse:
            body = await request.json()
            try:  # a real EMR refuses what is not FHIR R4: parsed with the R4B models
                r4b_resource(body)
            except (AssertionError, ValueError) as exc:
                return JSONResponse({"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "invalid", "diagnostics": str(exc)[:500]}]}, status_code=400)
            rid = uuid.uuid4().hex[:12]
            self.fhir.append((path, {**body, "id": rid}))
            kind = body.get("resourceType", "Bundle")
            return JSONResponse({**body, "id": rid}, status_code=201, headers={"Location": f"{kind}/{rid}"})

        return app

    def report_receivers(self, tag: str) -> list[dict[str, Any]]:
        """Reporting's receivers pointing here (IMAGING_REPORTING_RECEIVERS / ReportingSettings)."""
        return [{"id": f"e2e-his-{tag}", "kind": "hl7", "name": "E2E HIS", "host": "127.0.0.1",
                 "port": self.mllp_port, "charset": "utf-8"},
                {"id": f"e2e-emr-{tag}", "kind": "fhir", "name": "E2E EMR", "url": f"{self.url}/report-fhir"}]


@contextlib.asynccontextmanager
async def clinician_system() -> AsyncIterator[ClinicianSystem]:
    clinician = ClinicianSystem()
    async with MLLPServer(MessageService(clinician.on_hl7, application="HIS", facility="WARD"), "127.0.0.1",
                          free_port()) as mllp, http_server(clinician.app()) as stub_url:
        clinician.mllp_port, clinician.url = mllp.port, stub_url
        yield clinician


@dataclass
class EventLog:
    """CloudEvents copied off the namespace's topic exchange by a queue of the test's own."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def about(self, *keys: str) -> list[dict[str, Any]]:
        return [e for e in self.events if any(k in json.dumps(e, ensure_ascii=False) for k in keys)]

    def types(self, *keys: str) -> list[str]:
        return [e["type"] for e in self.about(*keys)]

    def has(self, event_type: str, key: str) -> bool:
        return event_type in self.types(key)


@contextlib.asynccontextmanager
async def spy_on_bus(settings: CommonSettings) -> AsyncIterator[EventLog]:
    log = EventLog()
    connection = await aio_pika.connect_robust(settings.amqp_url, reconnect_interval=0.5)
    queue: aio_pika.abc.AbstractRobustQueue | None = None
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(exchange_name(settings.namespace), aio_pika.ExchangeType.TOPIC,
                                                  durable=True)
        # Durable, so events published while the spy reconnects after a broker restart wait for it;
        # x-expires removes the queue should the test die before deleting it.
        queue = await channel.declare_queue(f"{settings.namespace}.e2e-spy-{uuid.uuid4().hex[:6]}", durable=True,
                                            arguments={"x-expires": 600_000})
        await queue.bind(exchange, routing_key="#")

        async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                log.events.append(json.loads(message.body))

        tag = await queue.consume(collect)
        yield log
        await queue.cancel(tag)
    finally:
        if queue is not None:
            with contextlib.suppress(Exception):
                await queue.delete(if_unused=False, if_empty=False)
        await connection.close()


async def now_true(value: T) -> T:
    return value


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


async def clear_of_local_midnight(margin_minutes: int = 8) -> None:
    """A journey books a slot later today and queries "today's" worklist: started in the last
    minutes of the center's day it would straddle midnight, so wait for the new day instead."""
    now = datetime.now(TZ)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
    if midnight - now < timedelta(minutes=margin_minutes):
        await asyncio.sleep((midnight - now).total_seconds())


# ---- where the platform is -------------------------------------------------------------------------


@dataclass
class Site:
    api: httpx.AsyncClient  # base URL whose /api/<prefix> reaches each service (a gateway or all-in-one)
    settings: CommonSettings  # the platform's: tokens are issued with its key, namespace and Redis
    worklist_port: int
    print_port: int
    clinician: ClinicianSystem
    log: EventLog
    ui_url: Callable[[str], str]  # prefix -> base URL of that service's pages (Chromium, WebSockets)
    mllp_port: int = 0  # registration's HIS feed

    def headers(self, *roles: str, username: str | None = None) -> dict[str, str]:
        name = username or f"e2e-{roles[0]}"
        token = issue_test_token(self.settings, roles=list(roles), username=name, display_name=name)
        return {"Authorization": f"Bearer {token}"}


@dataclass
class Department:
    """A room with its AE title, the chest CT exam type, a queue and hall screen, a clinician system."""

    tag: str
    name: str
    room_id: str
    station: str
    queue_id: str
    screen_id: str
    screen_token: str


# The journey's steps in order: Journey methods that `steps` runs from one to another.
STEPS = ("register_by_api", "order_on_bus", "book", "check_in", "call", "query_worklist", "start_exam",
         "complete_exam", "print_film", "film_matched", "report", "report_delivered", "critical_notified",
         "acknowledge_critical")


async def steps(j: Journey, first: str, last: str) -> None:
    """Run the journey's steps from `first` to `last`, inclusive."""
    for name in STEPS[STEPS.index(first):STEPS.index(last) + 1]:
        result = await getattr(j, name)()
        if name == "call":
            assert result["ticket"] == j.ticket, result


async def set_up_department(site: Site, tag: str, *, door_cap: int = 2) -> Department:
    api, admin = site.api, site.headers("admin", username=f"e2e-admin-{tag}")
    dept = Department(tag=tag, name=f"呼吸内科{tag}", room_id=f"E2ECT{tag}", station=f"CT{tag}"[:16],
                      queue_id=f"e2e-q-{tag}", screen_id=f"hall-{tag}", screen_token="")
    every_day = [{"weekday": d, "starts": "00:00", "ends": "23:59"} for d in range(1, 8)]
    r = await api.put(f"/api/scheduling/rooms/{dept.room_id}", headers=admin, json={
        "id": dept.room_id, "name": f"CT室{tag}", "modality": "CT", "campus": "main", "building": "A",
        "station_ae_title": dept.station, "slice_minutes": 5, "sessions": every_day})
    assert r.status_code == 200, r.text
    r = await api.put("/api/scheduling/exam-types/CT-CHEST", headers=admin, json={
        "code": "CT-CHEST", "name": "胸部CT平扫", "modality": "CT", "body_part": "CHEST", "duration_minutes": 5})
    assert r.status_code == 200, r.text
    r = await api.put(f"/api/queue/queues/{dept.queue_id}", headers=admin, json={"name": "CT", "ticket_prefix": "CT"})
    assert r.status_code == 200, r.text
    r = await api.put(f"/api/queue/rooms/{dept.room_id}", headers=admin,
                      json={"name": f"CT室{tag}", "door_cap": door_cap, "queue_ids": [dept.queue_id]})
    assert r.status_code == 200, r.text
    r = await api.post("/api/queue/placement-rules", headers=admin,
                       json={"queue_id": dept.queue_id, "room_id": dept.room_id, "rank": -1000})
    assert r.status_code == 201, r.text
    r = await api.put(f"/api/queue/screens/{dept.screen_id}", headers=admin, json={
        "kind": "hall", "title": "候诊大厅", "room_ids": [dept.room_id], "on_time": "00:00", "off_time": "23:59"})
    assert r.status_code == 200, r.text
    dept.screen_token = r.json()["token"]
    # The department's clinician system: the critical-values service picks receivers when a value is raised.
    r = await api.put(f"/api/critical-values/receivers/e2e-ward-{tag}", headers=admin, json={
        "name": "呼吸科临床系统", "department": dept.name, "hl7_host": "127.0.0.1",
        "hl7_port": site.clinician.mllp_port, "fhir_base_url": f"{site.clinician.url}/cv-fhir",
        "fhir_client": f"e2e-his-{tag}"})  # the account the clinician system acknowledges with (FHIR)
    assert r.status_code == 200, r.text
    return dept


async def create_clerk(site: Site, username: str, display_name: str) -> dict[str, Any]:
    """A front-desk account made by an admin through the API: returns its one-time password and TOTP secret."""
    r = await site.api.post("/api/registration/auth/users", headers=site.headers("admin", username="e2e-staff-admin"),
                            json={"username": username, "roles": ["clerk"], "display_name": display_name})
    assert r.status_code == 201, r.text
    return r.json()


# ---- one patient -----------------------------------------------------------------------------------


@dataclass
class Journey:
    site: Site
    dept: Department
    workdir: Path
    name: str = field(default_factory=unique_name)
    id_number: str = field(default_factory=resident_id)
    accession: str = ""
    empi_id: str = ""
    order_id: str = ""
    patient_id: str = ""
    study_uid: str = ""
    appointment_id: str = ""
    entry_id: str = ""
    ticket: str = ""
    worklist_item: pydicom.Dataset | None = None
    mpps_uid: str = ""
    film_id: str = ""
    print_log: str = ""  # dcmprscu's debug log of the last film printed
    film_reviewed: bool = False  # OCR was not sure: the technologist attached the film from the review list
    report_id: str = ""
    critical_id: str = ""
    communication_id: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds

    @property
    def api(self) -> httpx.AsyncClient:
        return self.site.api

    def who(self, role: str) -> dict[str, str]:
        return self.site.headers(role, username=f"e2e-{role}-{self.dept.tag}")

    @contextlib.asynccontextmanager
    async def timed(self, step: str) -> AsyncIterator[None]:
        started = time.perf_counter()
        yield
        self.timings[step] = time.perf_counter() - started

    # -- 1. registration and order --

    async def register_in_browser(self, page: Any) -> None:
        """The front desk in Chromium (a Playwright page): login with TOTP, register (F3), order."""
        from playwright.async_api import expect

        tag = self.dept.tag
        username, password = f"clerk{tag.lower()}", None
        clerk = await create_clerk(self.site, username, "前台小李")
        password, secret = clerk["password"], clerk["totp_secret"]
        await desk_sign_in(page, f"{self.site.ui_url('registration')}/ui/registration/", username, password, secret)
        await expect(page.locator("#whoami")).to_have_text("前台小李")
        await page.keyboard.press("F3")
        await page.fill("#reg-name", self.name)
        await page.fill("#reg-phone", "13912345678")
        await page.fill("#reg-id", self.id_number)
        await expect(page.locator("#reg-id-hint")).to_have_text("号码有效")
        if await page.locator("#reg-force-new").is_visible():  # a namesake from another test
            await page.check("#reg-force-new")
        await page.keyboard.press("Control+Enter")
        await expect(page.locator("#tab-order")).to_be_visible()
        await page.select_option("#ord-item", ["1"])  # 胸部CT平扫 (CT-CHEST)
        await page.fill("#ord-dept", self.dept.name)
        await page.fill("#ord-doctor", "李医生")
        await page.fill("#ord-diagnosis", "胸痛气促")
        await page.fill("#ord-purpose", "排除气胸")
        await page.keyboard.press("Control+Enter")
        await expect(page.locator("#print-form")).to_be_visible()
        self.accession = (await page.locator("#print-accession").inner_text()).strip()
        assert self.accession
        await self._learn_order()

    async def order_from_his(self, his_id: str, placer: str) -> None:
        """The HIS registers the patient (ADT^A04) and orders a chest CT for them (ORM^O01 NW), over MLLP."""
        family, given = self.name[0], self.name[1:]
        pid = f"PID|1||{his_id}^^^HIS^PI~{self.id_number}^^^CHN^NNCHN||{family}^{given}||19800101|M"
        await self.his_says("ADT^A04^ADT_A01", "EVN|A04", pid, "PV1|1|O")
        await self.his_says("ORM^O01^ORM_O01", pid, "PV1|1|O", f"ORC|NW|{placer}|||||||||||||||^{self.dept.name}",
                            "OBR|1|||CT-CHEST^胸部CT平扫" + "|" * 20 + "CT")
        r = await self.api.get("/api/registration/orders", params={"limit": 200}, headers=self.who("admin"))
        self.accession = next(o["accession_number"] for o in r.json()["data"] if o["placer_order_number"] == placer)
        await self._learn_order()
        await self.order_on_bus()

    async def his_says(self, kind: str, *segments: str) -> Message:
        head = (f"MSH|^~\\&|HIS|HOSP|RIS|IMG|20261207083000||{kind}|{uuid.uuid4().hex[:12]}|P|2.5||||||"
                "UNICODE UTF-8")
        async with MLLPClient("127.0.0.1", self.site.mllp_port, timeout=20) as client:
            ack = Message.parse((await client.send(("\r".join([head, *segments]) + "\r").encode())).decode())
        assert ack.field("MSA", 1) == "AA", ack.to_er7()
        return ack

    async def register_by_api(self, *, after_order: Callable[[], Awaitable[None]] | None = None) -> None:
        """What the registration page posts: the patient (EMPI match or new), then the order.

        `after_order` runs the moment the order is committed (a fault test kills registration there)."""
        desk = self.who("clerk")
        async with self.timed("register"):
            r = await self.api.post("/api/registration/patients", headers=desk, json={
                "name": self.name, "phone": "13912345678", "verified": True, "force_new": True,
                "identifiers": [{"type": "resident-id", "value": self.id_number}]})
            assert r.status_code == 201, r.text
            self.empi_id = r.json()["patient"]["empi_id"]
            r = await self.api.post("/api/registration/orders", headers=desk, json={
                "empi_id": self.empi_id, "ordering_department": self.dept.name, "ordering_doctor": "李医生",
                "clinical_diagnosis": "胸痛气促", "purpose": "排除气胸", "items": [CHEST_CT]})
            assert r.status_code == 201, r.text
            self.accession = r.json()["accession_number"]
        if after_order is not None:
            await after_order()
        await self._learn_order()

    async def _learn_order(self) -> None:
        admin = self.who("admin")
        order = (await self.api.get(f"/api/registration/orders/{self.accession}", headers=admin)).json()
        self.empi_id, self.order_id = order["empi_id"], order["order_id"]
        patient = (await self.api.get(f"/api/registration/patients/{self.empi_id}", headers=admin)).json()
        self.patient_id = patient["patient_id"]
        assert patient["name"] == self.name and order["ordering_department"] == self.dept.name

    async def order_on_bus(self) -> None:
        log = self.site.log
        await eventually(lambda: now_true(log.has("order.created", self.accession)), "order.created on RabbitMQ")
        assert "patient.registered" in log.types(self.empi_id)
        created = next(e for e in log.about(self.accession) if e["type"] == "order.created")
        self.study_uid = created["data"]["study_instance_uid"]
        assert created["data"]["items"][0]["code"] == "CT-CHEST" and created["data"]["patient"]["name"] == self.name

    # -- 2. appointment --

    async def book(self, start: datetime | None = None) -> None:
        admin = self.who("admin")

        async def request_known() -> Any:
            r = await self.api.get("/api/scheduling/requests", params={"order_id": self.order_id}, headers=admin)
            return r.status_code == 200 and r.json()["data"]

        await eventually(request_known, "scheduling to learn the order from order.created")
        if start is None:
            now = datetime.now(TZ)
            start = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
            start += timedelta(minutes=(-start.minute) % 5)
        async with self.timed("book"):
            r = await self.api.post("/api/scheduling/appointments", headers=self.who("clerk"), json={
                "order_id": self.order_id, "exam_code": "CT-CHEST", "room_id": self.dept.room_id,
                "start": start.isoformat()})
        assert r.status_code == 201, r.text
        appointment = r.json()
        assert appointment["status"] == "booked"
        self.appointment_id = appointment["id"]
        await eventually(lambda: now_true(self.site.log.has("appointment.booked", self.accession)),
                         "appointment.booked")

    # -- 3. queue --

    async def check_in(self) -> None:
        desk = self.who("clerk")

        async def checked_in() -> Any:
            r = await self.api.post("/api/queue/check-ins", headers=desk,
                                    json={"kind": "barcode", "value": self.accession})
            if r.status_code == 201:
                return r.json()
            # the queue learns the appointment from appointment.booked: until then, not found / unplaced
            assert r.status_code in (404, 409), r.text
            return None

        started = time.perf_counter()
        arrival = (await eventually(checked_in, "check-in"))["data"][0]
        self.timings["check_in"] = time.perf_counter() - started
        assert arrival["queue_id"] == self.dept.queue_id
        self.ticket, self.entry_id = arrival["ticket"], arrival["entry_id"]
        await eventually(lambda: now_true(self.site.log.has("patient.arrived", self.accession)), "patient.arrived")
        await eventually(lambda: self.appointment_is("arrived"),
                         "the appointment marked arrived (scheduling consumed patient.arrived)")

    async def call(self) -> dict[str, Any]:
        """Call the next patient into the room; returns the called entry."""
        async with self.timed("call"):
            r = await self.api.post(f"/api/queue/rooms/{self.dept.room_id}/call-next", headers=self.who("technologist"))
        assert r.status_code == 200, r.text
        return r.json()

    def screen_ws_url(self) -> str:
        base = self.site.ui_url("queue").replace("http://", "ws://")
        return f"{base}/ui/queue/screens/{self.dept.screen_id}/ws?token={self.dept.screen_token}"

    # -- 4. worklist (DCMTK findscu) --

    async def worklist_items(self) -> list[pydicom.Dataset]:
        """What DCMTK findscu gets for this accession at the test's station."""
        out = self.workdir / f"mwl-{self.accession}"
        station = self.dept.station
        for f in out.glob("rsp*.dcm"):
            f.unlink()
        out.mkdir(parents=True, exist_ok=True)
        await run(FINDSCU, "-W", "-aet", station, "-aec", "WORKLIST", "-X", "-od", str(out),
                  "-k", "0008,0005=ISO_IR 192", "-k", "PatientName", "-k", "PatientID", "-k", "PatientSex",
                  "-k", f"AccessionNumber={self.accession}", "-k", "StudyInstanceUID",
                  "-k", "RequestedProcedureID", "-k", f"(0040,0100)[0].ScheduledStationAETitle={station}",
                  "-k", "(0040,0100)[0].ScheduledProcedureStepStartDate", "-k", "(0040,0100)[0].Modality",
                  "-k", "(0040,0100)[0].ScheduledProcedureStepID",
                  "-k", "(0040,0100)[0].ScheduledProcedureStepStatus",
                  "127.0.0.1", str(self.site.worklist_port))
        return [pydicom.dcmread(f) for f in sorted(out.glob("rsp*.dcm"))]

    async def query_worklist(self) -> None:
        station = self.dept.station
        started = time.perf_counter()
        [item] = await eventually(self.worklist_items, "the patient on the modality's worklist")
        self.timings["worklist"] = time.perf_counter() - started
        assert item.PatientID == self.patient_id and self.name[0] in str(item.PatientName), item
        if self.study_uid:
            assert item.StudyInstanceUID == self.study_uid
        sps = item.ScheduledProcedureStepSequence[0]
        assert sps.Modality == "CT" and sps.ScheduledStationAETitle == station
        self.worklist_item = item

    # -- 5. MPPS --

    async def start_exam(self) -> None:
        assert self.worklist_item is not None
        self.mpps_uid = self.mpps_uid or generate_uid()
        async with self.timed("mpps_in_progress"):
            status = await asyncio.to_thread(mpps_create, self.site.worklist_port, self.mpps_uid, self.worklist_item,
                                             self.dept.station)
        assert status == 0x0000, hex(status)
        await eventually(lambda: now_true(self.site.log.has("exam.started", self.accession)), "exam.started")
        await eventually(lambda: self.entry_is("in_exam"), "queue entry in exam")

    async def complete_exam(self) -> None:
        async with self.timed("mpps_completed"):
            status = await asyncio.to_thread(mpps_complete, self.site.worklist_port, self.mpps_uid, self.dept.station)
        assert status == 0x0000, hex(status)
        await eventually(lambda: now_true(self.site.log.has("exam.completed", self.accession)), "exam.completed")
        tech = self.who("technologist")
        mpps = (await self.api.get(f"/api/worklist/mpps/{self.mpps_uid}", headers=tech)).json()
        assert mpps["status"] == "COMPLETED" and self.accession in mpps["accession_numbers"]
        steps = (await self.api.get("/api/worklist/items", params={"accession_number": self.accession,
                                                                   "status": ["completed"]}, headers=tech)).json()
        assert len(steps["data"]) == 1, steps
        await eventually(lambda: self.entry_is("done"), "queue entry done")
        await eventually(lambda: self.appointment_is("fulfilled"),
                         "the appointment fulfilled (scheduling consumed exam.started/exam.completed)")

    # -- 6. film: DCMTK's print client, PID/ACC burned in, matched by OCR --

    def film_image(self, size: int = 512) -> str:
        img = tk.burn_text(tk.anatomy(size, 3), [f"PID: {self.patient_id}", f"ACC: {self.accession}"],
                           font_path=tk.FONTS[0], font_px=22 * size // 512)
        return tk.modality_image_file(self.workdir / f"ct-{self.accession}-{size}.dcm", img)

    async def print_film(self, *, port: int | None = None, size: int = 512) -> str:
        """Print one film with dcmprscu; returns DCMTK's log (raises if the print client failed)."""
        folder = self.workdir / f"print-{self.accession}-{uuid.uuid4().hex[:4]}"
        cfg = tk.dcmtk_print_config(folder, port=port or self.site.print_port)
        image = self.film_image(size)
        await run("dcmpsprt", "-c", cfg, "-p", "PLATFORM", image)
        [stored_print] = list((folder / "db").glob("SP_*.dcm"))
        async with self.timed("print"):
            log = await run("dcmprscu", "-c", cfg, "-p", "PLATFORM", "-d", str(stored_print))
        assert "N-ACTION RSP" in log and "N-EVENT-REPORT RQ" in log
        self.print_log = log
        return log

    async def films(self) -> list[dict[str, Any]]:
        r = await self.api.get("/api/print/films", params={"accession_number": self.accession},
                               headers=self.who("technologist"))
        assert r.status_code == 200, r.text
        return r.json()["data"]

    async def film_matched(self, within: float = 60) -> dict[str, Any]:
        """The film reaches the patient: matched by OCR, or — when OCR could not be sure of every
        character (a run of zeros miscounted, say) — sent to review and attached there by the
        technologist, who reads the film. Never matched to anyone else on the way."""
        tech = self.who("technologist")

        async def decided() -> Any:
            matched = [f for f in await self.films() if f["match_status"] == "matched"]
            if matched:
                return matched
            r = await self.api.get("/api/print/films", params={"match_status": "review", "limit": 500}, headers=tech)
            assert r.status_code == 200, r.text
            return [f for f in r.json()["data"] if f["film_box_uid"] in self.print_log]

        started = time.perf_counter()
        [film] = await eventually(decided, "the film matched to the patient or in review", within=within)
        if film["match_status"] == "review":
            detail = film["match_detail"] or {}
            assert detail.get("reason") != "conflict" and film["patient_id"] is None, detail
            r = await self.api.post(f"/api/print/films/{film['id']}/match", headers=tech,
                                    json={"accession_number": self.accession, "note": "read off the film"})
            assert r.status_code == 200, r.text
            film = r.json()
            self.film_reviewed = True
        self.timings["film_matched"] = time.perf_counter() - started
        assert film["patient_id"] == self.patient_id and film["match_method"] in ("ocr", "manual"), film
        assert film["calling_ae_title"] == "DCMPRSCU" and film["image_count"] == 1
        # The film box UID the SCP gave in its N-CREATE response: how the day bench's review desk tells
        # which print a film in review came from.
        assert film["film_box_uid"] in self.print_log, "film box UID not in dcmprscu's log"
        self.film_id = film["id"]
        await eventually(lambda: now_true(self.site.log.has("film.printed", film["id"])), "film.printed")
        await eventually(lambda: now_true(self.site.log.has("film.matched", self.accession)), "film.matched")
        return film

    # -- 7. report --

    async def report(self, *, critical: bool = True) -> None:
        rad = self.who("radiologist")
        senior = self.site.headers("senior-radiologist", username=f"e2e-senior-{self.dept.tag}")

        async def reportable() -> Any:
            r = await self.api.get(f"/api/reporting/exams/{self.accession}", headers=rad)
            return r.status_code == 200 and "save" in r.json().get("allowed_actions", []) and r.json()

        await eventually(reportable, "the exam on the reporting worklist")
        content = ({"findings": "右侧见张力性气胸，纵隔左移，右肺压缩约70%。", "impression": "右侧张力性气胸。"}
                   if critical else {"findings": "双肺纹理清晰，未见实变。", "impression": "胸部CT平扫未见异常。"})
        report: dict[str, Any] = {}
        for action, who, body in [("save", rad, {"content": content}), ("preliminary", rad, {}),
                                  ("final", senior, {})]:
            async with self.timed(f"report_{action}"):
                r = await self.api.post(f"/api/reporting/exams/{self.accession}/report/{action}", headers=who,
                                        json=body)
            assert r.status_code in (200, 201), (action, r.text)
            report = r.json()
        assert report["state"] == "final"
        self.report_id = report["report_id"]
        exam = (await self.api.get(f"/api/reporting/exams/{self.accession}", headers=rad)).json()
        assert exam["report"]["state"] == "final" and exam["report"]["critical"] is critical, exam
        verified = (await self.api.get(f"/api/reporting/reports/{self.report_id}/verify", headers=senior)).json()
        assert verified["valid"] is True and verified["outcome"] == "valid" and verified["kind"] == "final", verified
        await eventually(lambda: now_true(self.site.log.has("report.signed", self.accession)), "report.signed")

    def report_orus(self) -> list[Message]:
        return [m for m in self.site.clinician.hl7
                if self.accession in str(m) and "critical_id=" not in m.field("NTE", 3)]

    def report_bundles(self) -> list[dict[str, Any]]:
        return [b for path, b in self.site.clinician.fhir
                if path.startswith("report-fhir") and self.accession in json.dumps(b)]

    async def report_delivered(self) -> None:
        await eventually(lambda: now_true(len({m.field("OBR", 25) for m in self.report_orus()} & {"P", "F"}) == 2),
                         "the report's ORU^R01 (preliminary and final) at the HIS")
        await eventually(lambda: now_true(self.report_bundles()), "the report's FHIR Bundle at the EMR")

    # -- 8. critical value --

    def communications(self) -> list[dict[str, Any]]:
        return [b for path, b in self.site.clinician.fhir if path.startswith("cv-fhir") and
                b.get("resourceType") == "Communication" and self.critical_id in json.dumps(b)]

    def critical_orus(self) -> list[Message]:
        return [m for m in self.site.clinician.hl7 if f"critical_id={self.critical_id};" in m.field("NTE", 3)]

    async def critical_notified(self) -> None:
        senior = self.site.headers("senior-radiologist", username=f"e2e-senior-{self.dept.tag}")
        await eventually(lambda: now_true(self.site.log.has("critical.raised", self.accession)), "critical.raised")

        async def critical_value() -> Any:
            r = await self.api.get("/api/critical-values/critical-values",
                                   params={"accession_number": self.accession, "state": "all"}, headers=senior)
            return r.json()["data"]

        [cv] = await eventually(critical_value, "the critical value raised from the report")
        self.critical_id = cv["critical_id"]
        if cv["state"] == "awaiting-confirmation":
            r = await self.api.post(f"/api/critical-values/critical-values/{self.critical_id}/confirm",
                                    headers=senior, json={})
            assert r.status_code == 200, r.text
        [comm] = await eventually(lambda: now_true(self.communications()), "FHIR Communication at the clinician system")
        assert comm["priority"] == "stat" and any(i["system"] == CV_IDENT for i in comm["identifier"])
        self.communication_id = comm["id"]
        [oru] = await eventually(lambda: now_true(self.critical_orus()), "HL7 ORU^R01 at the clinician system")
        assert oru.type[:2] == ("ORU", "R01") and oru.field("MSH", 15) == "AL"
        # One critical.notified per channel, written with the receiver's Communication id: the HIS's
        # acknowledgement refers to that id, so wait for the FHIR one before acknowledging.
        await eventually(lambda: now_true({"fhir", "hl7"} <= self.notified_channels()),
                         "critical.notified for the FHIR and HL7 channels")

    def notified_channels(self) -> set[str]:
        return {e["data"]["channel"] for e in self.site.log.about(self.critical_id) if e["type"] == "critical.notified"}

    async def acknowledge_critical(self) -> None:
        ack = {"resourceType": "Communication", "status": "completed",
               "inResponseTo": [{"reference": f"Communication/{self.communication_id}"}],
               "sender": {"identifier": {"value": "D001"}, "display": "李医生"},
               "payload": [{"contentString": "已行胸腔闭式引流"}]}
        async with self.timed("critical_ack"):
            r = await self.api.post("/fhir/R4/Communication", json=ack,
                                    headers=self.site.headers("clinician", username=f"e2e-his-{self.dept.tag}"))
        assert r.status_code == 201, r.text
        senior = self.site.headers("senior-radiologist", username=f"e2e-senior-{self.dept.tag}")
        r = await self.api.get(f"/api/critical-values/critical-values/{self.critical_id}", headers=senior)
        assert r.status_code == 200, r.text
        value = r.json()
        assert value["state"] == "closed" and value["outcome"] == "acknowledged"
        assert value["acknowledged_by"] == "李医生" and value["action_taken"] == "已行胸腔闭式引流"
        await eventually(lambda: now_true(self.site.log.has("critical.closed", self.critical_id)), "critical.closed")

    # -- checks --

    def keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.accession, self.empi_id, self.critical_id, self.film_id) if k)

    def assert_every_hop_on_bus(self, expected: set[str] = JOURNEY_EVENTS) -> None:
        seen = set(self.site.log.types(*self.keys()))
        assert expected <= seen, f"missing on the bus: {sorted(expected - seen)}"

    def event_counts(self) -> dict[str, int]:
        """Distinct event ids per type about this patient (a redelivered message counts once)."""
        ids: dict[str, set[str]] = {}
        for e in self.site.log.about(*self.keys()):
            ids.setdefault(e["type"], set()).add(e["id"])
        return {t: len(v) for t, v in sorted(ids.items())}

    async def entry_is(self, state: str) -> bool:
        r = await self.api.get(f"/api/queue/entries/{self.entry_id}", headers=self.who("technologist"))
        return r.status_code == 200 and r.json()["state"] == state

    async def appointment_is(self, status: str) -> bool:
        r = await self.api.get(f"/api/scheduling/appointments/{self.appointment_id}", headers=self.who("admin"))
        return r.status_code == 200 and r.json()["status"] == status


# ---- the modality's MPPS (pynetdicom, run in a worker thread) --------------------------------------


def _modality_ae(station: str) -> AE:
    ae = AE(ae_title=station)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(ModalityPerformedProcedureStep)
    return ae


def _mpps(port: int, station: str, request: Callable[[Any], tuple[Any, Any]]) -> int:
    """One MPPS request (N-CREATE or N-SET) from the station to the worklist SCP, in an association of its
    own: the response's status."""
    assoc = _modality_ae(station).associate("127.0.0.1", port, ae_title="WORKLIST")
    assert assoc.is_established, "worklist SCP refused the MPPS association"
    try:
        status, _ = request(assoc)
        return int(status.Status)
    finally:
        assoc.release()


def mpps_create(port: int, uid: str, item: pydicom.Dataset, station: str) -> int:
    ds = mpps.in_progress(
        charset="ISO_IR 192", study_uid=item.StudyInstanceUID, accession=item.AccessionNumber,
        requested_procedure_id=item.get("RequestedProcedureID", ""),
        step_id=item.ScheduledProcedureStepSequence[0].get("ScheduledProcedureStepID", ""),
        patient_name=item.PatientName, patient_id=item.PatientID, patient_sex=item.get("PatientSex", ""),
        pps_id="PPS" + uid[-8:], station=station, station_name=station, start=datetime.now(TZ))
    return _mpps(port, station, lambda assoc: assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid))


def mpps_complete(port: int, uid: str, station: str) -> int:
    ds = mpps.final("COMPLETED", datetime.now(TZ))
    return _mpps(port, station, lambda assoc: assoc.send_n_set(ds, ModalityPerformedProcedureStep, uid))
