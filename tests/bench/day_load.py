"""A busy imaging center's day, driven through the platform's own interfaces (the day's-load bench).

The day: 20 rooms (AE titles) of six kinds, each with its exam types and a queue; patients registered
and ordered at front-desk windows through the registration API (what the page posts), booked into
a slot of their room, checked in at kiosks, called by the room's terminal, found on the worklist by
the modality (pynetdicom C-FIND; two rooms run DCMTK findscu), MPPS in progress / completed, films
printed through the print SCP (pynetdicom print SCU sending the Study Instance UID; a few films from
DCMTK's print client with PID/ACC burned in, matched by OCR), reports saved and signed preliminary
by radiologists and final by senior radiologists, delivered over HL7 and FHIR to the clinician
stub; some reports carry a critical finding that the clinician stub acknowledges.

Unlike `e2e.journey` (one patient, every step polled and checked at once), this driver keeps
per-patient work to the requests the day really makes, retries only what waits on the bus (a
booking before scheduling learned the order, a check-in before the queue learned the appointment),
and checks the outcome in bulk at the end: an index of events, stub messages and service state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import statistics
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aio_pika
import httpx
import pydicom
from e2e.cluster import PREFIX_OWNER, Cluster, PrefixRouter
from e2e.journey import FINDSCU, Site, resident_id, run, unique_name
from imaging_common.config import CommonSettings
from imaging_common.events.topology import exchange_name
from imaging_testing import print_kit as tk
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep, ModalityWorklistInformationFind  # type: ignore

from .conftest import percentile

DAY_PATIENTS = 3000  # the number
DAY_CRITICALS = 30
OCR_FILMS = 12  # films from DCMTK's print client, matched by OCR (tesseract, ~1-2 s of CPU each)
DESKS, KIOSKS, RADIOLOGISTS, SENIORS = 12, 4, 6, 2
DEPARTMENTS = ["呼吸内科", "急诊科", "骨科", "消化内科", "体检中心"]
NORMAL = {"findings": "所见结构未见明显异常。", "impression": "未见异常。"}
CRITICAL = {"findings": "右侧见张力性气胸，纵隔左移，右肺压缩约70%。", "impression": "右侧张力性气胸。"}


# ---- the day's shape -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoomKind:
    modality: str
    rooms: int
    per_room: int  # patients of a room in a 3,000-patient day
    slice_minutes: int
    prints: float  # share of exams that print a film on the DICOM printer
    exams: tuple[tuple[str, str, str], ...]  # (code, name, body part)
    dcmtk_worklist: bool = False  # the modality queries with DCMTK findscu (one process per query)


# Volumes of a large Chinese outpatient imaging center: radiography is most of the day, MR the least.
# Ultrasound prints on its own paper printer, not over DICOM.
KINDS = (
    RoomKind("DX", 6, 245, 3, 0.6, (("DX-CHEST", "胸部正位片", "CHEST"), ("DX-LSPINE", "腰椎正侧位", "LSPINE"),
                                    ("DX-KNEE", "膝关节正侧位", "KNEE"))),
    RoomKind("CT", 5, 170, 5, 0.9, (("CT-CHEST", "胸部CT平扫", "CHEST"), ("CT-HEAD", "头颅CT平扫", "HEAD"),
                                    ("CT-ABD", "腹部CT增强", "ABDOMEN"))),
    RoomKind("MR", 3, 55, 15, 0.9, (("MR-HEAD", "头颅MR平扫", "HEAD"), ("MR-LSPINE", "腰椎MR平扫", "LSPINE"),
                                    ("MR-KNEE", "膝关节MR平扫", "KNEE"))),
    RoomKind("US", 4, 90, 10, 0.0, (("US-ABD", "腹部彩超", "ABDOMEN"), ("US-THY", "甲状腺彩超", "NECK"),
                                    ("US-BREAST", "乳腺彩超", "BREAST"))),
    RoomKind("MG", 1, 90, 10, 1.0, (("MG-BI", "双侧乳腺钼靶", "BREAST"),), dcmtk_worklist=True),
    RoomKind("RF", 1, 55, 15, 0.5, (("RF-UGI", "上消化道造影", "ESOPHAGUS"),), dcmtk_worklist=True),
)
OPENS = 7 * 60  # rooms work 07:00-23:00, local


@dataclass
class Room:
    kind: RoomKind
    room_id: str
    station: str
    queue_id: str
    quota: int
    patients: list[Patient] = field(default_factory=list)


@dataclass
class Patient:
    n: int
    room: Room
    exam: tuple[str, str, str]
    department: str
    start: datetime
    prints: bool
    ocr_film: bool = False
    critical: bool = False
    name: str = field(default_factory=unique_name)
    id_number: str = field(default_factory=resident_id)
    empi_id: str = ""
    patient_id: str = ""
    accession: str = ""
    order_id: str = ""
    study_uid: str = ""
    appointment_id: str = ""
    entry_id: str = ""
    mpps_uid: str = ""
    report_id: str = ""
    critical_id: str = ""
    calls: int = 0
    print_log: str = ""  # dcmprscu's debug log of the OCR film: the film box UID the print SCP gave it
    marks: dict[str, float] = field(default_factory=dict)  # moment -> monotonic time


def local_zone(now: datetime | None = None) -> str:
    """A fixed-offset zone where it is now between 00:00 and 01:00, so the whole day's slots
    (07:00-23:00 local) lie ahead and the run never straddles the center's midnight."""
    hour = (now or datetime.now(UTC)).hour
    offset = -hour if hour <= 12 else 24 - hour  # local hour 0; Etc/GMT signs are inverted
    return "UTC" if offset == 0 else f"Etc/GMT{'+' if offset < 0 else '-'}{abs(offset)}"


def plan_day(n_patients: int, n_critical: int, tz: ZoneInfo, tag: str) -> tuple[list[Room], list[Patient]]:
    """Rooms with quotas scaled to `n_patients`, each patient in the next slot of a room."""
    base = sum(k.rooms * k.per_room for k in KINDS)
    rooms: list[Room] = []
    for kind in KINDS:
        for i in range(kind.rooms):
            rid = f"{kind.modality}{i + 1}-{tag}"
            rooms.append(Room(kind, rid, f"{kind.modality}{i + 1}{tag}"[:16], f"q-{rid}",
                              max(1, round(kind.per_room * n_patients / base))))
    while sum(r.quota for r in rooms) > n_patients:  # rounding: trim the biggest rooms
        max(rooms, key=lambda r: r.quota).quota -= 1
    while sum(r.quota for r in rooms) < n_patients:
        min(rooms, key=lambda r: r.quota / r.kind.per_room).quota += 1
    today = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    patients: list[Patient] = []
    for room in rooms:
        kind = room.kind
        for i in range(room.quota):
            start = today + timedelta(minutes=OPENS + i * kind.slice_minutes)
            p = Patient(len(patients), room, kind.exams[i % len(kind.exams)], DEPARTMENTS[i % len(DEPARTMENTS)],
                        start, prints=(i * kind.prints) % 1 + kind.prints >= 1 if kind.prints else False)
            room.patients.append(p)
            patients.append(p)
    # Interleave rooms, as arrivals at the front desk are: slot order across the whole center.
    patients.sort(key=lambda p: (p.start, p.room.room_id))
    chests = [p for p in patients if p.exam[2] == "CHEST"]
    for p in chests[:: max(1, len(chests) // n_critical)][:n_critical]:
        p.critical = True
    films = [p for p in patients if p.prints and p.room.kind.modality == "DX"]
    for p in films[:: max(1, len(films) // OCR_FILMS)][:OCR_FILMS]:
        p.ocr_film = True
    return rooms, patients


# ---- metering ----------------------------------------------------------------------------------------


class MeteredRouter(PrefixRouter):
    """The cluster's router, counting requests, statuses and latencies per service."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster)
        # Idle connections dropped well before the services close them (IMAGING_HTTP_KEEP_ALIVE, 75 s),
        # as a gateway does: reusing one the server is closing at that moment fails the request.
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=200, max_keepalive_connections=100,
                                                                  keepalive_expiry=20.0))
        self.count: Counter[str] = Counter()
        self.status: Counter[tuple[str, int]] = Counter()
        self.lost: list[tuple[str, str, str]] = []  # (service, correlation id, what) of answers never received

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")
        owner = PREFIX_OWNER.get(parts[2] if len(parts) > 2 else "", "?")
        # Every request traceable in the service's log (its correlation id) if its answer goes missing.
        request.headers.setdefault("X-Correlation-ID", uuid.uuid4().hex)
        try:
            response = await super().handle_async_request(request)
        except httpx.TransportError as exc:
            self.lost.append((owner, request.headers["X-Correlation-ID"],
                              f"{request.method} {request.url.path}: {exc!r}"))
            raise
        self.count[owner] += 1
        self.status[(owner, response.status_code)] += 1
        return response


class DicomFailure(logging.Handler):
    """An exception pynetdicom logs in its own threads (its DUL's), as an error of the day."""

    def __init__(self, meter: Meter) -> None:
        super().__init__(logging.ERROR)
        self.meter = meter

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[0] is not None:
            self.meter.error(f"{record.threadName}: {record.getMessage()} "
                             + "".join(traceback.format_exception(*record.exc_info))[-1500:])


@dataclass
class Meter:
    steps: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    dimse: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    waits: Counter[str] = field(default_factory=Counter)  # retries of what waits on the bus or the door

    def error(self, what: str) -> None:
        self.errors.append(what)
        if len(self.errors) <= 20:
            print(f"  ERROR {what}", flush=True)

    def p(self, step: str, q: float) -> float:
        return percentile(self.steps[step], q) * 1000 if self.steps[step] else float("nan")


@dataclass
class Usage:
    """cluster.usage() sampled every few seconds: CPU seconds used during the day, peak RSS."""

    cluster: Cluster
    start: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)

    def sample(self) -> None:
        for name, u in self.cluster.usage().items():
            self.start.setdefault(name, u["cpu_s"])
            self.cpu[name] = u["cpu_s"] - self.start[name]
            self.peak_rss[name] = max(self.peak_rss.get(name, 0), u["rss"])
        own = resource.getrusage(resource.RUSAGE_SELF)
        self.start.setdefault("bench driver", own.ru_utime + own.ru_stime)
        self.cpu["bench driver"] = own.ru_utime + own.ru_stime - self.start["bench driver"]
        self.peak_rss["bench driver"] = own.ru_maxrss * 1024

    async def run(self, every: float = 2.0) -> None:
        while True:
            self.sample()
            await asyncio.sleep(every)


# ---- the modality side (pynetdicom, in worker threads) ---------------------------------------------


def _ae(station: str, *contexts: str) -> AE:
    ae = AE(ae_title=station)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    for c in contexts:
        ae.add_requested_context(c)
    return ae


def cfind_worklist(port: int, station: str, accession: str) -> list[Dataset]:
    """What a modality sends after the patient is called: its AE title, today, the scanned accession."""
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
               "RequestedProcedureID", "RequestedProcedureDescription"):
        setattr(query, kw, "")
    query.AccessionNumber = accession
    sps = Dataset()
    sps.ScheduledStationAETitle = station
    for kw in ("ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime", "Modality",
               "ScheduledProcedureStepID", "ScheduledProcedureStepDescription", "ScheduledProcedureStepStatus"):
        setattr(sps, kw, "")
    query.ScheduledProcedureStepSequence = [sps]
    assoc = _ae(station, ModalityWorklistInformationFind).associate("127.0.0.1", port, ae_title="WORKLIST")
    if not assoc.is_established:
        raise RuntimeError("worklist SCP refused the C-FIND association")
    try:
        found, status = [], -1
        for st, ds in assoc.send_c_find(query, ModalityWorklistInformationFind):
            status = int(st.Status) if "Status" in st else -1
            if status in (0xFF00, 0xFF01) and ds is not None:
                found.append(ds)
        if status != 0:
            raise RuntimeError(f"C-FIND ended with status {status:#06x}")
        return found
    finally:
        assoc.release()


def mpps(port: int, station: str, uid: str, item: Dataset | None, tz: ZoneInfo, modality: str) -> int:
    """N-CREATE (IN PROGRESS) when `item` is given, else N-SET (COMPLETED); each its own association."""
    now = datetime.now(tz)
    ds = Dataset()
    if item is not None:
        ds.SpecificCharacterSet = "ISO_IR 192"
        step = Dataset()
        sps = item.ScheduledProcedureStepSequence[0]
        step.StudyInstanceUID, step.AccessionNumber = item.StudyInstanceUID, item.AccessionNumber
        step.RequestedProcedureID = item.get("RequestedProcedureID", "")
        step.ScheduledProcedureStepID = sps.get("ScheduledProcedureStepID", "")
        step.ScheduledProcedureStepDescription = sps.get("ScheduledProcedureStepDescription", "")
        ds.ScheduledStepAttributesSequence = [step]
        ds.PatientName, ds.PatientID = item.PatientName, item.PatientID
        ds.PatientBirthDate, ds.PatientSex = item.get("PatientBirthDate", ""), item.get("PatientSex", "")
        ds.PerformedProcedureStepID = "PPS" + uid[-8:]
        ds.PerformedStationAETitle = ds.PerformedStationName = station
        ds.PerformedLocation = ""
        ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime = now.strftime("%Y%m%d"), \
            now.strftime("%H%M%S")
        ds.PerformedProcedureStepStatus = "IN PROGRESS"
        ds.PerformedProcedureStepDescription = sps.get("ScheduledProcedureStepDescription", "")
        ds.PerformedProcedureTypeDescription = ""
        ds.ProcedureCodeSequence = []
        ds.PerformedProcedureStepEndDate = ds.PerformedProcedureStepEndTime = ""
        ds.Modality, ds.StudyID = modality, ""
        ds.PerformedProtocolCodeSequence = ds.PerformedSeriesSequence = []
    else:
        ds.PerformedProcedureStepStatus = "COMPLETED"
        ds.PerformedProcedureStepEndDate, ds.PerformedProcedureStepEndTime = now.strftime("%Y%m%d"), \
            now.strftime("%H%M%S")
        series = Dataset()
        series.SeriesInstanceUID = generate_uid()
        series.PerformingPhysicianName = series.OperatorsName = series.SeriesDescription = ""
        series.ProtocolName, series.RetrieveAETitle = "ROUTINE", ""
        series.ReferencedImageSequence = series.ReferencedNonImageCompositeSOPInstanceSequence = []
        ds.PerformedSeriesSequence = [series]
    assoc = _ae(station, ModalityPerformedProcedureStep).associate("127.0.0.1", port, ae_title="WORKLIST")
    if not assoc.is_established:
        raise RuntimeError("worklist SCP refused the MPPS association")
    try:
        if item is not None:
            status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid)
        else:
            status, _ = assoc.send_n_set(ds, ModalityPerformedProcedureStep, uid)
        return int(status.Status) if "Status" in status else -1
    finally:
        assoc.release()


FILM_ITEM = tk.to_item(tk.anatomy(512, 7), bits=12)  # one 512x512 12-bit image per film (STANDARD\1,1)


def print_with_uid(port: int, station: str, study_uid: str) -> dict[str, Any]:
    ae = tk.print_ae()
    ae.ae_title = station
    ae.dimse_timeout = ae.network_timeout = 60  # as the worklist associations (the print kit's 30 s is for tests)
    # The SCP reports the print job's progress (N-EVENT-REPORT); a printer client acknowledges it.
    assoc = ae.associate("127.0.0.1", port, ae_title="PRINT_SCP",
                         evt_handlers=[(evt.EVT_N_EVENT_REPORT, lambda event: (0x0000, None))])
    if not assoc.is_established:
        raise RuntimeError("print SCP refused the association")
    try:
        return tk.print_film(assoc, [FILM_ITEM], study_uid=study_uid)  # type: ignore[no-any-return]
    finally:
        assoc.release()


@dataclass
class BusLog:
    events: list[dict[str, Any]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def durable_spy(settings: CommonSettings) -> AsyncIterator[BusLog]:
    """Every CloudEvent of the namespace, copied by a durable queue of the bench's own. Unlike the
    e2e spy (exclusive, auto-deleted) it keeps what is published while RabbitMQ restarts, as other
    sessions on this machine do: the day's exactly-once checks must not count the spy's own gaps."""
    log = BusLog()
    connection = await aio_pika.connect_robust(settings.amqp_url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=1000)
    exchange = await channel.declare_exchange(exchange_name(settings.namespace), aio_pika.ExchangeType.TOPIC,
                                              durable=True)
    queue = await channel.declare_queue(f"{settings.namespace}.day-spy-{uuid.uuid4().hex[:6]}", durable=True)
    try:
        await queue.bind(exchange, routing_key="#")

        async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            log.events.append(json.loads(message.body))
            await message.ack()

        await queue.consume(collect)
        yield log
    finally:
        with contextlib.suppress(Exception):
            await queue.delete(if_unused=False, if_empty=False)
        await connection.close()


class StubIndex:
    """What the clinician stub received, indexed as it arrives (read incrementally, never rescanned)."""

    def __init__(self, clinician: Any, by_accession: dict[str, Patient]) -> None:
        self.clinician, self.by_accession = clinician, by_accession
        self.hl7_seen = self.fhir_seen = 0
        self.report_oru: dict[str, Counter[str]] = defaultdict(Counter)  # accession -> OBR-25 status -> count
        self.report_oru_final_at: dict[str, float] = {}
        self.critical_oru: Counter[str] = Counter()  # critical id -> ORUs
        self.report_bundles: Counter[str] = Counter()  # accession -> Bundles
        self.communications: dict[str, dict[str, Any]] = {}  # every string in it -> the Communication
        self.communication_count = 0
        self.other_fhir: Counter[str] = Counter()
        self.unattributed = 0

    def refresh(self) -> None:
        now = time.monotonic()
        hl7, fhir = self.clinician.hl7, self.clinician.fhir
        for m in hl7[self.hl7_seen:len(hl7)]:
            nte = m.field("NTE", 3)
            if "critical_id=" in nte:
                self.critical_oru[nte.split("critical_id=", 1)[1].split(";", 1)[0]] += 1
                continue
            text = str(m)
            accs = {t for t in text.replace("\r", "|").replace("^", "|").replace("~", "|").split("|")
                    if t in self.by_accession}
            if len(accs) != 1:
                self.unattributed += 1
                continue
            [acc] = accs
            status = m.field("OBR", 25)
            self.report_oru[acc][status] += 1
            if status == "F":
                self.report_oru_final_at.setdefault(acc, now)
        self.hl7_seen = len(hl7)
        for path, body in fhir[self.fhir_seen:len(fhir)]:
            keys = json_keys(body, set())
            if path.startswith("report-fhir"):
                accs = keys & self.by_accession.keys()
                if len(accs) == 1:
                    self.report_bundles[accs.pop()] += 1
                else:
                    self.unattributed += 1
            elif path.startswith("cv-fhir") and body.get("resourceType") == "Communication":
                self.communication_count += 1
                for k in keys:
                    self.communications.setdefault(k, body)
            else:
                self.other_fhir[f"{path.split('/')[0]} {body.get('resourceType')}"] += 1
        self.fhir_seen = len(fhir)

    async def follow(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(0.2)


# ---- the day --------------------------------------------------------------------------------------


@dataclass
class Day:
    site: Site
    cluster: Cluster
    router: MeteredRouter
    rooms: list[Room]
    patients: list[Patient]
    tz: ZoneInfo
    workdir: Path
    bus: BusLog
    meter: Meter = field(default_factory=Meter)
    stub: StubIndex = field(init=False)
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=24,
                                                                                 thread_name_prefix="modality"))
    by_accession: dict[str, Patient] = field(default_factory=dict)
    headers: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0
    acked: int = 0
    arrivals_done: asyncio.Event = field(default_factory=asyncio.Event)  # every kiosk closed
    reviewed: set[str] = field(default_factory=set)  # films matched by hand from the review list

    def __post_init__(self) -> None:
        self.stub = StubIndex(self.site.clinician, self.by_accession)

    def who(self, role: str, username: str = "") -> dict[str, str]:
        """One token per user, signed again every few minutes: access tokens live ~10 min, the day longer
        (signing one per request would cost the client more than the call)."""
        username = username or f"day-{role}"
        issued, headers = self.headers.get(username, (0.0, {}))
        if time.monotonic() - issued > 240:
            headers = self.site.headers(role, username=username)
            self.headers[username] = (time.monotonic(), headers)
        return headers

    @property
    def api(self) -> httpx.AsyncClient:
        return self.site.api

    async def timed(self, step: str, call: Awaitable[Any]) -> Any:
        t0 = time.perf_counter()
        try:
            out = await call
        except httpx.TransportError as exc:  # the caller sees a failed response and counts the error
            return httpx.Response(599, text=f"transport error: {exc!r}")
        self.meter.steps[step].append(time.perf_counter() - t0)
        return out

    async def dicom(self, op: str, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            # Bounded: the SCU's own timeouts are 60 s; a call that outlives them is hung, and one hung
            # modality must be an error of the day, not a room that stops calling.
            out = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(self.pool, fn, *args), 300)
        except Exception as exc:  # say which operation: a DIMSE timeout surfaces as a status without Status
            raise RuntimeError(f"{op} after {time.perf_counter() - t0:.1f} s: {exc!r}") from exc
        self.meter.steps[op].append(time.perf_counter() - t0)
        return out

    def expect(self, r: httpx.Response, step: str, *codes: int) -> bool:
        if r.status_code in codes:
            return True
        self.meter.error(f"{step}: HTTP {r.status_code} {r.text[:300]}")
        return False

    # -- set-up --

    async def set_up(self) -> None:
        admin = self.who("admin")
        api = self.api
        sessions = [{"weekday": d, "starts": "07:00", "ends": "23:00"} for d in range(1, 8)]
        for kind in KINDS:
            for code, name, part in kind.exams:
                r = await api.put(f"/api/scheduling/exam-types/{code}", headers=admin, json={
                    "code": code, "name": name, "modality": kind.modality, "body_part": part,
                    "duration_minutes": kind.slice_minutes})
                assert r.status_code == 200, r.text
        for room in self.rooms:
            name = f"{room.kind.modality}{room.room_id.split('-')[0][len(room.kind.modality):]}室"
            r = await api.put(f"/api/scheduling/rooms/{room.room_id}", headers=admin, json={
                "id": room.room_id, "name": name, "modality": room.kind.modality, "campus": "main",
                "building": "A", "station_ae_title": room.station, "slice_minutes": room.kind.slice_minutes,
                "sessions": sessions})
            assert r.status_code == 200, r.text
            r = await api.put(f"/api/queue/queues/{room.queue_id}", headers=admin,
                              json={"name": name, "ticket_prefix": room.kind.modality})
            assert r.status_code == 200, r.text
            r = await api.put(f"/api/queue/rooms/{room.room_id}", headers=admin,
                              json={"name": name, "door_cap": 3, "queue_ids": [room.queue_id]})
            assert r.status_code == 200, r.text
            r = await api.post("/api/queue/placement-rules", headers=admin,
                               json={"queue_id": room.queue_id, "room_id": room.room_id, "rank": 10})
            assert r.status_code == 201, r.text
        r = await api.put("/api/queue/screens/hall-day", headers=admin, json={
            "kind": "hall", "title": "候诊大厅", "room_ids": [r.room_id for r in self.rooms],
            "on_time": "00:00", "off_time": "23:59"})
        assert r.status_code == 200, r.text
        stub = self.site.clinician
        for i, dept in enumerate(DEPARTMENTS):
            r = await api.put(f"/api/critical-values/receivers/day-ward-{i}", headers=admin, json={
                "name": f"{dept}临床系统", "department": dept, "hl7_host": "127.0.0.1",
                "hl7_port": stub.mllp_port, "fhir_base_url": f"{stub.url}/cv-fhir",
                "fhir_client": "day-clinician"})  # one hospital system acknowledges for every ward (FHIR)
            assert r.status_code == 200, r.text

    # -- stages (queues between them are the patient walking to the next place) --

    async def front_desk(self, todo: asyncio.Queue[Patient], booked: asyncio.Queue[Patient]) -> None:
        """登记预约: register (EMPI), order, then book the slot once scheduling has the order."""
        while not todo.empty():
            p = todo.get_nowait()
            desk = self.who("clerk")
            r = await self.timed("register patient", self.api.post("/api/registration/patients", headers=desk, json={
                "name": p.name, "phone": "13912345678", "verified": True, "force_new": True,
                "identifiers": [{"type": "resident-id", "value": p.id_number}]}))
            if not self.expect(r, "register patient", 201):
                continue
            patient = r.json()["patient"]
            p.empi_id, p.patient_id = patient["empi_id"], patient["patient_id"]
            code, name, part = p.exam
            r = await self.timed("order", self.api.post("/api/registration/orders", headers=desk, json={
                "empi_id": p.empi_id, "ordering_department": p.department, "ordering_doctor": "李医生",
                "clinical_diagnosis": "胸痛气促" if part == "CHEST" else "复查", "purpose": "明确诊断",
                "items": [{"code": code, "name": name, "modality": p.room.kind.modality, "body_part": part}]}))
            if not self.expect(r, "order", 201):
                continue
            order = r.json()
            p.accession, p.order_id = order["accession_number"], order["order_id"]
            p.study_uid = order.get("study_instance_uid", "")
            self.by_accession[p.accession] = p
            p.marks["ordered"] = time.monotonic()
            if await self.book(p):
                booked.put_nowait(p)

    async def book(self, p: Patient) -> bool:
        body = {"order_id": p.order_id, "exam_code": p.exam[0], "room_id": p.room.room_id,
                "start": p.start.isoformat()}
        for _ in range(600):
            r = await self.timed("book", self.api.post("/api/scheduling/appointments", headers=self.who("clerk"),
                                                       json=body))
            if r.status_code == 201:
                p.appointment_id = r.json()["id"]
                self.meter.steps["order -> bookable (order.created consumed)"].append(
                    time.monotonic() - p.marks["ordered"])
                p.marks["booked"] = time.monotonic()
                return True
            if r.status_code == 599:  # the answer was lost, not necessarily the booking: the clerk looks it up
                found = await self.api.get("/api/scheduling/appointments", headers=self.who("clerk"),
                                           params={"order_id": p.order_id})
                if found.status_code == 200 and found.json()["data"]:
                    self.meter.error(f"book {p.accession}: the answer was lost ({r.text[:100]}); booked all the same")
                    p.appointment_id = found.json()["data"][0]["id"]
                    p.marks["booked"] = time.monotonic()
                    return True
            if r.status_code not in (404, 409) or "order" not in r.text.lower():
                break
            self.meter.waits["book before scheduling knew the order"] += 1
            await asyncio.sleep(0.2)
        self.meter.error(f"book {p.accession}: HTTP {r.status_code} {r.text[:300]}")
        return False

    async def kiosk(self, booked: asyncio.Queue[Patient | None]) -> None:
        """Self check-in with the accession barcode; the queue learns appointments from the bus."""
        while (p := await booked.get()) is not None:
            for _ in range(600):
                r = await self.timed("check-in", self.api.post("/api/queue/check-ins", headers=self.who("clerk"),
                                                               json={"kind": "barcode", "value": p.accession}))
                if r.status_code == 201:
                    arrival = r.json()["data"][0]
                    p.entry_id = arrival["entry_id"]
                    self.meter.steps["booked -> checked in (appointment.booked consumed)"].append(
                        time.monotonic() - p.marks["booked"])
                    if arrival["queue_id"] != p.room.queue_id:
                        self.meter.error(f"check-in {p.accession}: placed in {arrival['queue_id']}")
                    break
                if r.status_code not in (404, 409):
                    self.meter.error(f"check-in {p.accession}: HTTP {r.status_code} {r.text[:300]}")
                    break
                self.meter.waits["check-in before the queue knew the appointment"] += 1
                await asyncio.sleep(0.2)
            else:
                self.meter.error(f"check-in {p.accession}: never accepted: {r.text[:300]}")

    async def modality(self, room: Room, to_report: asyncio.Queue[Patient]) -> None:
        """The room's terminal calls the next patient; the modality does the exam and prints."""
        done = 0
        while done < room.quota and not self.meter.errors[100:]:
            r = await self.timed("call next", self.api.post(f"/api/queue/rooms/{room.room_id}/call-next",
                                                            headers=self.who("technologist")))
            if r.status_code == 409:  # nobody waiting yet, or the door is full until exam.started lands
                if self.arrivals_done.is_set() and "nobody" in r.text:  # those missing never came
                    self.meter.error(f"{room.room_id}: {room.quota - done} patient(s) never reached the room")
                    break
                self.meter.waits["call: nobody waiting / door full"] += 1
                await asyncio.sleep(0.3)
                continue
            if not self.expect(r, f"call next {room.room_id}", 200):
                await asyncio.sleep(1)
                continue
            entry = r.json()
            p = self.by_accession.get(entry.get("accession_number", ""))
            if p is None or p.room is not room:
                self.meter.error(f"call next {room.room_id}: called an unknown patient {entry}")
                continue
            p.calls += 1
            done += 1
            try:
                await self.exam(room, p)
            except Exception as exc:  # one patient's failure is an error of the day, not the end of the room
                self.meter.error(f"exam {p.accession} in {room.room_id}: {exc!r}")
                continue
            to_report.put_nowait(p)
            try:
                await self.film(room, p)
            except Exception as exc:
                self.meter.error(f"film {p.accession} in {room.room_id}: {exc!r}")

    async def exam(self, room: Room, p: Patient) -> None:
        port, station, kind = self.site.worklist_port, room.station, room.kind
        for _ in range(100):
            if kind.dcmtk_worklist:
                items = await self.timed("worklist C-FIND", self.findscu(station, p.accession))
                self.meter.dimse["C-FIND (DCMTK findscu)"] += 1
            else:
                items = await self.dicom("worklist C-FIND", cfind_worklist, port, station, p.accession)
                self.meter.dimse["C-FIND"] += 1
            if items:
                break
            self.meter.waits["worklist item not there yet"] += 1
            await asyncio.sleep(0.2)
        if len(items) != 1 or items[0].PatientID != p.patient_id:
            raise AssertionError(f"worklist answered {len(items)} items for {p.accession}")
        p.mpps_uid = generate_uid()
        status = await self.dicom("MPPS N-CREATE", mpps, port, station, p.mpps_uid, items[0], self.tz, kind.modality)
        self.meter.dimse["MPPS N-CREATE"] += 1
        if status != 0:
            raise AssertionError(f"MPPS N-CREATE status {status:#06x}")
        status = await self.dicom("MPPS N-SET", mpps, port, station, p.mpps_uid, None, self.tz, kind.modality)
        self.meter.dimse["MPPS N-SET"] += 1
        if status != 0:
            raise AssertionError(f"MPPS N-SET status {status:#06x}")
        p.marks["completed"] = time.monotonic()

    async def film(self, room: Room, p: Patient) -> None:
        """After the exam, the technologist prints; a failed print is an error, not the end of the report."""
        station = room.station
        if p.ocr_film:
            await self.timed("print film (DCMTK dcmprscu)", self.dcmtk_print(p))
            self.meter.dimse["print jobs (DCMTK dcmprscu)"] += 1
        elif p.prints:
            out = await self.dicom("print film (pynetdicom)", print_with_uid, self.site.print_port, station,
                                   p.study_uid)
            self.meter.dimse["print jobs"] += 1
            if out["print"] not in (0, 0xB603) or out["image_boxes"] != [0]:
                statuses = {k: out.get(k) for k in ("session", "film_box", "image_boxes", "print")}
                raise AssertionError(f"print job statuses {statuses}")

    async def findscu(self, station: str, accession: str) -> list[Dataset]:
        out = self.workdir / f"mwl-{accession}"
        out.mkdir(parents=True, exist_ok=True)
        await run(FINDSCU, "-W", "-aet", station, "-aec", "WORKLIST", "-X", "-od", str(out),
                  "-k", "0008,0005=ISO_IR 192", "-k", "PatientName", "-k", "PatientID", "-k", "PatientSex",
                  "-k", f"AccessionNumber={accession}", "-k", "StudyInstanceUID", "-k", "RequestedProcedureID",
                  "-k", f"(0040,0100)[0].ScheduledStationAETitle={station}",
                  "-k", "(0040,0100)[0].ScheduledProcedureStepStartDate", "-k", "(0040,0100)[0].Modality",
                  "-k", "(0040,0100)[0].ScheduledProcedureStepID",
                  "-k", "(0040,0100)[0].ScheduledProcedureStepDescription",
                  "-k", "(0040,0100)[0].ScheduledProcedureStepStatus",
                  "127.0.0.1", str(self.site.worklist_port))
        return [pydicom.dcmread(f) for f in sorted(out.glob("rsp*.dcm"))]

    async def dcmtk_print(self, p: Patient) -> None:
        folder = self.workdir / f"print-{p.accession}"
        cfg = tk.dcmtk_print_config(folder, port=self.site.print_port)
        img = tk.burn_text(tk.anatomy(512, p.n), [f"PID: {p.patient_id}", f"ACC: {p.accession}"],
                           font_path=tk.FONTS[0], font_px=22)
        image = tk.modality_image_file(folder / "image.dcm", img)
        await run("dcmpsprt", "-c", cfg, "-p", "PLATFORM", image)
        [stored] = list((folder / "db").glob("SP_*.dcm"))
        log = await run("dcmprscu", "-c", cfg, "-p", "PLATFORM", "-d", str(stored))
        if "N-ACTION RSP" not in log:
            raise AssertionError(f"dcmprscu: {log[-500:]}")
        p.print_log = log

    async def radiologist(self, n: int, exams: asyncio.Queue[Patient | None], to_sign: asyncio.Queue[Patient]) -> None:
        """Drafts and signs preliminary: waits for the exam on reporting (exam.completed consumed)."""
        while (p := await exams.get()) is not None:
            me = self.who("radiologist", f"day-radiologist-{n}")
            for _ in range(600):
                r = await self.timed("open exam", self.api.get(f"/api/reporting/exams/{p.accession}", headers=me))
                if r.status_code == 200 and "save" in r.json().get("allowed_actions", []):
                    break
                if r.status_code not in (200, 404):
                    self.meter.error(f"open exam {p.accession}: HTTP {r.status_code} {r.text[:300]}")
                    break
                self.meter.waits["exam not on reporting yet"] += 1
                await asyncio.sleep(0.2)
            else:
                self.meter.error(f"exam {p.accession} never reportable")
                continue
            self.meter.steps["MPPS completed -> reportable (exam.completed consumed)"].append(
                time.monotonic() - p.marks["completed"])
            content = CRITICAL if p.critical else NORMAL
            r = await self.timed("report save", self.api.post(f"/api/reporting/exams/{p.accession}/report/save",
                                                              headers=me, json={"content": content}))
            if not self.expect(r, f"report save {p.accession}", 200, 201):
                continue
            r = await self.timed("report preliminary", self.api.post(
                f"/api/reporting/exams/{p.accession}/report/preliminary", headers=me, json={}))
            if self.expect(r, f"report preliminary {p.accession}", 200, 201):
                p.report_id = r.json()["report_id"]
                to_sign.put_nowait(p)

    async def senior(self, n: int, to_sign: asyncio.Queue[Patient | None], criticals: asyncio.Queue[Patient]) -> None:
        while (p := await to_sign.get()) is not None:
            me = self.who("senior-radiologist", f"day-senior-{n}")
            r = await self.timed("report final", self.api.post(f"/api/reporting/exams/{p.accession}/report/final",
                                                               headers=me, json={}))
            if self.expect(r, f"report final {p.accession}", 200, 201):
                p.marks["final"] = time.monotonic()
                if r.json().get("state") != "final":
                    self.meter.error(f"report final {p.accession}: state {r.json().get('state')}")
                if p.critical:
                    criticals.put_nowait(p)

    async def critical_desk(self, criticals: asyncio.Queue[Patient | None]) -> None:
        """The senior confirms when asked; the clinician stub acknowledges the FHIR Communication."""
        while (p := await criticals.get()) is not None:
            senior, clinician = self.who("senior-radiologist"), self.who("clinician")
            cv = None
            for _ in range(600):
                r = await self.api.get("/api/critical-values/critical-values", headers=senior,
                                       params={"accession_number": p.accession, "state": "all"})
                if not self.expect(r, "critical list", 200):
                    break
                if r.json()["data"]:
                    [cv] = r.json()["data"]
                    break
                await asyncio.sleep(0.2)
            if cv is None:
                self.meter.error(f"critical value for {p.accession} never raised")
                continue
            p.critical_id = cv["critical_id"]
            if cv["state"] == "awaiting-confirmation":
                r = await self.timed("critical confirm", self.api.post(
                    f"/api/critical-values/critical-values/{p.critical_id}/confirm", headers=senior, json={}))
                self.expect(r, f"critical confirm {p.accession}", 200)
            comm = None
            for _ in range(600):
                self.stub.refresh()
                comm = self.stub.communications.get(p.critical_id)
                if comm:
                    break
                await asyncio.sleep(0.1)
            if comm is None:
                self.meter.error(f"no FHIR Communication for critical {p.critical_id}")
                continue
            self.meter.steps["report final -> Communication at the clinician (critical)"].append(
                time.monotonic() - p.marks["final"])
            ack = {"resourceType": "Communication", "status": "completed",
                   "inResponseTo": [{"reference": f"Communication/{comm['id']}"}],
                   "sender": {"identifier": {"value": "D001"}, "display": "李医生"},
                   "payload": [{"contentString": "已处理"}]}
            r = await self.timed("critical acknowledge (FHIR)", self.api.post(
                "/fhir/R4/Communication", json=ack, headers=clinician))
            if self.expect(r, f"critical acknowledge {p.accession}", 201):
                self.acked += 1

    def progress(self) -> str:
        ps, stub = self.patients, self.stub
        return (f"[{time.monotonic() - self.started:6.0f} s] booked {sum(bool(p.appointment_id) for p in ps)}, "
                f"checked in {sum(bool(p.entry_id) for p in ps)}, exams {sum('completed' in p.marks for p in ps)}, "
                f"final {sum('final' in p.marks for p in ps)}, critical acked {self.acked}; at the stub: "
                f"ORU F {len(stub.report_oru_final_at)}, Bundles {sum(stub.report_bundles.values())}; "
                f"events {len(self.bus.events)}; errors {len(self.meter.errors)}")

    async def report_progress(self, every: float = 30.0) -> None:
        while True:
            await asyncio.sleep(every)
            self.stub.refresh()
            print(f"  {self.progress()}", flush=True)

    async def run(self) -> None:
        todo: asyncio.Queue[Patient] = asyncio.Queue()
        for p in self.patients:
            todo.put_nowait(p)
        booked: asyncio.Queue[Patient | None] = asyncio.Queue()
        exams: asyncio.Queue[Patient | None] = asyncio.Queue()
        to_sign: asyncio.Queue[Patient | None] = asyncio.Queue()
        criticals: asyncio.Queue[Patient | None] = asyncio.Queue()
        self.started = time.monotonic()

        async def stage(workers: list[Awaitable[None]], downstream: asyncio.Queue[Any] | None, n_next: int) -> None:
            await asyncio.gather(*workers)
            for _ in range(n_next):
                downstream.put_nowait(None)  # type: ignore[union-attr]

        async def kiosks() -> None:
            await asyncio.gather(*(self.kiosk(booked) for _ in range(KIOSKS)))
            self.arrivals_done.set()

        day = asyncio.gather(
            stage([self.front_desk(todo, booked) for _ in range(DESKS)], booked, KIOSKS),  # type: ignore[arg-type]
            kiosks(),
            stage([self.modality(room, exams) for room in self.rooms], exams, RADIOLOGISTS),  # type: ignore[arg-type]
            stage([self.radiologist(i, exams, to_sign) for i in range(RADIOLOGISTS)], to_sign, SENIORS),  # type: ignore[arg-type]
            stage([self.senior(i, to_sign, criticals) for i in range(SENIORS)], criticals, 1),  # type: ignore[arg-type]
            stage([self.critical_desk(criticals)], None, 0),
        )

        async def give_up() -> None:  # a broken day (all requests failing) must end, not wait for its timeout
            while len(self.meter.errors) <= 300:
                await asyncio.sleep(2)
            day.cancel()

        def thread_died(args: threading.ExceptHookArgs) -> None:  # e.g. an association's reactor
            where = args.thread.name if args.thread else "?"
            self.meter.error(f"thread {where} died: " + "".join(traceback.format_exception(
                args.exc_type, args.exc_value, args.exc_traceback))[-1500:])

        watchdog = asyncio.create_task(give_up())
        hook, threading.excepthook = threading.excepthook, thread_died
        failures = DicomFailure(self.meter)
        logging.getLogger("pynetdicom").addHandler(failures)
        try:
            await day
        except asyncio.CancelledError:
            self.meter.error("the day was abandoned after 300 errors")
        finally:
            logging.getLogger("pynetdicom").removeHandler(failures)
            threading.excepthook = hook
            watchdog.cancel()
        self.ended = time.monotonic()


# ---- the outcome, checked in bulk ---------------------------------------------------------------------

# Events about one patient, each exactly once (distinct CloudEvent ids; a redelivery counts once).
PER_PATIENT = {"patient.registered": 1, "order.created": 1, "appointment.booked": 1, "patient.arrived": 1,
               "exam.started": 1, "exam.completed": 1, "report.signed": 1}  # signed final (not preliminary)
PER_FILM = {"film.printed": 1, "film.matched": 1}
PER_CRITICAL = {"critical.raised": 1, "critical.notified": 2, "critical.acknowledged": 1, "critical.closed": 1}
AT_MOST_ONCE = {"appointment.reminder"}  # reminders go out for appointments within 24 h


def expected_events(p: Patient) -> dict[str, int]:
    return {**PER_PATIENT, **(PER_FILM if p.prints or p.ocr_film else {}), **(PER_CRITICAL if p.critical else {})}


async def review_desk(day: Day) -> None:
    """A technologist works the film review list: reads the identifiers off each film and attaches it
    by hand. OCR sends a film here when it cannot be sure (e.g. a zero read twice makes the patient ID
    one edit away from two patients of the day, or a digit misread): safe, and part of a real day.
    The person reads the burned-in PID/ACC that OCR misread; here that reading is the print the film
    came from (its film box UID in the modality's print log), never what OCR made of it."""
    tech = day.who("technologist")
    r = await day.api.get("/api/print/films", headers=tech, params={"match_status": "review", "limit": 500})
    if not day.expect(r, "film review list", 200):
        return
    ocr = [p for p in day.patients if p.ocr_film and p.print_log]
    for film in r.json()["data"]:
        if film["id"] in day.reviewed:
            continue
        [p, *others] = [p for p in ocr if film["film_box_uid"] in p.print_log] or [None]
        if p is None or others:
            day.meter.error(f"film {film['id']} in review: printed by none of the day's OCR prints")
            day.reviewed.add(film["id"])
            continue
        r = await day.timed("film matched by hand", day.api.post(
            f"/api/print/films/{film['id']}/match", headers=tech,
            json={"accession_number": p.accession, "note": "review list"}))
        if day.expect(r, f"film {film['id']} matched by hand", 200):
            day.reviewed.add(film["id"])


async def settle(day: Day, within: float = 180.0) -> float:
    """Wait until every final report reached the stub over HL7 and FHIR and the bus is quiet."""
    t0 = time.monotonic()
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - t0 < within:
        if int(time.monotonic() - t0) % 5 == 0:
            try:
                await review_desk(day)
            except Exception as exc:  # the desk's own failure is an error of the day, not the end of the bench
                day.meter.error(f"film review desk: {exc!r}")
        day.stub.refresh()
        delivered = sum(1 for p in day.patients if day.stub.report_oru[p.accession]["F"]
                        and day.stub.report_bundles[p.accession] >= 2)
        n = len(day.bus.events)
        if n != last:
            last, quiet_since = n, time.monotonic()
        if delivered >= len(day.patients) and time.monotonic() - quiet_since > 3:
            break
        await asyncio.sleep(0.5)
    print(f"  settled: {day.progress()}", flush=True)
    return time.monotonic() - t0


async def check_outcome(day: Day) -> dict[str, int]:
    """Every effect of the day, once each: returns counts of what was checked; errors go to the meter."""
    err, api, admin = day.meter.error, day.api, day.who("admin")
    checked: Counter[str] = Counter()
    patients = day.patients
    for p in patients:
        if p.calls != 1:
            err(f"{p.accession or p.n}: called {p.calls} times")
    # worklist: exactly one step per accession, completed; scheduling: the appointment fulfilled
    for room in day.rooms:
        r = await api.get("/api/worklist/items", headers=admin, params={
            "station_ae_title": room.station, "limit": 2000,
            "status": ["scheduled", "in_progress", "completed", "discontinued", "cancelled"]})
        steps: dict[str, list[str]] = defaultdict(list)
        for s in r.json()["data"]:
            steps[s["accession_number"]].append(s["status"])
        r = await api.get("/api/scheduling/appointments", headers=admin, params={"room_id": room.room_id,
                                                                                "limit": 1000})
        appointments: dict[str, list[str]] = defaultdict(list)
        for a in r.json()["data"]:
            appointments[a["order_id"]].append(a["status"])
        for p in room.patients:
            if steps.get(p.accession) != ["completed"]:
                err(f"{p.accession}: worklist steps {steps.get(p.accession)}")
            if appointments.get(p.order_id) != ["fulfilled"]:
                err(f"{p.accession}: appointments {appointments.get(p.order_id)}")
            checked["worklist steps completed"] += 1
            checked["appointments fulfilled"] += 1
    # reports delivered: ORU^R01 preliminary and final once each, FHIR Bundles
    stub = day.stub
    stub.refresh()
    for p in patients:
        oru = stub.report_oru.get(p.accession, Counter())
        if oru != Counter({"P": 1, "F": 1}):
            err(f"{p.accession}: report ORUs at the HIS {dict(oru)}")
        if stub.report_bundles[p.accession] != 2:
            err(f"{p.accession}: report FHIR Bundles at the EMR {stub.report_bundles[p.accession]}")
        checked["reports delivered (HL7 P+F, FHIR x2)"] += 1
    if stub.unattributed:
        err(f"{stub.unattributed} messages at the stub about no known patient")
    # critical values: the planned ones, each closed by acknowledgement, and no others
    r = await api.get("/api/critical-values/critical-values", headers=admin, params={"state": "all",
                                                                                     "limit": 1000})
    values = r.json()["data"]
    planned = {p.accession for p in patients if p.critical}
    raised = Counter(v["accession_number"] for v in values)
    if set(raised) != planned or any(c != 1 for c in raised.values()):
        err(f"critical values raised for {len(raised)} accessions, planned {len(planned)}")
    for v in values:
        if v["state"] != "closed":
            err(f"critical {v['critical_id']} ({v['accession_number']}): state {v['state']}")
        if stub.critical_oru[v["critical_id"]] < 1:
            err(f"critical {v['critical_id']}: no ORU^R01 at the clinician system")
        checked["critical values closed"] += 1
    # events: each expected one exactly once per patient, nothing about two patients at once
    lookup: dict[str, Patient] = {}
    for p in patients:
        for k in (p.accession, p.empi_id, p.study_uid, p.critical_id):
            if k:
                lookup[k] = p
    for e in day.bus.events:  # film.printed names only the film when the SCU sent no Study UID
        if e["type"] == "film.matched" and e["data"].get("accession_number") in lookup:
            lookup[e["data"]["film_id"]] = lookup[e["data"]["accession_number"]]
    seen: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    crossed = 0
    for e in day.bus.events:
        owners = {lookup[k].n for k in json_keys(e.get("data"), set()) & lookup.keys()}
        if len(owners) > 1:
            crossed += 1
        for n in owners:
            seen[n][e["type"]].add(e["id"])
    if crossed:
        err(f"{crossed} events name more than one patient")
    for p in patients:
        got = {t: len(ids) for t, ids in seen[p.n].items()}
        for t, n in expected_events(p).items():
            if got.get(t, 0) != n:
                err(f"{p.accession}: {t} x{got.get(t, 0)} on the bus, expected {n}")
            checked["events checked"] += n
        for t, n in got.items():
            if t not in expected_events(p) and (t not in AT_MOST_ONCE or n > 1):
                err(f"{p.accession}: unexpected {t} x{n} on the bus")
    # films: matched to the right study; OCR ones by OCR
    for p in patients:
        if p.ocr_film:
            r = await api.get("/api/print/films", headers=admin, params={"accession_number": p.accession})
            films = r.json()["data"]
            outcome = [(f["match_status"], f["match_method"]) for f in films]
            if outcome in ([("matched", "ocr")], [("matched", "manual")]):
                checked[f"OCR films matched ({outcome[0][1]})"] += 1
                continue
            unmatched = []
            for status in ("review", "pending"):
                r = await api.get("/api/print/films", headers=admin, params={"match_status": status, "limit": 500})
                unmatched += [f for f in r.json()["data"]]
            err(f"{p.accession} ({p.patient_id}): OCR film {films}; films not matched: {unmatched}")
    checked["films matched"] = sum(1 for p in patients if seen[p.n].get("film.matched"))
    return dict(checked)


def env_patients() -> int:
    """IMAGING_DAY_PATIENTS: a smaller day for a developer's quick run (`make bench` runs 3,000)."""
    return int(os.environ.get("IMAGING_DAY_PATIENTS", DAY_PATIENTS))


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


def json_keys(obj: Any, out: set[str]) -> set[str]:
    """Every string inside a JSON value (ids, accessions, UIDs are found among them)."""
    if isinstance(obj, str):
        out.add(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            json_keys(v, out)
    elif isinstance(obj, list):
        for v in obj:
            json_keys(v, out)
    return out


__all__ = ["Day", "Meter", "MeteredRouter", "Usage", "env_patients", "json_keys", "local_zone", "plan_day",
           "uuid"]
