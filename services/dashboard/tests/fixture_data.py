"""A department's exams as plain data (the fixture), the events every service would publish about them,
and the figures computed directly from the data, without the read model: what the dashboard must agree with."""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentInfo,
    AppointmentNoShow,
    CriticalAcknowledged,
    CriticalRaised,
    EventData,
    ExamCompleted,
    ExamItem,
    ExamStarted,
    FilmMatched,
    OrderCancelled,
    OrderCreated,
    PatientArrived,
    PatientRef,
    ReportAmended,
    ReportSigned,
)

TZ = ZoneInfo("Asia/Shanghai")
OPENS, CLOSES = time(8, 0), time(18, 0)


@dataclass
class Exam:
    accession: str
    modality: str
    room_id: str
    room_name: str
    ae_title: str
    department: str
    patient_class: str
    name: str
    ordered_at: datetime
    booked_at: datetime
    appointment_start: datetime
    arrived_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    status: str | None = None
    preliminary_at: datetime | None = None
    final_at: datetime | None = None
    delivered_at: datetime | None = None  # when the film was matched: known once its event is published
    cancelled: bool = False
    no_show: bool = False
    positive: bool | None = None
    kept: bool | None = None
    amended: bool = False
    critical_raised_at: datetime | None = None
    critical_ack_at: datetime | None = None


@dataclass
class Department:
    campus: str
    exams: list[Exam] = field(default_factory=list)
    devices: dict[str, str] = field(default_factory=dict)  # AE title -> modality (registered ones)

    @property
    def start(self) -> datetime:
        return min(e.ordered_at for e in self.exams) - timedelta(days=1)

    @property
    def end(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=1)


def department(n: int = 40, seed: int = 25) -> Department:
    rng, uid = random.Random(seed), uuid.uuid4().hex[:6]
    dept = Department(campus=f"院区-{uid}")
    rooms = {"CT": (f"R-CT-{uid}", "CT1室", f"CT{uid}"), "MR": (f"R-MR-{uid}", "MR1室", f"MR{uid}"),
             "DX": (f"R-DX-{uid}", "DR室", f"DX{uid}")}
    dept.devices = {rooms["CT"][2]: "CT", rooms["MR"][2]: "MR"}  # DX is not registered: no utilisation
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=200)
    for i in range(n):
        modality = ("CT", "MR", "DX")[i % 3]
        room_id, room_name, ae = rooms[modality]
        ordered = base + timedelta(days=i * 4, hours=rng.randint(0, 12))
        booked = ordered + timedelta(minutes=rng.randint(5, 48 * 60))
        day = (booked + timedelta(days=rng.randint(1, 5))).astimezone(TZ).date()
        start = datetime.combine(day, time(rng.randint(7, 19), rng.choice((0, 15, 30, 45))), TZ).astimezone(UTC)
        e = Exam(accession=f"DB{uid}{i:03d}", modality=modality, room_id=room_id, room_name=room_name, ae_title=ae,
                 department=("内科", "外科", "急诊科")[i % 3 if i % 4 else 2], name=("张三丰", "李四", "王小明")[i % 3],
                 patient_class=("outpatient", "inpatient", "emergency")[(i // 3) % 3], ordered_at=ordered,
                 booked_at=booked, appointment_start=start)
        dept.exams.append(e)
        if i % 11 == 5:
            e.cancelled = True
            continue
        if i % 9 == 4:
            e.no_show = True
            continue
        e.arrived_at = start - timedelta(minutes=rng.randint(0, 20))
        e.started_at = e.arrived_at + timedelta(minutes=rng.randint(3, 90))
        e.completed_at = e.started_at + timedelta(minutes=rng.randint(5, 45))
        e.status = "discontinued" if i % 13 == 7 else "completed"
        if e.status == "discontinued":
            continue
        if i % 7 != 3:  # else a single reader: the final without a preliminary
            e.preliminary_at = e.completed_at + timedelta(minutes=rng.randint(10, 300))
            e.kept = rng.random() < 0.8
        e.final_at = (e.preliminary_at or e.completed_at) + timedelta(minutes=rng.randint(5, 600))
        e.positive = None if i % 10 == 1 else rng.random() < 0.4
        e.amended = i % 6 == 2
        if i % 5 == 0:
            e.critical_raised_at = (e.preliminary_at or e.final_at) - timedelta(minutes=1)
            e.critical_ack_at = None if i % 15 == 0 else e.critical_raised_at + timedelta(minutes=rng.randint(1, 20))
    return dept


def events(e: Exam, campus: str) -> Iterable[tuple[EventData, str]]:
    """What registration, scheduling, queue-calling, worklist, reporting and print-scp publish about it
    (FilmMatched last: its time is when it is published)."""
    patient = PatientRef(empi_id=f"E{e.accession}", patient_id=f"P{e.accession}", name=e.name)
    order_id = f"O{e.accession}"
    yield OrderCreated(order_id=order_id, accession_number=e.accession, requested_procedure_id=f"RP{e.accession}",
                       study_instance_uid=f"1.2.{abs(hash(e.accession)) % 10**9}", patient=patient,
                       patient_class=e.patient_class, ordering_department=e.department,  # type: ignore[arg-type]
                       items=[ExamItem(code=f"{e.modality}-X", name="检查", modality=e.modality)],
                       ordered_at=e.ordered_at, version=1), e.accession
    appointment = AppointmentInfo(
        appointment_id=f"AP{e.accession}", order_id=order_id, accession_number=e.accession, patient=patient,
        exam_code=f"{e.modality}-X", exam_name="检查", modality=e.modality, room_id=e.room_id, room_name=e.room_name,
        station_ae_title=e.ae_title, campus=campus, start=e.appointment_start,
        end=e.appointment_start + timedelta(minutes=15), version=1, booked_at=e.booked_at)
    yield AppointmentBooked(appointment=appointment), e.accession
    if e.cancelled:
        yield OrderCancelled(order_id=order_id, accession_number=e.accession, version=2), e.accession
    if e.no_show:
        yield AppointmentNoShow(appointment_id=f"AP{e.accession}", order_id=order_id, accession_number=e.accession,
                                patient=patient, version=2), e.accession
    if e.arrived_at:
        yield PatientArrived(order_id=order_id, accession_number=e.accession, patient=patient, queue_id="Q",
                             queue_number="A001", room_id=e.room_id, arrived_at=e.arrived_at), e.accession
    if e.started_at and e.completed_at:
        mpps = dict(accession_number=e.accession, study_instance_uid="1.2", patient=patient,
                    mpps_uid=f"1.3.{e.accession}", station_ae_title=e.ae_title, modality=e.modality)
        yield ExamStarted(**mpps, started_at=e.started_at), e.accession
        # Completed without its start time: the one already known must stay (a partial payload blanks nothing).
        yield ExamCompleted(**mpps, status=e.status, completed_at=e.completed_at), e.accession  # type: ignore[arg-type]
    if e.final_at:
        yield ReportSigned(report_id=f"R{e.accession}", version=3, accession_number=e.accession, patient=patient,
                           signed_by="chief", signed_at=e.final_at, content_sha256="0" * 64, positive=e.positive,
                           preliminary_at=e.preliminary_at, preliminary_by="dr" if e.preliminary_at else None,
                           preliminary_kept=e.kept), e.accession
    if e.amended:
        yield ReportAmended(report_id=f"R{e.accession}", version=4, previous_version=3, accession_number=e.accession,
                            patient=patient, kind="amended", reason="补充", signed_by="chief",
                            signed_at=(e.final_at or e.ordered_at) + timedelta(days=1)), e.accession
    if e.critical_raised_at:
        yield CriticalRaised(critical_id=f"C{e.accession}", accession_number=e.accession, patient=patient,
                             finding="气胸", modality=e.modality, raised_by="dr", raised_at=e.critical_raised_at,
                             ordering_department=e.department), e.accession
        if e.critical_ack_at:
            yield CriticalAcknowledged(critical_id=f"C{e.accession}", accession_number=e.accession,
                                       acknowledged_by="his", channel="hl7",
                                       acknowledged_at=e.critical_ack_at), e.accession
    if e.final_at and not e.amended:
        yield FilmMatched(film_id=f"F{e.accession}", patient=patient, accession_number=e.accession,
                          method="study-uid"), e.accession


# ---- the figures, computed directly from the fixture ---------------------------------------------

def percentile(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    s = sorted(values)
    pos = fraction * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _span(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() if a and b else None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _s(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def volumes_by_month(d: Department) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"exams": 0})
    for e in d.exams:
        if e.status == "completed" and e.completed_at:
            out[(e.completed_at.astimezone(TZ).strftime("%Y-%m"), e.modality)]["exams"] += 1
    return dict(out)


STEPS = (("ordered_at", "booked_at"), ("booked_at", "arrived_at"), ("arrived_at", "started_at"),
         ("started_at", "completed_at"), ("completed_at", "preliminary_at"), ("preliminary_at", "final_at"),
         ("completed_at", "final_at"), ("final_at", "delivered_at"), ("ordered_at", "final_at"))


def turnaround(d: Department) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for modality in ("CT", "MR", "DX"):
        exams = [e for e in d.exams if e.modality == modality]
        row: dict[str, Any] = {"exams": len(exams)}
        for a, b in STEPS:
            spans = [s for e in exams if (s := _span(getattr(e, a), getattr(e, b))) is not None]
            name = f"{a.removesuffix('_at')}_to_{b.removesuffix('_at')}"
            row |= {f"{name}_n": len(spans), f"{name}_p50_s": _s(percentile(spans, 0.5)),
                    f"{name}_p90_s": _s(percentile(spans, 0.9))}
        out[("all", modality)] = row
    return out


def waiting(d: Department) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for modality in ("CT", "MR", "DX"):
        exams = [e for e in d.exams if e.modality == modality and not e.cancelled]
        waits = [s for e in exams if (s := _span(e.arrived_at, e.started_at)) is not None]
        leads = [s for e in exams if (s := _span(e.booked_at, e.appointment_start)) is not None]
        no_shows = sum(e.no_show for e in exams)
        out[("all", modality)] = {
            "appointments": len(exams), "no_shows": no_shows, "no_show_rate": _rate(no_shows, len(exams)),
            "waited": len(waits), "wait_p50_s": _s(percentile(waits, 0.5)), "wait_p90_s": _s(percentile(waits, 0.9)),
            "lead_p50_s": _s(percentile(leads, 0.5)), "lead_p90_s": _s(percentile(leads, 0.9))}
    return out


def reports(d: Department) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for modality in ("CT", "MR", "DX"):
        finals = [e for e in d.exams if e.modality == modality and e.final_at]
        judged = [e for e in finals if e.positive is not None]
        reviewed = [e for e in finals if e.kept is not None]
        positive, kept, amended = (sum(bool(e.positive) for e in judged), sum(bool(e.kept) for e in reviewed),
                                   sum(e.amended for e in finals))
        out[("all", modality)] = {
            "finals": len(finals), "judged": len(judged), "positive": positive,
            "positive_rate": _rate(positive, len(judged)), "reviewed": len(reviewed), "kept": kept,
            "agreement_rate": _rate(kept, len(reviewed)), "amended": amended,
            "amendment_rate": _rate(amended, len(finals))}
    return out


def critical(d: Department) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for modality in ("CT", "MR", "DX"):
        raised = [e for e in d.exams if e.modality == modality and e.critical_raised_at]
        if not raised:
            continue
        acks = [s for e in raised if (s := _span(e.critical_raised_at, e.critical_ack_at)) is not None]
        within = sum(1 for s in acks if s <= 600)
        out[("all", modality)] = {"raised": len(raised), "eligible": len(raised), "within_window": within,
                                  "rate_within_window": _rate(within, len(raised)),
                                  "ack_p50_s": _s(percentile(acks, 0.5)), "ack_p90_s": _s(percentile(acks, 0.9))}
    return out


def utilisation(d: Department) -> dict[str, dict[str, Any]]:
    """Per registered device: MPPS busy time within opening hours over the opening hours, days in [start, end)."""
    first, last = d.start.astimezone(TZ).date(), (d.end - timedelta(microseconds=1)).astimezone(TZ).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    out = {}
    for ae in d.devices:
        open_s = busy_s = 0.0
        exams = 0
        for day in days:
            opens = max(datetime.combine(day, OPENS, TZ), d.start)
            closes = min(datetime.combine(day, CLOSES, TZ), d.end)
            open_s += max((closes - opens).total_seconds(), 0)
            for e in d.exams:
                if e.ae_title == ae and e.started_at and e.completed_at and e.started_at < closes \
                        and e.completed_at > opens:
                    busy_s += max((min(e.completed_at, closes) - max(e.started_at, opens)).total_seconds(), 0)
                    exams += 1
        out[ae] = {"exams": exams, "busy_s": round(busy_s, 1), "open_s": round(open_s, 1),
                   "utilisation": _rate_f(busy_s, open_s)}
    return out


def _rate_f(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None
