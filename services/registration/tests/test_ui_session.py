"""The idle timeout as configured (IMAGING_SESSION_IDLE_SECONDS), in headless Chromium: a desk left alone
signs itself out, emptied of the patient it showed, and the session is over on the server too."""

from __future__ import annotations

import uuid

import httpx
from imaging_testing import free_port, http_server
from imaging_testing.auth import issue_test_token
from imaging_testing.browser import desk_sign_in
from playwright.async_api import async_playwright, expect
from registration.app import create_app
from registration.domain import staff
from registration.settings import Settings

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
PASSWORD = "leave the desk for a while"
IDLE = 8


async def test_an_idle_desk_signs_itself_out(settings_for) -> None:
    settings = settings_for(Settings, mllp_port=0, session_idle_seconds=IDLE)
    app = create_app(settings)
    name = f"闲置{uuid.uuid4().hex[:4]}"
    async with http_server(app, free_port()) as base, async_playwright() as pw:
        clerk = {"Authorization": f"Bearer {issue_test_token(settings, roles=['clerk'], username='idle-seed')}"}
        async with httpx.AsyncClient(base_url=base) as api:
            assert (await api.post("/api/registration/patients", headers=clerk, json={"name": name})).status_code == 201
        username = f"idle{uuid.uuid4().hex[:6]}"
        async with app.state.ctx.pool.acquire() as conn:
            user = await staff.create_user(conn, username=username, roles=["clerk"], display_name="前台小吴",
                                           password=PASSWORD)
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page()
            await desk_sign_in(page, f"{base}/ui/registration/", username, PASSWORD, user.totp_secret)
            assert await page.evaluate("sessionStorage.getItem('imaging.idle_seconds')") == str(IDLE)
            token = await page.evaluate("sessionStorage.getItem('imaging.access_token')")
            await page.fill("#search", name)
            await page.keyboard.press("Enter")
            await expect(page.locator("#search-results tbody tr", has_text=name)).to_have_count(1)
            # Nobody touches the desk: within the idle time and the page's 5 s check it has signed out.
            await expect(page.locator("#login-error")).to_have_text("长时间未操作，已自动退出登录",
                                                                   timeout=(IDLE + 15) * 1000)
            await expect(page.locator("#login")).to_be_visible()
            await expect(page.locator("#main-view")).to_be_hidden()
            assert name not in await page.content()
            assert await page.evaluate("sessionStorage.getItem('imaging.access_token')") is None
            async with httpx.AsyncClient(base_url=base) as api:
                r = await api.get("/api/registration/auth/me", headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 401 and r.json()["code"] == "session-ended"
        finally:
            await browser.close()
