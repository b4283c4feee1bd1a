"""The staff's workstation in headless Chromium, through the all-in-one platform (issue 23, items 1 and 2):
one entry at `/` (sign-in, then each role's tasks and links), the shared navigation bar and stylesheet on
every staff page, the favicon, silent renewal of a short access token with the HttpOnly refresh cookie,
and on logout or expiry every staff page empties itself before it shows the sign-in form."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from critical_values.domain import recipients
from imaging_common.auth import credentials as cred
from imaging_testing.auth import issue_test_token
from imaging_testing.print_kit import film_for_review
from playwright.async_api import Browser, Page, expect
from playwright.async_api import Error as PlaywrightError
from registration.settings import Settings as RegistrationSettings

from . import staff_pages
from .staff_pages import PASSWORD, VIEWPORT, Site, new_user, watch_console

ACCESS_TTL = 15  # seconds: the page must renew it silently, several times in one test
STAFF_PAGES = ["/ui/registration/", "/ui/worklist/", "/ui/scheduling/", "/ui/reporting/", "/ui/critical-values/",
               "/ui/critical-values/ack/{critical_id}", "/ui/print/review", "/ui/queue/terminal"]
browser = staff_pages.browser  # the shared fixture


async def snapshot(page: Page, name: str) -> None:
    """Kept under var/test-artefacts/workstation/ (not in git) at the workstations' 1366x768."""
    await staff_pages.snapshot(page, "workstation", name)


@pytest.fixture(scope="module")
async def site(test_env) -> AsyncIterator[Site]:
    """Its own database: the pages must show this test's patients only (and no film of another test's)."""
    def settings() -> dict[str, Any]:
        return {"registration": RegistrationSettings(access_token_ttl_seconds=ACCESS_TTL, mllp_port=0)}

    async with staff_pages.own_platform(test_env, settings) as site:
        yield site


async def register_patient(site: Site, name: str) -> None:
    settings = site.ctx("registration").settings
    headers = {"Authorization": f"Bearer {issue_test_token(settings, roles=['clerk'], username='ws-seed')}"}
    async with httpx.AsyncClient(base_url=site.url) as api:
        r = await api.post("/api/registration/patients", headers=headers, json={"name": name, "sex": "F",
                                                                                "birth_date": "1980-02-03"})
        assert r.status_code == 201, r.text


async def test_sign_in_at_home_navigate_renew_and_log_out(site: Site, browser: Browser) -> None:
    name = f"测试{uuid.uuid4().hex[:4]}"
    await register_patient(site, name)
    username, secret = await new_user(site, ["clerk", "nurse"], "前台小周")
    context = await browser.new_context(locale="zh-CN", viewport=VIEWPORT)
    page = await context.new_page()
    errors = watch_console(page)
    renewals: list[int] = []
    page.on("response", lambda r: renewals.append(r.status) if r.url.endswith("/auth/refresh") else None)

    # One entry: `/` is the sign-in form (the shared one), with the icon.
    await page.goto(f"{site.url}/")
    await expect(page.locator("#login")).to_be_visible()
    await snapshot(page, "sign-in")
    icon = await page.locator("link[rel=icon]").get_attribute("href")
    async with httpx.AsyncClient(base_url=site.url) as api:
        for path in (icon, "/favicon.ico", "/ui/common/app.css", "/ui/common/shell.js",
                     "/ui/worklist/common/app.css", "/ui/print/common/favicon.svg"):
            r = await api.get(path)
            assert r.status_code == 200 and r.content, path
        assert (await api.get("/ui/")).status_code == 200
        assert (await api.get("/ui/common/home.html")).status_code == 404
    # A wrong code: a Chinese message, no session.
    await page.fill("#login-username", username)
    await page.fill("#login-password", PASSWORD)
    await page.fill("#login-totp", f"{(int(cred.totp_code(secret, time.time())) + 500000) % 1000000:06d}")
    await page.click("#login-submit")
    await expect(page.locator("#login-error")).to_have_text("用户名、密码或动态验证码错误")
    assert errors == ["error: Failed to load resource: the server responded with a status of 401 (Unauthorized)"]
    errors.clear()  # the browser's own line for the refused login; nothing else may appear from here on
    await page.fill("#login-password", PASSWORD)
    await page.fill("#login-totp", cred.totp_code(secret, time.time()))
    await page.keyboard.press("Enter")

    # Home: the tasks of a clerk and a nurse, and the links to their pages, nothing else.
    home = page.locator("#home")
    await expect(home).to_contain_text("前台小周，您好")
    await expect(home).to_contain_text("登记员、护士")
    cards = home.locator(".tasks section")
    assert sorted(await cards.evaluate_all("s => s.map(x => x.dataset.page)")) == [
        "critical-values", "print", "queue", "registration", "scheduling", "worklist"]
    await expect(home.locator("[data-page=registration]")).to_contain_text("开检查申请单并打印")
    await expect(home.locator("[data-page=queue]")).to_contain_text("到检签到、顺呼/选呼、过号、转诊")
    await expect(home.locator("[data-page=reporting]")).to_have_count(0)
    await expect(page.locator(".shell-bar #whoami")).to_have_text("前台小周")
    await snapshot(page, "home-clerk-nurse")

    # The refresh token is in a cookie no script can read, sent only to the auth routes.
    [cookie] = [c for c in await context.cookies() if c["name"] == "imaging_refresh"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/api/registration/auth" and cookie["secure"] is False  # plain http here
    assert await page.evaluate("document.cookie") == ""
    assert "refresh" not in json.dumps(await page.evaluate("Object.assign({}, sessionStorage)"))

    # Through the navigation bar to the front desk: signed in already, the same bar.
    await page.locator(".shell-bar nav a", has_text="登记台").click()
    await page.wait_for_url("**/ui/registration/")
    await expect(page.locator("#main-view")).to_be_visible()
    await expect(page.locator("#login")).to_be_hidden()
    await expect(page.locator(".shell-bar nav a[aria-current=page]")).to_have_text("登记台")
    first = await page.evaluate("sessionStorage.getItem('imaging.access_token')")

    # Past the access token's lifetime: renewed silently, the desk keeps working without a sign-in; the
    # first renewal meets a network blip and is tried again a few seconds later.
    blips: list[str] = []

    async def blip_once(route: Any) -> None:
        if blips:
            await route.continue_()
        else:
            blips.append(route.request.url)
            await route.abort("failed")

    await page.route("**/api/registration/auth/refresh", blip_once)
    await page.wait_for_timeout((ACCESS_TTL + 8) * 1000)
    assert len(blips) == 1 and 200 in renewals
    assert [e for e in errors if "ERR_FAILED" not in e] == []
    errors.clear()
    assert await page.evaluate("sessionStorage.getItem('imaging.access_token')") != first
    await page.fill("#search", name)
    await page.keyboard.press("Enter")
    await expect(page.locator("#search-results tbody tr", has_text=name)).to_have_count(1)
    await expect(page.locator("#login")).to_be_hidden()
    await snapshot(page, "registration-after-renewal")

    # Logout: the server ends the session (every token, the cookie), the page is emptied, then signs in.
    token = await page.evaluate("sessionStorage.getItem('imaging.access_token')")
    async with page.expect_navigation(wait_until="load"):
        async with page.expect_response(lambda r: r.url.endswith("/api/registration/auth/logout")) as done:
            await page.click("#logout")
        assert (await done.value).status == 204
    await expect(page.locator("#login")).to_be_visible()
    assert name not in await page.content()
    assert not [c for c in await context.cookies() if c["name"] == "imaging_refresh"]
    async with httpx.AsyncClient(base_url=site.url) as api:
        r = await api.get("/api/worklist/session", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json()["code"] == "session-ended"
        assert r.json()["detail"] == "登录已结束（已退出、空闲超时或被撤销），请重新登录"
        r = await api.get("/api/worklist/session", headers={"Authorization": f"Bearer {token}",
                                                            "Accept-Language": "en"})
        assert r.json()["detail"] == "session ended (logged out, idle timeout or revoked)"
    assert errors == []
    await context.close()


async def seed_critical_value_and_film(site: Site, tag: str, name: str) -> tuple[str, str]:
    """A critical value on the board and a film to match, both naming the patient; the accession and
    the critical value's id."""
    accession = f"WS{tag}"
    async with site.ctx("critical-values").pool.acquire() as conn:
        await recipients.remember_order(
            conn, accession_number=accession, order_id=f"O-{accession}",
            patient={"patient_id": f"P{tag}", "name": name}, patient_class="E", ordering_doctor_id="D1",
            ordering_doctor="李医生", ordering_department=f"WS-{tag}", ward=None, modality="CT")
    await film_for_review(site.ctx("print"), f"workstation/{tag}.png", tag,
                          {"accession_number": accession, "patient_id": f"P{tag}", "patient_name": name})
    settings = site.ctx("critical-values").settings
    rad = {"Authorization": f"Bearer {issue_test_token(settings, roles=['radiologist'], username='ws-rad')}"}
    async with httpx.AsyncClient(base_url=site.url) as api:
        r = await api.post("/api/critical-values/critical-values", headers=rad,
                           json={"accession_number": accession, "finding": "张力性气胸"})
        assert r.status_code == 201, r.text
    return accession, r.json()["critical_id"]


async def show_data(page: Page, path: str, name: str, accession: str) -> str | None:
    """Bring patient data onto the page; what of it must be gone afterwards (None: the page's own rows)."""
    if path == "/ui/registration/":
        await page.fill("#search", name)
        await page.keyboard.press("Enter")
        await expect(page.locator("#search-results tbody tr", has_text=name)).to_have_count(1)
        return name
    if path == "/ui/critical-values/":
        await expect(page.locator("#items tr", has_text=accession)).to_have_count(1)
        return accession
    if path.startswith("/ui/critical-values/ack/"):
        await expect(page.locator("#patient")).to_have_text(name)
        return name
    if path == "/ui/print/review":
        await expect(page.locator("#items tr", has_text=name).first).to_be_visible()
        return name
    await expect(page.locator("main#app")).to_be_visible()
    return None


@pytest.mark.parametrize("ending", ["logout", "expiry"])
async def test_every_staff_page_empties_itself_when_the_session_ends(site: Site, browser: Browser, ending: str) -> None:
    tag = uuid.uuid4().hex[:8]
    name = f"欧阳{tag[:2]}娜"
    await register_patient(site, name)
    accession, critical_id = await seed_critical_value_and_film(site, tag, name)
    settings = site.ctx("registration").settings
    for path in (p.format(critical_id=critical_id) for p in STAFF_PAGES):
        token = issue_test_token(settings, roles=["admin", "senior-radiologist"], username=f"ws-{ending}-{tag}",
                                 display_name="科室主任", ttl_seconds=600)
        context = await browser.new_context(locale="zh-CN", viewport=VIEWPORT)
        page = await context.new_page()
        errors = watch_console(page)
        await page.goto(f"{site.url}{path}")
        await expect(page.locator("#login")).to_be_visible()  # no token yet: nothing but the sign-in
        await page.evaluate(f"sessionStorage.setItem('imaging.access_token', {json.dumps(token)})")
        await page.reload()
        await expect(page.locator(".shell-bar #whoami")).to_have_text("科室主任")
        await expect(page.locator("#login")).to_be_hidden()
        shown = await show_data(page, path, name, accession)
        page_name = path.strip("/").replace("/", "-").replace(critical_id, "id")
        if ending == "logout":
            await snapshot(page, f"page-{page_name}")
        main = "#main-view" if path == "/ui/registration/" else "main#app"
        if ending == "logout":
            async with page.expect_navigation(wait_until="load"):
                await page.click("#logout")
            await expect(page.locator("#login")).to_be_visible()
            await expect(page.locator("#login-error")).to_be_empty()
        else:
            # Revoked elsewhere (an admin, another tab, the idle timeout): the next call is refused, no renewal
            # is possible, and the page empties itself before it asks for a sign-in.
            # (The navigation is awaited from before the revocation: a page that updates live, the worklist,
            # may make its refused call by itself before the click; then the click finds the page emptied.)
            async with page.expect_navigation(wait_until="load", timeout=60_000):
                async with httpx.AsyncClient(base_url=site.url) as api:
                    r = await api.post("/api/registration/auth/logout", headers={"Authorization": f"Bearer {token}"})
                    assert r.status_code == 204
                if path in ("/ui/worklist/", "/ui/scheduling/", "/ui/reporting/", "/ui/print/review"):
                    with contextlib.suppress(PlaywrightError):
                        await page.click("#refresh", timeout=10_000)
                elif "/ack/" in path:
                    await page.click("#ack")
                elif path == "/ui/registration/":
                    await page.keyboard.press("Enter")
                # the board and the terminal poll by themselves
            await expect(page.locator("#login-error")).to_have_text("登录已过期，请重新登录")
            errors = [e for e in errors if "status of 401" not in e]  # the refused calls themselves
        await expect(page.locator("#login")).to_be_visible()
        assert await page.locator(main).count() in (0, 1)
        if await page.locator(main).count():
            await expect(page.locator(main)).to_be_hidden()
        content = await page.content()
        if shown:
            assert shown not in content, path
        assert name not in content and accession not in content, path
        assert await page.evaluate("sessionStorage.getItem('imaging.access_token')") is None, path
        assert errors == [], (path, errors)
        await snapshot(page, f"after-{ending}-{page_name}")
        await context.close()


async def test_logout_in_one_tab_empties_the_others(site: Site, browser: Browser) -> None:
    """The same person with the board in one tab and the desk in another: logging out in one ends the
    session everywhere, and the other tab empties itself too instead of waiting for its next call."""
    tag = uuid.uuid4().hex[:8]
    name = f"司马{tag[:2]}兰"
    await register_patient(site, name)
    accession, _ = await seed_critical_value_and_film(site, tag, name)
    token = issue_test_token(site.ctx("registration").settings, roles=["admin"], username=f"ws-tabs-{tag}",
                             ttl_seconds=600)
    context = await browser.new_context(locale="zh-CN", viewport=VIEWPORT)
    board, desk = await context.new_page(), await context.new_page()
    for page, path in ((board, "/ui/critical-values/"), (desk, "/ui/registration/")):
        await page.goto(f"{site.url}{path}")
        await page.evaluate(f"sessionStorage.setItem('imaging.access_token', {json.dumps(token)})")
        await page.reload()
    await show_data(board, "/ui/critical-values/", name, accession)
    await show_data(desk, "/ui/registration/", name, accession)
    await board.evaluate("() => { window.__stayed = true; }")  # gone once the tab has reloaded
    async with board.expect_navigation(wait_until="load"):
        async with desk.expect_navigation(wait_until="load"):
            await desk.click("#logout")
    for page in (desk, board):
        await expect(page.locator("#login")).to_be_visible()
        content = await page.content()
        assert name not in content and accession not in content
    await expect(board.locator("#login-error")).to_have_text("已在其他窗口退出登录")
    assert await board.evaluate("window.__stayed === undefined")
    await context.close()
