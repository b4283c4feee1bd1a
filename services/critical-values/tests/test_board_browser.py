"""The live board in headless Chromium: open values with time left counting down, coloured by
urgency (an overdue one red), masked names, the QC statistics for a senior doctor."""

from __future__ import annotations

from datetime import timedelta

import httpx
from critical_values.app import create_app
from imaging_testing import http_server
from imaging_testing.auth import issue_test_token
from playwright.async_api import async_playwright

from .conftest import World, fast_settings

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


async def test_board_in_chromium(world: World) -> None:
    settings = fast_settings()
    app = create_app(settings)
    async with http_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        rad = {"Authorization": f"Bearer {issue_test_token(settings, roles=['radiologist'], username='r')}"}
        fresh, late = await world.order(), await world.order()
        r1 = await client.post("/api/critical-values/critical-values", headers=rad, json={
            "accession_number": fresh["accession_number"], "finding": "张力性气胸"})
        r2 = await client.post("/api/critical-values/critical-values", headers=rad, json={
            "accession_number": late["accession_number"], "finding": "颅内出血"})
        assert r1.status_code == r2.status_code == 201
        # A raised_at sent by a client is only a claim (issue 18): the deadlines run from when the value
        # reached us. Age this one in the database, as if it had reached us 20 minutes ago.
        await world.pool.execute(
            """UPDATE critical_value SET raised_at = raised_at - $2::interval, notify_due_at = notify_due_at - $2,
                   ack_due_at = ack_due_at - $2 WHERE critical_id = $1""",
            r2.json()["critical_id"], timedelta(minutes=20))
        token = issue_test_token(settings, roles=["senior-radiologist"], username="qc.chief")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                               args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.add_init_script(f"sessionStorage.setItem('imaging.access_token', {token!r})")
                await page.goto(f"{url}/ui/critical-values/")
                fresh_row = page.locator("tr", has_text=fresh["accession_number"])
                late_row = page.locator("tr", has_text=late["accession_number"])
                await fresh_row.wait_for(timeout=10000)
                assert await fresh_row.get_attribute("class") == "ok"
                assert await late_row.get_attribute("class") == "overdue"
                assert (await late_row.locator("td.left").inner_text()).startswith("超时")
                assert "张*丰" in await fresh_row.inner_text() and "张三丰" not in await page.content()
                first = await fresh_row.locator("td.left").inner_text()
                await page.wait_for_timeout(2100)
                assert await fresh_row.locator("td.left").inner_text() != first  # counting down
                stats_row = page.locator("#statrows tr", has_text=world.department)
                await stats_row.wait_for(timeout=10000)
            finally:
                await browser.close()
