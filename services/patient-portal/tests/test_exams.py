"""The patient's exams follow the other services' events (over RabbitMQ): booked, checked in, reported,
amended; late events never move an exam back; the report comes as text and as a PDF whose QR opens a
verification that tells a superseded copy from the newest one."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentInfo,
    OrderCreated,
    PatientArrived,
    ReportAmended,
    ReportSigned,
)
from imaging_testing import eventually
from imaging_testing.smsc import TestSmsc

from .conftest import API, new_phone, registered, sign_in


async def status_of(pool: asyncpg.Pool, accession: str, status: str) -> bool:
    return bool(await pool.fetchval("SELECT status = $2 FROM exam WHERE accession_number = $1", accession, status))


def booked(order: OrderCreated, start: datetime) -> AppointmentBooked:
    return AppointmentBooked(appointment=AppointmentInfo(
        appointment_id=f"AP{order.order_id}", order_id=order.order_id, accession_number=order.accession_number,
        patient=order.patient, exam_code="CT-CHEST", exam_name="胸部CT平扫", modality="CT", room_id="CT1",
        room_name="CT1室", start=start, end=start + timedelta(minutes=15), version=1))


def signed(order: OrderCreated, *, impression: str = "双肺未见明显异常。") -> ReportSigned:
    return ReportSigned(report_id=f"RP{order.order_id}", version=1, accession_number=order.accession_number,
                        patient=order.patient, signed_by="dr-li", signed_at=datetime.now(UTC),
                        content_sha256=hashlib.sha256(impression.encode()).hexdigest(), impression=impression)


async def test_the_exam_goes_from_booked_to_reported(client: httpx.AsyncClient, smsc: TestSmsc, emit: Any,
                                                     pool: asyncpg.Pool) -> None:
    phone = new_phone()
    order = await registered(emit, pool, phone)
    acc = order.accession_number
    start = datetime.now(UTC) + timedelta(hours=2)
    await emit(booked(order, start), acc)
    await eventually(lambda: status_of(pool, acc, "booked"), "booked")
    await emit(PatientArrived(order_id=order.order_id, accession_number=acc, patient=order.patient, queue_id="CT",
                              queue_number="CT012", arrived_at=datetime.now(UTC)), acc)
    await eventually(lambda: status_of(pool, acc, "checked_in"), "checked in")
    headers = await sign_in(client, smsc, phone)
    exam = (await client.get(f"{API}/exams/{acc}", headers=headers)).json()
    assert exam["queue_number"] == "CT012" and exam["room_name"] == "CT1室"
    assert exam["appointment_start"] == start.isoformat()
    assert (await client.get(f"{API}/exams/{acc}/report.pdf", headers=headers)).status_code == 404, "not reported yet"

    report = signed(order)
    await emit(report, acc)
    await eventually(lambda: status_of(pool, acc, "reported"), "reported")
    # A late check-in never moves a reported exam back.
    late = await emit(PatientArrived(order_id=order.order_id, accession_number=acc, patient=order.patient,
                                     queue_id="CT", queue_number="CT099", arrived_at=datetime.now(UTC)), acc)
    await eventually(lambda: pool.fetchval("SELECT 1 FROM inbox WHERE event_id = $1", late.id), "the late check-in")
    exam = (await client.get(f"{API}/exams/{acc}", headers=headers)).json()
    assert exam["status"] == "reported" and exam["impression"] == "双肺未见明显异常。"
    assert exam["queue_number"] == "CT012", "a late check-in changes nothing"
    # The check-in told the patient their ticket, once.
    checked_in = [t for t in smsc.to(f"86{phone}") if "您已签到" in t]
    assert checked_in == ["【影像中心】您已签到，排队号CT012，请在候诊区留意叫号。检查进度可在手机上查看："
                          "http://localhost:8080/ui/patient/"]

    pdf = await client.get(f"{API}/exams/{acc}/report.pdf", headers=headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and pdf.headers["cache-control"] == "no-store"
    verify = await client.get(f"{API}/reports/{report.report_id}/verify", params={"version": 1})
    assert verify.json()["current"] is True and verify.json()["content_sha256"] == report.content_sha256

    await emit(ReportAmended(report_id=report.report_id, version=2, previous_version=1, accession_number=acc,
                             patient=order.patient, kind="amended", reason="补充", signed_by="dr-wang",
                             signed_at=datetime.now(UTC)), acc)

    async def superseded() -> bool:
        r = await client.get(f"{API}/reports/{report.report_id}/verify", params={"version": 1})
        return r.json()["current"] is False and r.json()["current_version"] == 2

    await eventually(superseded, "the amendment supersedes the first copy")
    # A late first version changes nothing.
    await emit(signed(order, impression="旧的"), acc)
    exam = (await client.get(f"{API}/exams/{acc}", headers=headers)).json()
    assert exam["report_version"] == 2 and exam["impression"] == "双肺未见明显异常。"
    reads = await pool.fetchval("SELECT count(*) FROM audit.audit_log WHERE action = 'read' AND entity = 'report' "
                                "AND entity_id = $1", report.report_id)
    assert reads == 1
