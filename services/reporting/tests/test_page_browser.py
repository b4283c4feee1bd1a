"""The radiologist's page in headless Chromium, against the app over real HTTP: pick the exam from
the worklist, write with a phrase, see a QC blocker refuse the signature, fix it, sign."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from imaging_testing import http_server
from playwright.async_api import Page, async_playwright, expect
from reporting.app import create_app

from .conftest import Service, World

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


@contextlib.asynccontextmanager
async def reporting_page(svc: Service, token: str) -> AsyncIterator[tuple[Page, list[str], list[str]]]:
    """The page over real HTTP in Chromium, signed in with `token`; with the messages of any alert() dialog and
    the page's uncaught errors."""
    settings = svc.settings.model_copy(update={"reporting_delivery_enabled": False})
    async with http_server(create_app(settings)) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            dialogs: list[str] = []
            errors: list[str] = []
            page.on("dialog", lambda d: dialogs.append(d.message))
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.add_init_script(f"sessionStorage.setItem('imaging.access_token', {token!r})")
            await page.goto(f"{url}/ui/reporting/")
            yield page, dialogs, errors
        finally:
            await browser.close()


async def test_write_check_and_sign_in_the_page(service: Service, world: World) -> None:
    svc = service
    username = f"rad-{world.tag}"
    token = svc.auth("radiologist", username=username)["Authorization"].removeprefix("Bearer ")
    r = await svc.client.post("/api/reporting/phrases", headers=svc.auth("radiologist", username=username),
                              json={"label": f"纵隔{world.tag}", "text": "纵隔未见肿大淋巴结。", "section": "findings"})
    assert r.status_code == 201
    acc = await world.exam(laterality="R")
    async with reporting_page(svc, token) as (page, _, _):
        await page.get_by_text(acc).click()
        await page.locator("#title").filter(has_text=acc).wait_for()
        await page.fill("#findings", "左肺上叶见一结节，大小约8mm。")
        await page.get_by_role("button", name=f"纵隔{world.tag}").click()
        assert (await page.input_value("#findings")).endswith("纵隔未见肿大淋巴结。")
        await page.fill("#impression", "左肺上叶结节。")
        await page.locator("#qc li.qc-blocker").first.wait_for()  # ordered for the right side
        await page.get_by_role("button", name="初诊签名").click()
        await page.locator("#error").filter(has_text="422").wait_for()
        assert await page.locator("#state").text_content() == "未写"
        await page.fill("#findings", "右肺上叶见一结节，大小约8mm。")
        await page.fill("#impression", "右肺上叶结节。")
        await page.get_by_role("button", name="初诊签名").click()
        await page.locator("#state").filter(has_text="初诊").wait_for()
        await page.get_by_role("button", name="验证签名").click()
        await page.locator("#verified").filter(has_text="签名有效").wait_for()
    view = (await svc.client.get(f"/api/reporting/exams/{acc}", headers=svc.auth("radiologist"))).json()
    assert view["report"]["state"] == "preliminary" and view["report"]["preliminary_by"] == username


async def test_a_radiologist_reports_with_the_keyboard_only(service: Service, world: World) -> None:
    """Issue 23 item 6: the radiologist's main task without the mouse: Alt+L to the worklist, arrows to the
    exam, Enter opens it with the cursor in the findings, Ctrl+S saves, Ctrl+Enter signs, Alt+P previews."""
    svc = service
    username = f"rad-{world.tag}"
    token = svc.auth("radiologist", username=username)["Authorization"].removeprefix("Bearer ")
    acc = await world.exam(n=7)
    async with reporting_page(svc, token) as (page, dialogs, errors):
        await page.locator("#worklist tr", has_text=acc).wait_for()
        await page.keyboard.press("Alt+L")
        for _ in range(200):  # the shared database holds other tests' exams: arrow down to this one
            if acc in await page.evaluate("document.activeElement.textContent"):
                break
            await page.keyboard.press("ArrowDown")
        else:
            raise AssertionError(f"{acc} not reached with the arrows")
        await page.keyboard.press("Enter")
        await page.locator("#title").filter(has_text=acc).wait_for()
        await expect(page.locator("#findings")).to_be_focused()
        await page.keyboard.type("双肺纹理清晰，未见明确实质性病变。")
        await page.keyboard.press("Tab")
        await expect(page.locator("#impression")).to_be_focused()
        await page.keyboard.type("胸部CT平扫未见明显异常。")
        await page.keyboard.press("Control+s")
        await page.locator("#state").filter(has_text="草稿").wait_for()
        await page.keyboard.press("Control+Enter")
        await page.locator("#state").filter(has_text="初诊").wait_for()
        await page.keyboard.press("Alt+p")
        await page.locator("#sheet").wait_for(state="visible")
        assert "胸部CT平扫未见明显异常" in (await page.locator("#sheet").text_content() or "")
        await page.keyboard.press("Escape")  # a modal dialog closes with Esc
        await page.locator("#sheet").wait_for(state="hidden")
        assert dialogs == [] and errors == []
    report = (await svc.client.get(f"/api/reporting/exams/{acc}", headers=svc.auth("radiologist"))).json()["report"]
    assert report["state"] == "preliminary" and report["preliminary_by"] == username
    assert report["content"]["impression"] == "胸部CT平扫未见明显异常。"


async def test_template_picker_preview_print_and_critical_dialog(service: Service, world: World) -> None:
    """Issue 23, item 3: the template's fields before the first save, a preview of the sheet as it prints
    (and printing shows nothing else), and a critical finding announced in the page, not with alert()."""
    svc = service
    username = f"rad-{world.tag}"
    token = svc.auth("radiologist", username=username)["Authorization"].removeprefix("Bearer ")
    template = {"id": f"ct-chest-{world.tag.lower()}", "name": f"胸部CT结构化{world.tag}", "modality": "CT",
                "body_part": "CHEST", "definition": {"fields": [
                    {"id": "nodule_size", "label": "结节大小", "type": "measurement", "unit": "mm"}]}}
    r = await svc.client.put(f"/api/reporting/templates/{template['id']}", json=template,
                             headers=svc.auth("senior-radiologist"))
    assert r.status_code == 200, r.text
    acc = await world.exam(name="ZHANG^SAN=张三")
    async with reporting_page(svc, token) as (page, dialogs, errors):
        await page.get_by_text(acc).click()
        await page.locator("#title").filter(has_text=acc).wait_for()
        assert "张三" in await page.locator("#title").text_content() and "^" not in \
            await page.locator("#title").text_content()
        # The most specific template for CT chest is chosen, and its field is there before any save.
        assert await page.input_value("#template") == template["id"]
        await page.locator("[data-field=nodule_size][data-kind=measurement]").fill("8")
        await page.locator("[data-field=nodule_size][data-part=unit]").fill("mm")
        await page.fill("#findings", "右肺上叶见一结节。右侧张力性气胸。")
        await page.fill("#impression", "右侧张力性气胸。")
        await page.get_by_role("button", name="保存").click()
        # The critical finding in a dialog of the page, which keeps the focus until acknowledged.
        await page.locator("#critical-dialog").wait_for(state="visible")
        assert "张力性气胸" in await page.locator("#critical-list").text_content()
        await page.keyboard.press("Enter")
        await page.locator("#critical-dialog").wait_for(state="hidden")
        assert dialogs == []  # alert() would land there
        # Saved with the template chosen in the page.
        view = (await svc.client.get(f"/api/reporting/exams/{acc}", headers=svc.auth("radiologist"))).json()
        assert view["report"]["template_id"] == template["id"]
        size = view["report"]["content"]["fields"]["nodule_size"]
        assert (size["value"], size["unit"]) == (8, "mm")
        # The preview: the sheet with the patient as people write the name, the structured finding and text.
        await page.get_by_role("button", name="预览与打印").click()
        sheet = page.locator("#sheet")
        await sheet.wait_for(state="visible")
        text = await sheet.text_content() or ""
        assert "张三" in text and "ZHANG" not in text and "结节大小：8 mm" in text and "右侧张力性气胸" in text
        assert "草稿，未签名" in text
        # Printing prints the sheet only (to PDF here, as a browser's "save as PDF" does).
        await page.evaluate("document.body.classList.add('printing')")
        await page.emulate_media(media="print")
        assert not await page.locator("#app").is_visible()
        assert await sheet.is_visible()
        pdf = await page.pdf()
        assert pdf.startswith(b"%PDF") and len(pdf) > 1000
        await page.emulate_media(media="screen")
        await page.get_by_role("button", name="关闭").click()
        await sheet.wait_for(state="hidden")
        assert errors == []
