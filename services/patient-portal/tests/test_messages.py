"""Messages to patients, through the test SMSC over SMPP: booking, reminder, report ready and amended,
critical results per department policy; Chinese texts; retries; opt-out; quiet hours; status per message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import smpplib.consts
from imaging_common.events.types import AppointmentReminder, CriticalRaised, ReportAmended
from imaging_testing import eventually
from imaging_testing.smsc import TestSmsc
from patient_portal.domain import messages

from .conftest import API, new_phone, registered, sign_in
from .test_exams import booked, signed

TZ = ZoneInfo("Asia/Shanghai")


async def statuses(pool: asyncpg.Pool, phone: str) -> dict[str, str]:
    return {r["kind"]: r["status"] for r in await pool.fetch("SELECT kind, status FROM message WHERE phone = $1",
                                                             phone)}


async def test_booking_reminder_report_and_amendment_reach_the_phone(client: httpx.AsyncClient, smsc: TestSmsc,
                                                                     emit: Any, pool: asyncpg.Pool) -> None:
    phone = new_phone()
    order = await registered(emit, pool, phone)
    start = datetime(2031, 3, 9, 9, 30, tzinfo=TZ)
    appointment = booked(order, start)
    await emit(appointment, order.accession_number)
    text = await smsc.wait_for(f"86{phone}")
    assert text == "【影像中心】您好，您的胸部CT平扫检查已预约在3月9日 09:30，地点：CT1室。请提前15分钟到达签到。"
    await emit(AppointmentReminder(appointment=appointment.appointment, preparation="检查前禁食4小时。"),
               order.accession_number)
    assert "禁食4小时" in await smsc.wait_for(f"86{phone}", after=1)
    report = signed(order)
    await emit(report, order.accession_number)
    assert "检查报告已出" in await smsc.wait_for(f"86{phone}", after=2)
    await emit(report, order.accession_number)  # the same report again (another delivery): no second message
    await emit(ReportAmended(report_id=report.report_id, version=2, previous_version=1,
                             accession_number=order.accession_number, patient=order.patient, kind="amended",
                             reason="补充", signed_by="dr-wang", signed_at=datetime.now(UTC)), order.accession_number)
    assert "已更正（第2版）" in await smsc.wait_for(f"86{phone}", after=3)
    await eventually(lambda: _all_sent(pool, phone, 4), "four messages sent")
    assert len(smsc.to(f"86{phone}")) == 4

    headers = await sign_in(client, smsc, phone)
    mine = (await client.get(f"{API}/messages", headers=headers)).json()
    assert {m["kind"] for m in mine["data"]} == {"appointment-booked", "appointment-reminder", "report-ready",
                                                 "report-amended"}
    assert all(m["status"] == "sent" and m["sent_at"] for m in mine["data"])
    receipts = await pool.fetch("SELECT provider_message_id FROM message WHERE phone = $1", phone)
    assert all(r["provider_message_id"].startswith("M") for r in receipts)


async def _all_sent(pool: asyncpg.Pool, phone: str, n: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM message WHERE phone = $1 AND status = 'sent'", phone) == n


def critical(order: Any, department: str) -> CriticalRaised:
    return CriticalRaised(critical_id=f"C{order.order_id}{department}", accession_number=order.accession_number,
                          patient=order.patient, finding="张力性气胸", raised_by="dr-li", raised_at=datetime.now(UTC),
                          ordering_department=department)


async def test_critical_results_by_department_policy_and_opt_out(client: httpx.AsyncClient, smsc: TestSmsc,
                                                                 emit: Any, pool: asyncpg.Pool) -> None:
    phone = new_phone()
    order = await registered(emit, pool, phone)
    headers = await sign_in(client, smsc, phone)
    r = await client.put(f"{API}/preferences", json={"messages": False}, headers=headers)
    assert r.status_code == 200 and r.json() == {"messages": False}
    await emit(booked(order, datetime.now(UTC) + timedelta(days=1)), order.accession_number)
    await emit(critical(order, "呼吸内科"), order.accession_number)  # this department does not want it
    await emit(critical(order, "急诊科"), order.accession_number)
    text = await smsc.wait_for(f"86{phone}", after=1)
    assert "需要尽快处理" in text and "急诊科" in text and "气胸" not in text, "urgent, but never the finding"
    expected = {"appointment-booked": "opted-out", "critical": "sent"}

    async def recorded() -> bool:
        return await statuses(pool, phone) == expected

    await eventually(recorded, "the booking kept as opted-out, the critical notice sent")
    assert len(smsc.to(f"86{phone}")) == 2  # the sign-in code and the critical notice


async def test_a_throttled_send_is_retried_and_a_refused_one_fails(smsc: TestSmsc, emit: Any,
                                                                   pool: asyncpg.Pool, client: httpx.AsyncClient,
                                                                   ) -> None:
    phone = new_phone()
    order = await registered(emit, pool, phone)
    smsc.refuse_next = 2
    await emit(booked(order, datetime.now(UTC) + timedelta(days=2)), order.accession_number)
    await smsc.wait_for(f"86{phone}")
    await eventually(lambda: _all_sent(pool, phone, 1), "sent after retries")
    assert await pool.fetchval("SELECT attempts FROM message WHERE phone = $1", phone) == 3
    other = new_phone()
    order = await registered(emit, pool, other)
    smsc.refuse_next, smsc.refuse_status = 1, smpplib.consts.SMPP_ESME_RINVDSTADR
    try:
        await emit(booked(order, datetime.now(UTC) + timedelta(days=2)), order.accession_number)
        await eventually(lambda: pool.fetchval("SELECT status = 'failed' FROM message WHERE phone = $1", other),
                         "a bad number fails at once")
    finally:
        smsc.refuse_status = smpplib.consts.SMPP_ESME_RTHROTTLED
    row = await pool.fetchrow("SELECT attempts, last_error FROM message WHERE phone = $1", other)
    assert row["attempts"] == 1 and "SMSC refused" in row["last_error"]
    admin = await client.get(f"{API}/admin/messages", params={"status": "failed"},
                             headers=_staff(client, "it-ops"))
    assert admin.status_code == 200 and other not in admin.text  # the body is the message; the phone is not shown
    assert any(m["accession_number"] == order.accession_number for m in admin.json()["data"])


def _staff(client: httpx.AsyncClient, role: str) -> dict[str, str]:
    from imaging_testing.auth import issue_test_token

    settings = client._transport.app.state.ctx.settings  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {issue_test_token(settings, roles=[role], username=role)}"}


def test_quiet_hours_hold_messages_until_morning() -> None:
    quiet = messages.QuietHours.parse("21:00-08:00", "Asia/Shanghai")
    assert quiet is not None
    evening = datetime(2026, 12, 8, 22, 15, tzinfo=TZ)
    assert quiet.release(evening) == datetime(2026, 12, 9, 8, 0, tzinfo=TZ)
    early = datetime(2026, 12, 9, 6, 0, tzinfo=TZ)
    assert quiet.release(early) == datetime(2026, 12, 9, 8, 0, tzinfo=TZ)
    noon = datetime(2026, 12, 9, 12, 0, tzinfo=TZ)
    assert quiet.release(noon) == noon
    assert messages.QuietHours.parse("", "Asia/Shanghai") is None


async def test_a_message_queued_in_quiet_hours_waits(pool: asyncpg.Pool, emit: Any, smsc: TestSmsc) -> None:
    phone = new_phone()
    order = await registered(emit, pool, phone)
    now = datetime.now(TZ)
    around_now = messages.QuietHours(start=(now - timedelta(hours=1)).time(), end=(now + timedelta(hours=1)).time(),
                                     tz=TZ)
    async with pool.acquire() as conn:
        assert await messages.enqueue(conn, dedup_key=f"quiet:{phone}", kind="report-ready",
                                      empi_id=order.patient.empi_id, body="quiet", accession_number=None,
                                      now=datetime.now(UTC), quiet=around_now)
        due = await conn.fetchval("SELECT next_attempt_at FROM message WHERE dedup_key = $1", f"quiet:{phone}")
        assert due > datetime.now(UTC) + timedelta(minutes=50)
        await conn.execute("DELETE FROM message WHERE dedup_key = $1", f"quiet:{phone}")
