"""The department dashboard and the wall screen in headless Chromium, on the all-in-one platform with a day's
events published onto the bus: the department head signs in, sees the charts (Chart.js from the service
itself), the summary and the modality status, exports the figure to Excel (read back with openpyxl) and
signs out to an empty page; the wall screen (1920x1080, no sign-in, its token in its address) shows today's
flow live and names masked."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentInfo,
    ExamCompleted,
    ExamItem,
    ExamStarted,
    OrderCreated,
    PatientArrived,
    PatientRef,
    ReportSigned,
)
from imaging_testing import event_producer, free_port
from openpyxl import load_workbook
from playwright.async_api import Browser, expect

from . import staff_pages
from .staff_pages import Site, signed_in, snapshot

site, browser = staff_pages.site, staff_pages.browser  # the shared fixtures


@pytest.fixture(scope="module")
async def day(site: Site, test_env: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
    """Three exams today on one CT (two finished and reported, one under way), the CT registered."""
    uid = uuid.uuid4().hex[:6].upper()
    ae, campus, now = f"CT{uid}", f"院区{uid}", datetime.now(UTC)
    async with site.client("it-ops") as api:
        r = await api.put(f"/api/dashboard/devices/ct-{uid.lower()}", json={
            "kind": "modality", "name": f"CT {uid}", "ae_title": ae, "host": "127.0.0.1", "port": free_port(),
            "modality": "CT", "campus": campus})
        assert r.status_code == 200, r.text
    async with site.client("senior-radiologist") as api:  # every completed CT drawn for image QC
        assert (await api.put("/api/dashboard/qc/plans/image/CT", json={"percent": 100})).status_code == 200
    producer = event_producer(test_env["DATABASE_URL"], service="registration", schema="dashboard_page_producer")
    async with producer as emit:
        for i, name in enumerate(("司马光明", "欧阳娜娜", "张三丰")):
            acc, start = f"PG{uid}{i}", now - timedelta(hours=3 - i)
            patient = PatientRef(empi_id=f"E{acc}", patient_id=f"P{acc}", name=name)
            await emit(OrderCreated(order_id=f"O{acc}", accession_number=acc, requested_procedure_id="RP",
                                    study_instance_uid=f"1.2.{i}", patient=patient, version=1,
                                    ordered_at=start - timedelta(days=1), ordering_department="内科",
                                    items=[ExamItem(code="CT-CHEST", name="胸部CT", modality="CT")]), acc)
            await emit(AppointmentBooked(appointment=AppointmentInfo(
                appointment_id=f"A{acc}", order_id=f"O{acc}", accession_number=acc, patient=patient,
                exam_code="CT-CHEST", exam_name="胸部CT", modality="CT", room_id=f"R{uid}", room_name="CT1室",
                station_ae_title=ae, campus=campus, start=start, end=start + timedelta(minutes=15), version=1,
                booked_at=start - timedelta(hours=20))), acc)
            await emit(PatientArrived(order_id=f"O{acc}", accession_number=acc, patient=patient, queue_id="Q",
                                      queue_number=f"C{i}", arrived_at=start - timedelta(minutes=10)), acc)
            mpps = dict(accession_number=acc, study_instance_uid=f"1.2.{i}", patient=patient, mpps_uid=f"1.3.{acc}",
                        station_ae_title=ae, modality="CT")
            await emit(ExamStarted(**mpps, started_at=start), acc)
            if i < 2:
                await emit(ExamCompleted(**mpps, started_at=start, completed_at=start + timedelta(minutes=12)), acc)
                await emit(ReportSigned(report_id=f"R{acc}", version=2, accession_number=acc, patient=patient,
                                        signed_by="chief", signed_at=start + timedelta(minutes=50),
                                        content_sha256="0" * 64, positive=i == 0,
                                        preliminary_at=start + timedelta(minutes=30), preliminary_kept=True), acc)
        async with site.client("admin") as api:
            screen = (await api.put(f"/api/dashboard/screens/wall-{uid}", json={"title": "大厅大屏"})).json()
        # The producer's relay keeps running while the tests look (it publishes after each commit).
        yield {"uid": uid, "campus": campus, "screen": screen}


async def test_the_department_head_sees_charts_devices_and_exports(site: Site, browser: Browser,
                                                                   day: dict[str, Any]) -> None:
    context, page, errors = await signed_in(browser, site, "/ui/dashboard/", ["senior-radiologist"], "科室主任")
    try:
        for chart in ("volumes", "turnaround", "reports", "utilisation"):
            await page.wait_for_function("id => !!Chart.getChart(document.getElementById(id))", arg=f"chart-{chart}")
        device = page.locator("#device-rows tr", has_text=f"CT{day['uid']}")
        await expect(device).to_contain_text("离线", timeout=30_000)  # nothing answers on its port
        await page.fill("#modality", "CT")
        await page.click("#apply")
        await expect(page.locator("#summary tr", has_text="CT").first).to_be_visible()
        await snapshot(page, "dashboard", "department-head")

        await page.select_option("#metric", "volumes")
        async with page.expect_download() as download:
            await page.click("#xlsx")
        path = await (await download.value).path()
        sheet = load_workbook(io.BytesIO(path.read_bytes()), read_only=True).active
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0][:3] == ("period", "key", "exams") and any(r[1] == "CT" for r in rows[1:])

        async with page.expect_navigation(wait_until="load"):
            await page.click("#logout")
        await expect(page.locator("#login")).to_be_visible()
        assert f"CT{day['uid']}" not in await page.content()
        assert errors == []
    finally:
        await context.close()


async def test_a_technologist_grades_a_drawn_exam(site: Site, browser: Browser, day: dict[str, Any]) -> None:
    context, page, errors = await signed_in(browser, site, "/ui/dashboard/qc/", ["technologist"], "质控技师")
    try:
        row = page.locator("#items tr", has_text=f"PG{day['uid']}0")
        await expect(row).to_contain_text(f"CT{day['uid']}")
        await row.get_by_role("button", name="评阅").click()
        await page.get_by_role("radio", name="乙").check()
        await page.get_by_role("checkbox", name="伪影").check()
        await page.click("#submit")
        await expect(page.locator("#saved")).to_have_text("已提交")
        await expect(row).to_contain_text("乙")
        await snapshot(page, "dashboard", "quality-control")
        assert errors == []
    finally:
        await context.close()
    async with site.client("senior-radiologist") as api:
        stats = (await api.get("/api/dashboard/qc/image/stats")).json()["data"]
    assert any(r["person"] == f"CT{day['uid']}" and r["grade_b"] == 1 for r in stats)


async def test_the_wall_screen_shows_today_live_with_masked_names(site: Site, browser: Browser,
                                                                  day: dict[str, Any]) -> None:
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1920, "height": 1080},
                                        timezone_id="Asia/Shanghai")
    page = await context.new_page()
    errors = staff_pages.watch_console(page)
    try:
        screen = day["screen"]
        await page.goto(f"{site.url}/ui/dashboard/big-screen?screen={screen['screen_id']}&token={screen['token']}")
        await expect(page.locator("#under-way")).to_contain_text("张**")
        await expect(page.locator("#devices")).to_contain_text(f"CT {day['uid']}")
        await expect(page.locator("#flow tr", has_text="CT").first).to_be_visible()
        assert await page.evaluate("id => !!Chart.getChart(document.getElementById(id))", "flow-chart")
        content = await page.content()
        assert "张三丰" not in content and "司马光明" not in content
        size = await page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        assert size == [1920, 1080]
        await snapshot(page, "dashboard", "big-screen")
        assert errors == []

        wrong = await context.new_page()
        await wrong.goto(f"{site.url}/ui/dashboard/big-screen?screen={screen['screen_id']}&token=wrong")
        await expect(wrong.locator("#status")).to_contain_text("重连")
        assert await wrong.locator("#under-way tr").count() == 0
    finally:
        await context.close()
