"""The technologists' worklist page follows changes live (issue 23, item 3): a step imported, or cancelled,
shows on an open page without a refresh and without polling, also after the stream was ended and opened
again; rooms sorted by place; times in the center's local time; names as people write them. Headless
Chromium against the app over real HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
from imaging_testing import free_port, http_server
from playwright.async_api import async_playwright, expect
from worklist.app import create_app
from worklist.settings import Settings

from .conftest import TZ
from .test_app import auth, item

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


async def test_the_page_follows_imports_and_cancellations(test_env: dict[str, str]) -> None:
    # Streams of three seconds: the page must open its stream again, and keep up.
    settings = Settings(worklist_port=free_port(), worklist_host="127.0.0.1", worklist_stream_seconds=3.0)
    tag = uuid.uuid4().hex[:6].upper()
    clerk = auth(settings, "clerk", username="clerk1")
    token = auth(settings, "technologist", username=f"t{tag}")["Authorization"].removeprefix("Bearer ")
    first = item(tag, 1, location=f"A{tag} 1号MR室", patient_name="张三", patient_name_latin="ZHANG^SAN")
    async with http_server(create_app(settings)) as url, async_playwright() as pw:
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:
            r = await api.post("/api/worklist/items", json={"items": [first]}, headers=clerk)
            assert r.status_code == 200, r.text
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                               args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
                page = await context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                await page.add_init_script(f"sessionStorage.setItem('imaging.access_token', {token!r})")
                await page.goto(f"{url}/ui/worklist/")
                await page.get_by_role("button", name=f"A{tag} 1号MR室", exact=False).click()
                rows = page.locator("#items tr")
                await expect(rows).to_have_count(1)
                await expect(page.locator("#live")).to_have_text("实时更新")
                row = rows.first
                assert await row.locator("td").nth(2).text_content() == "张三"  # not ZHANG^SAN=张三
                start = datetime.fromisoformat(first["start"]).astimezone(TZ)
                assert await row.locator("td").first.text_content() == start.strftime("%H:%M")

                # A new step in the room, after the stream has been ended and opened again.
                await page.wait_for_timeout(3500)
                second = item(tag, 2, location=f"A{tag} 1号MR室")
                r = await api.post("/api/worklist/items", json={"items": [second]}, headers=clerk)
                assert r.status_code == 200, r.text
                await expect(rows).to_have_count(2, timeout=5000)

                # Cancelled at the front desk: off the technologist's screen.
                found = await api.get("/api/worklist/items", params={"accession_number": first["accession_number"]},
                                      headers=auth(settings, "technologist"))
                step_id = found.json()["data"][0]["id"]
                r = await api.post(f"/api/worklist/items/{step_id}/cancel", json={"reason": "患者取消"},
                                   headers=clerk)
                assert r.status_code == 200, r.text
                await expect(rows).to_have_count(1, timeout=5000)
                await expect(page.locator("#items")).not_to_contain_text(first["accession_number"])
                assert errors == []
            finally:
                await browser.close()
