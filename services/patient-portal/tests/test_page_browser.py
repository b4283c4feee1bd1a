"""The patient's path in Chromium at a phone's size (390x844): sign in with the code the test SMSC
received over SMPP, see the exams and the report, open the PDF report, share the report, open the link
on another phone, revoke it (the link then refuses), sign out and find nothing left."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from imaging_testing import eventually, http_server
from imaging_testing.smsc import TestSmsc
from patient_portal.app import create_app
from patient_portal.settings import Settings
from playwright.async_api import async_playwright, expect

from .conftest import code_in, new_phone, registered
from .test_exams import signed

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
PHONE_SIZE = {"width": 390, "height": 844}
ARTEFACTS = Path(__file__).resolve().parents[3] / "var" / "test-artefacts" / "patient"


@pytest.fixture(scope="module")
async def portal(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[tuple[str, Any]]:
    """The portal over real TCP: its URL and its app (for its Redis)."""
    app = create_app(settings)
    async with http_server(app) as url:
        yield url, app


async def test_a_patient_signs_in_on_a_phone_and_reads_the_report(portal: tuple[str, Any], smsc: TestSmsc,
                                                                   emit: Any, pool: asyncpg.Pool) -> None:
    site, app = portal
    phone = new_phone()
    order = await registered(emit, pool, phone, name="赵小红")
    await emit(signed(order, impression="右肺上叶小结节，建议随访。"), order.accession_number)
    await eventually(lambda: pool.fetchval("SELECT status = 'reported' FROM exam WHERE accession_number = $1",
                                           order.accession_number), "reported")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport=PHONE_SIZE, is_mobile=True, has_touch=True, locale="zh-CN")
        page = await context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        response = await page.goto(f"{site}/ui/patient/")
        assert response is not None and response.headers["cache-control"] == "no-store"
        await page.fill("#phone", phone)
        await page.click("#send")
        await expect(page.locator("#message")).to_contain_text("验证码已发送至")
        code = code_in(await smsc.wait_for(f"86{phone}", containing="验证码"))
        await page.fill("#code", code)
        await page.click("#enter")
        exam = page.locator(f"button.exam[data-accession='{order.accession_number}']")
        await expect(exam).to_contain_text("报告已出")
        await expect(exam).to_contain_text("赵小红")
        await page.screenshot(path=str(ARTEFACTS / "exams.png"))
        await exam.click()
        await expect(page.locator(".impression")).to_have_text("右肺上叶小结节，建议随访。")
        await page.screenshot(path=str(ARTEFACTS / "report.png"))
        async with context.expect_page() as opened:
            await page.click("#pdf")
        pdf = await opened.value
        assert pdf.url.startswith("blob:"), pdf.url
        await pdf.close()
        # Share for 3 days; someone else opens the link on their own phone.
        await page.select_option("#share-days", "3")
        await page.click("#share")
        url = await page.locator("#share-url").input_value()
        assert "/ui/patient/shared#" in url
        other = await browser.new_context(viewport=PHONE_SIZE, is_mobile=True, locale="zh-CN")
        viewer = await other.new_page()
        await viewer.goto(url.replace("http://localhost:8080", site))
        await expect(viewer.locator(".impression")).to_have_text("右肺上叶小结节，建议随访。")
        await viewer.screenshot(path=str(ARTEFACTS / "shared.png"))
        await page.reload()  # the token was in memory only: a reload signs out
        await expect(page.locator("#signin")).to_be_visible()
        await page.fill("#phone", phone)
        ctx = app.state.ctx  # the next code at once: the phone's one-code-a-minute limit lifted
        await ctx.redis.delete(f"{ctx.settings.namespace}:patient:limit:interval:{phone}")
        before = len(smsc.to(f"86{phone}"))
        await page.click("#send")
        await page.fill("#code", code_in(await smsc.wait_for(f"86{phone}", after=before, containing="验证码")))
        await page.click("#enter")
        await page.click(f"button.exam[data-accession='{order.accession_number}']")
        share = page.locator(".share").first
        await expect(share).to_contain_text("已被打开 1 次")
        await share.locator(".revoke").click()
        await expect(share).to_contain_text("已撤销")
        await viewer.reload()
        await expect(viewer.locator("#message")).to_have_text("分享链接已被撤销")
        await other.close()
        # Nothing kept on the phone: no storage, no cookie; signing out clears the page.
        assert await page.evaluate("localStorage.length + sessionStorage.length") == 0
        assert await context.cookies() == []
        await page.click("#logout")
        await expect(page.locator("#signin")).to_be_visible()
        assert "右肺" not in await page.content()
        await browser.close()
    assert errors == []
