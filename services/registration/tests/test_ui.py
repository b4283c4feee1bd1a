"""The front-desk UI driven in headless Chromium (Debian's chromium + Playwright) against the real service."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from barcode import Code128
from imaging_common.auth import credentials as cred
from imaging_testing import free_port, http_server
from imaging_testing.browser import desk_sign_in
from playwright.async_api import async_playwright, expect
from registration.app import create_app
from registration.domain import staff
from registration.settings import Settings
from regtest_helpers import auth, events, rid, uname

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
        "--no-first-run", "--disable-sync"]
PASSWORD = "front desk 300 a day"
# Generous waits: `make test` runs on two cores beside other suites; a slow machine must not fail the UI.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
async def site(settings_for):
    settings = settings_for(Settings, mllp_port=0)
    app = create_app(settings)
    async with http_server(app, free_port()) as base:
        yield base, app, settings


@pytest.fixture(scope="module")
async def browser():
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True, timeout=60_000)
        yield b
        await b.close()



def bars(svg: str) -> str:
    """The modules of a python-barcode SVG, 1 for black: each bar's x and width in multiples of the module."""
    rects = [(float(x), float(w)) for x, w in re.findall(r'<rect x="([\d.]+)mm" y="[\d.]+mm" width="([\d.]+)mm"', svg)]
    module = min(w for _, w in rects)
    start, end = rects[0][0], rects[-1][0] + rects[-1][1]
    out = ["0"] * round((end - start) / module)
    for x, w in rects:
        for k in range(round((x - start) / module), round((x - start + w) / module)):
            out[k] = "1"
    return "".join(out)

async def new_clerk(app) -> tuple[str, str]:
    username = f"clerk{uuid.uuid4().hex[:8]}"
    async with app.state.ctx.pool.acquire() as conn:
        user = await staff.create_user(conn, username=username, roles=["clerk"], display_name="前台小王",
                                       password=PASSWORD)
    return username, user.totp_secret


async def login(page, base: str, username: str, secret: str) -> None:
    await desk_sign_in(page, f"{base}/ui/registration/", username, PASSWORD, secret)


async def test_login_refuses_a_wrong_code(site, browser) -> None:
    base, app, _ = site
    username, secret = await new_clerk(app)
    page = await browser.new_page()
    await page.goto(f"{base}/ui/registration/")
    await page.fill("#login-username", username)
    await page.fill("#login-password", PASSWORD)
    wrong = f"{(int(cred.totp_code(secret, time.time())) + 500000) % 1000000:06d}"
    await page.fill("#login-totp", wrong)
    await page.click("#login-submit")
    await expect(page.locator("#login-error")).not_to_be_empty()
    assert await page.locator("#main-view").is_hidden()
    await page.close()


async def test_register_with_same_name_panel_then_order_and_print(site, browser) -> None:
    base, app, settings = site
    pool = app.state.ctx.pool
    name = uname()
    existing_id = rid(born="19750301")
    # A namesake already registered (API): the clerk must see them before saving.

    async with httpx.AsyncClient(base_url=base) as api:
        r = await api.post("/api/registration/patients", headers=auth(settings), json={
            "name": name, "identifiers": [{"value": existing_id}], "phone": "13700000000"})
        assert r.status_code == 201
    username, secret = await new_clerk(app)
    page = await browser.new_page()
    await login(page, base, username, secret)
    await expect(page.locator("#whoami")).to_have_text("前台小王")

    await page.keyboard.press("F3")
    await expect(page.locator("#reg-name")).to_be_focused()
    new_id = rid(born="19750301")
    await page.fill("#reg-name", name)
    await page.fill("#reg-phone", "13811112222")
    await page.fill("#reg-id", new_id)  # valid: birth date and sex fill themselves
    await expect(page.locator("#reg-birth")).to_have_value("1975-03-01")
    await expect(page.locator("#reg-id-hint")).to_have_text("号码有效")
    panel = page.locator("#same-name")
    await expect(panel).to_be_visible()
    await expect(panel).to_contain_text(existing_id[:4] + "**********" + existing_id[-4:])
    await expect(panel).to_contain_text(name)
    assert existing_id not in await page.content()  # never the full number of someone else
    await page.check("#reg-force-new")
    await page.keyboard.press("Control+Enter")
    await expect(page.locator("#toast")).to_contain_text("已登记新病人")
    await expect(page.locator("#tab-order")).to_be_visible()

    await page.select_option("#ord-item", ["1"])
    await page.fill("#ord-dept", "呼吸内科")
    await page.fill("#ord-doctor", "李医生")
    await page.fill("#ord-diagnosis", "肺部感染")
    await page.fill("#ord-purpose", "排除肺结核")
    await page.check("#ord-infectious")
    await page.keyboard.press("Control+Enter")
    form = page.locator("#print-form")
    await expect(form).to_be_visible()
    await expect(form).to_have_class("printable special-inf")
    await expect(form.locator(".tag.inf")).to_have_text("传染病")
    accession = (await page.locator("#print-accession").inner_text()).strip()
    # The barcode the check-in terminals scan: drawn, and its bars are Code 128 of the accession number.
    barcode = page.locator("#barcode-img")
    await expect(barcode).to_be_visible()
    await page.wait_for_function("() => { const i = document.getElementById('barcode-img');"
                                 " return i.complete && i.naturalWidth > 0; }")  # the SVG decoded and drawn
    await page.emulate_media(media="print")
    assert await page.locator(".topbar").is_hidden()
    await page.emulate_media(media="screen")

    # The API sees the patient and the order; the events are in the outbox (and reach RabbitMQ).
    async with httpx.AsyncClient(base_url=base) as api:
        found = (await api.get("/api/registration/patients", params={"q": new_id}, headers=auth(settings))).json()
        assert found["count"] == 1 and found["data"][0]["name"] == name
        empi = found["data"][0]["empi_id"]
        order = (await api.get(f"/api/registration/orders/{accession}", headers=auth(settings))).json()
        assert order["empi_id"] == empi and order["special"]["infectious"] is True
        svg = await api.get(f"/api/registration/orders/{accession}/barcode.svg", headers=auth(settings))
        assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
        assert bars(svg.text) == Code128(accession).build()[0]
        unknown = await api.get("/api/registration/orders/NO-SUCH/barcode.svg", headers=auth(settings))
        assert unknown.status_code == 404
        assert (await api.get(f"/api/registration/orders/{accession}/barcode.svg")).status_code == 401
    assert await events(pool, "patient.registered", empi)
    ev = (await events(pool, "order.created", accession))[0]["data"]
    assert ev["items"][0]["name"] == "胸部CT平扫" and ev["ordering_department"] == "呼吸内科"

    # Find by name with the keyboard: Enter, arrows, Enter opens the card with the coloured order.
    await page.keyboard.press("F2")
    await page.fill("#search", name)
    await page.keyboard.press("Enter")
    rows = page.locator("#search-results tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_contain_text("*")
    for _ in range(2):
        if new_id[-4:] in await page.locator("#search-results tr.selected").inner_text():
            break
        await page.keyboard.press("ArrowDown")
    await page.keyboard.press("Enter")
    card = page.locator("#patient-card")
    await expect(card).to_be_visible()
    await expect(card.locator("tr.row-inf")).to_contain_text(accession)
    # Identity check at the desk: the card number typed (or read) against the record.
    await page.fill("#card-doc", new_id)
    await page.keyboard.press("Enter")
    await expect(page.locator("#toast")).to_contain_text("证件与档案一致")
    await page.fill("#card-doc", existing_id)
    await page.click("#card-verify")
    await expect(page.locator("#toast")).to_contain_text("不一致")
    assert await pool.fetchval("SELECT count(*) FROM identity_verification WHERE empi_id = $1", empi) == 2
    # The ward calls: make it urgent. The whole order goes out again as order.changed, one version newer.
    await card.locator("tr.row-inf .order-change").click()
    dialog = page.locator("dialog.order-change-dialog")
    await dialog.locator("select[name=priority]").select_option("urgent")
    await dialog.locator("input[name=reason]").fill("病情加重")
    await dialog.locator("button[value=save]").click()
    await expect(page.locator("#toast")).to_contain_text(f"检查 {accession} 已更改")
    [changed] = await events(pool, "order.changed", accession)
    assert changed["data"]["priority"] == "urgent" and changed["data"]["changed"] == ["priority"]
    assert changed["data"]["version"] == ev["version"] + 1 and changed["data"]["reason"] == "病情加重"
    assert changed["data"]["items"][0]["name"] == "胸部CT平扫"  # a whole snapshot, not just the change
    # The patient changes their mind: the clerk cancels the exam with a reason; order.cancelled follows.
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept("患者取消检查")))
    await card.locator("tr.row-inf .order-cancel").click()
    await expect(page.locator("#toast")).to_contain_text(f"检查 {accession} 已取消")
    await expect(card.locator("tr.row-inf")).to_contain_text("已取消")
    [cancelled] = await events(pool, "order.cancelled", accession)
    assert cancelled["data"]["reason"] == "患者取消检查" and cancelled["data"]["version"] == ev["version"] + 2
    await page.close()


async def review_row(app: Any, base: str, browser: Any, name: str) -> tuple[Any, Any]:
    """A new clerk signed in on the duplicate review list (F4), and the one row naming this patient."""
    username, secret = await new_clerk(app)
    page = await browser.new_page()
    await login(page, base, username, secret)
    await page.keyboard.press("F4")
    row = page.locator("#review-list tbody tr", has_text=name)
    await expect(row).to_have_count(1)
    return page, row


async def registered_twice(base: str, settings: Any, name: str, birth_date: str, sex: str, phone: str) -> list[str]:
    """The same person registered without a phone, then with one: the duplicate reviews the second opens."""
    async with httpx.AsyncClient(base_url=base) as api:
        for with_phone in (None, phone):
            r = await api.post("/api/registration/patients", headers=auth(settings), json={
                "name": name, "birth_date": birth_date, "sex": sex, "phone": with_phone})
    review_ids: list[str] = r.json()["review_ids"]
    assert review_ids
    return review_ids


async def test_duplicate_review_resolved_in_the_ui(site, browser) -> None:
    base, app, settings = site
    name = uname()

    review_ids = await registered_twice(base, settings, name, "1960-10-10", "M", "13600001234")
    page, row = await review_row(app, base, browser, name)
    await row.locator("button.distinct").click()
    await expect(page.locator("#toast")).to_contain_text("不同的人")
    await expect(page.locator("#review-list tbody tr", has_text=name)).to_have_count(0)
    status = await app.state.ctx.pool.fetchval("SELECT status FROM empi_review WHERE id = $1::uuid", review_ids[0])
    assert status == "distinct"
    await page.close()


async def test_duplicate_merged_keeping_the_record_the_clerk_chose(site, browser) -> None:
    """Either side can survive a merge: the clerk keeps the record the patient's films and card carry."""
    base, app, settings = site
    name = uname()
    review_ids = await registered_twice(base, settings, name, "1961-11-11", "F", "13600005678")
    async with httpx.AsyncClient(base_url=base) as api:
        review = next(x for x in (await api.get("/api/registration/reviews", headers=auth(settings))).json()["data"]
                      if x["id"] == review_ids[0])
    left, right = review["left"]["empi_id"], review["right"]["empi_id"]
    page, row = await review_row(app, base, browser, name)
    await row.locator("button.keep-left").click()
    await expect(page.locator("#toast")).to_contain_text("已合并")
    await expect(page.locator("#review-list tbody tr", has_text=name)).to_have_count(0)
    pool = app.state.ctx.pool
    assert await pool.fetchval("SELECT merged_into FROM empi_person WHERE empi_id = $1", right) == left
    assert await pool.fetchval("SELECT merged_into FROM empi_person WHERE empi_id = $1", left) is None
    await page.close()


async def test_a_homophone_at_the_desk_shows_old_and_new_and_asks(site, browser) -> None:
    """Registering 张子寒 with 张子涵's ID card: the clerk sees both names and decides; a change left for later
    is listed under 待审核 with both names, where another clerk keeps the record as it is."""
    base, app, settings = site
    pool = app.state.ctx.pool
    tag = uname()[-3:]
    idn = rid(born="19900512")
    async with httpx.AsyncClient(base_url=base) as api:
        r = await api.post("/api/registration/patients", headers=auth(settings), json={
            "name": f"张子涵{tag}", "identifiers": [{"value": idn}]})
        empi = r.json()["patient"]["empi_id"]
    username, secret = await new_clerk(app)
    page = await browser.new_page()
    await login(page, base, username, secret)

    async def register(name: str) -> None:
        await page.keyboard.press("F3")
        await page.fill("#reg-name", name)
        await page.fill("#reg-id", idn)
        await expect(page.locator("#reg-id-hint")).to_have_text("号码有效")
        await page.keyboard.press("Control+Enter")

    await register(f"张子寒{tag}")
    dialog = page.locator("dialog.pending-change-dialog")
    await expect(dialog).to_contain_text(f"张子涵{tag}")
    await expect(dialog).to_contain_text(f"张子寒{tag}")
    await dialog.locator("button[value=confirm]").click()
    await expect(page.locator("#toast")).to_contain_text("已确认")
    await expect(page.locator("#tab-order")).to_be_visible()  # on to the order, as after any registration
    assert await pool.fetchval("SELECT name FROM empi_person WHERE empi_id = $1", empi) == f"张子寒{tag}"
    assert (await events(pool, "patient.updated", empi))[-1]["data"]["patient"]["name"] == f"张子寒{tag}"

    await register(f"张紫寒{tag}")
    await page.locator("dialog.pending-change-dialog button[value=later]").click()
    await expect(page.locator("#tab-order")).to_be_visible()
    await page.keyboard.press("F4")
    row = page.locator("#pending-list tbody tr", has_text=f"张紫寒{tag}")
    await expect(row).to_contain_text(f"张子寒{tag}")
    await row.locator("button.pending-reject").click()
    await expect(page.locator("#toast")).to_contain_text("保持原资料")
    await expect(page.locator("#pending-list tbody tr", has_text=f"张紫寒{tag}")).to_have_count(0)
    assert await pool.fetchval("SELECT name FROM empi_person WHERE empi_id = $1", empi) == f"张子寒{tag}"
    await page.close()
