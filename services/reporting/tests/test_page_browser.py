"""The radiologist's page in headless Chromium, against the app over real HTTP: pick the exam from
the worklist, write with a phrase, see a QC blocker refuse the signature, fix it, sign."""

from __future__ import annotations

from imaging_testing import http_server
from playwright.async_api import async_playwright
from reporting.app import create_app

from .conftest import Service, World

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


async def test_write_check_and_sign_in_the_page(service: Service, world: World) -> None:
    svc = service
    username = f"rad-{world.tag}"
    token = svc.auth("radiologist", username=username)["Authorization"].removeprefix("Bearer ")
    r = await svc.client.post("/api/reporting/phrases", headers=svc.auth("radiologist", username=username),
                              json={"label": f"纵隔{world.tag}", "text": "纵隔未见肿大淋巴结。", "section": "findings"})
    assert r.status_code == 201
    acc = await world.exam(laterality="R")
    settings = svc.settings.model_copy(update={"reporting_delivery_enabled": False})
    async with http_server(create_app(settings)) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.add_init_script(f"sessionStorage.setItem('imaging.access_token', {token!r})")
            await page.goto(f"{url}/ui/reporting/")
            await page.get_by_text(acc).click()
            await page.locator("#title").filter(has_text=acc).wait_for()
            await page.fill("#findings", "左肺上叶见一结节，大小约8mm。")
            await page.get_by_role("button", name=f"纵隔{world.tag}").click()
            assert (await page.input_value("#findings")).endswith("纵隔未见肿大淋巴结。")
            await page.fill("#impression", "左肺上叶结节。")
            await page.locator("#qc li.qc-blocker").first.wait_for()  # ordered for the right side
            await page.get_by_role("button", name="初诊签名 Sign preliminary").click()
            await page.locator("#error").filter(has_text="422").wait_for()
            assert await page.locator("#state").text_content() == "未写"
            await page.fill("#findings", "右肺上叶见一结节，大小约8mm。")
            await page.fill("#impression", "右肺上叶结节。")
            await page.get_by_role("button", name="初诊签名 Sign preliminary").click()
            await page.locator("#state").filter(has_text="初诊").wait_for()
            await page.get_by_role("button", name="验证签名 Verify signature").click()
            await page.locator("#verified").filter(has_text="valid").wait_for()
        finally:
            await browser.close()
    view = (await svc.client.get(f"/api/reporting/exams/{acc}", headers=svc.auth("radiologist"))).json()
    assert view["report"]["state"] == "preliminary" and view["report"]["preliminary_by"] == username
