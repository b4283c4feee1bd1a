"""Logout revokes the session (issue 18, 8): after POST /api/registration/auth/logout, the same token is
refused by every service; every staff page's "log out" calls it, drops the stored token and clears the
patient data from the screen — checked in headless Chromium on the critical-values board and the
print review page, and over HTTP for every service."""

from __future__ import annotations

import json
import uuid

import httpx
from critical_values.domain import recipients
from imaging_common.allinone import discover_services
from imaging_common.auth.roles import ROLES
from imaging_testing.print_kit import film_for_review
from playwright.async_api import Page, async_playwright

from security.conftest import Sandbox
from security.unavailable import Resending

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


async def test_logout_token_refused_by_every_service(sandbox: Sandbox) -> None:
    token = sandbox.token(*ROLES, username=f"logout-{uuid.uuid4().hex[:6]}")
    auth = {"Authorization": f"Bearer {token}"}
    prefixes = [spec.api_prefix for spec, _ in discover_services()]
    assert len(prefixes) == 9
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=30, transport=Resending()) as api:
        for prefix in prefixes:
            r = await api.get(f"{prefix}/session", headers=auth)
            assert r.status_code == 200, (prefix, r.text)
        assert (await api.post("/api/registration/auth/logout", headers=auth)).status_code == 204
        for prefix in prefixes:
            r = await api.get(f"{prefix}/session", headers=auth)
            assert r.status_code == 401, (prefix, r.text)
        assert (await api.post("/api/registration/auth/logout", headers=auth)).status_code == 401


async def _log_in(page: Page, url: str, token: str) -> None:
    await page.goto(url)
    await page.evaluate(f"sessionStorage.setItem('imaging.access_token', {json.dumps(token)})")
    await page.goto(url)


async def _log_out(page: Page) -> None:
    """Click "log out": the revocation is answered 204, then the page reloads (emptied) without a token."""
    async with page.expect_navigation(wait_until="load"):
        async with page.expect_response(lambda r: r.url.endswith("/api/registration/auth/logout")) as done:
            await page.click("#logout")
        assert (await done.value).status == 204
    assert await page.evaluate("sessionStorage.getItem('imaging.access_token')") is None


async def test_logout_pages_in_chromium(sandbox: Sandbox) -> None:
    uid = uuid.uuid4().hex[:8]
    name = f"欧阳{uid[:2]}娜"
    accession = f"LO{uid}"
    cv_pool = sandbox.apps["critical_values"].state.ctx.pool
    async with cv_pool.acquire() as conn:
        await recipients.remember_order(
            conn, accession_number=accession, order_id=f"O-{accession}", patient={"patient_id": f"P{uid}",
                                                                                 "name": name},
            patient_class="E", ordering_doctor_id="D1", ordering_doctor="李医生", ordering_department=f"LO-{uid}",
            ward=None, modality="CT")
    await film_for_review(sandbox.apps["print_scp"].state.ctx, f"security/logout/{uid}.png", uid,
                          {"accession_number": accession, "patient_id": f"P{uid}", "patient_name": name})
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=30, transport=Resending()) as api:
        r = await api.post("/api/critical-values/critical-values", headers=sandbox.headers("radiologist"),
                           json={"accession_number": accession, "finding": "张力性气胸"})
        assert r.status_code == 201, r.text
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            try:
                for path, roles, shows in (("/ui/critical-values/", ("senior-radiologist",), accession),
                                           ("/ui/print/review", ("technologist",), name)):
                    token = sandbox.token(*roles, username=f"page-{uid}")
                    page = await browser.new_page()
                    await _log_in(page, f"{sandbox.url}{path}", token)
                    await page.locator("tr", has_text=shows).first.wait_for(timeout=15000)
                    await _log_out(page)
                    # The page is back at its login, with nothing of the patient on it.
                    await page.locator("#login").wait_for(state="visible", timeout=10000)
                    content = await page.content()
                    assert shows not in content and accession not in content, path
                    # The token the page held is refused everywhere, not just forgotten by the page.
                    for prefix in ("/api/registration", "/api/critical-values", "/api/print"):
                        r = await api.get(f"{prefix}/session", headers={"Authorization": f"Bearer {token}"})
                        assert r.status_code == 401, (path, prefix, r.text)
                    await page.close()
            finally:
                await browser.close()
