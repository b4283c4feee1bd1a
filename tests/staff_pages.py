"""What the staff pages' Chromium tests of scheduling and administration share: the all-in-one platform on a
port, Chromium, a staff member signed in through the shared sign-in form, console errors watched, screenshots
kept under var/test-artefacts/<page>/ (at the workstations' 1366x768)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from imaging_common.allinone import build_platform
from imaging_common.auth import credentials as cred
from imaging_common.events.topology import delete_namespace
from imaging_testing import free_port, http_server
from imaging_testing.auth import issue_test_token
from imaging_testing.helpers import database_url, environment
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from registration.domain import staff
from registration.settings import Settings as RegistrationSettings

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
PASSWORD = "a shift is twelve hours"
VIEWPORT = {"width": 1366, "height": 768}
ARTEFACTS = Path(__file__).resolve().parent.parent / "var" / "test-artefacts"
expect.set_options(timeout=20_000)


class Site:
    def __init__(self, url: str, platform: Any) -> None:
        self.url = url
        self.apps = {prefix: app for prefix, app in platform.routes}

    def ctx(self, prefix: str) -> Any:
        return self.apps[f"/api/{prefix}"].state.ctx

    def headers(self, *roles: str) -> dict[str, str]:
        settings = self.ctx("registration").settings
        token = issue_test_token(settings, roles=list(roles), username=f"seed-{'-'.join(roles)}")
        return {"Authorization": f"Bearer {token}"}

    def client(self, *roles: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers(*roles) if roles else None, timeout=30)


@pytest.fixture(scope="module")
async def site(test_env: dict[str, str]) -> AsyncIterator[Site]:
    platform = build_platform({"registration": RegistrationSettings(mllp_port=0)})
    async with http_server(platform) as url:
        yield Site(url, platform)


@contextlib.asynccontextmanager
async def own_platform(test_env: dict[str, str],
                       settings: Callable[[], dict[str, Any]] | None = None) -> AsyncIterator[Site]:
    """The platform on a database of its own, empty (as on day one), with its own RabbitMQ namespace and ports;
    both dropped after. For tests that must see only their own data (what other tests leave in the session's
    database, a film in review whose image is elsewhere, would show on their pages). `settings` makes the
    services' settings objects, inside that environment (so they name this database)."""
    name = f"imaging_pages_{uuid.uuid4().hex[:8]}"
    namespace = f"{test_env['IMAGING_NAMESPACE']}-{name}"
    server = await asyncpg.connect(database_url(test_env["DATABASE_URL"], "postgres"))
    await server.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {"DATABASE_URL": database_url(test_env["DATABASE_URL"], name), "IMAGING_NAMESPACE": namespace,
               "IMAGING_PRINT_PORT": str(free_port()), "IMAGING_WORKLIST_PORT": str(free_port()),
               "IMAGING_CRITICAL_MLLP_PORT": str(free_port()), "IMAGING_MLLP_PORT": "0"}
        with environment(env):
            platform = build_platform(settings() if settings else None)
            async with http_server(platform) as url:
                yield Site(url, platform)
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()
        with contextlib.suppress(Exception):
            await delete_namespace(test_env["AMQP_URL"], namespace)


@pytest.fixture(scope="module")
async def empty_site(test_env: dict[str, str]) -> AsyncIterator[Site]:
    async with own_platform(test_env) as site:
        yield site


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS,
                                     timeout=60_000)
        yield b
        await b.close()


async def snapshot(page: Page, folder: str, name: str) -> None:
    (ARTEFACTS / folder).mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTEFACTS / folder / f"{name}.png"), full_page=True)


def watch_console(page: Page) -> list[str]:
    """Console errors and uncaught exceptions of the page."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    return errors


async def new_user(site: Site, roles: list[str], display_name: str) -> tuple[str, str]:
    username = f"pg{uuid.uuid4().hex[:8]}"
    async with site.ctx("registration").pool.acquire() as conn:
        user = await staff.create_user(conn, username=username, roles=roles, display_name=display_name,
                                       password=PASSWORD)
    return username, user.totp_secret


async def signed_in(browser: Browser, site: Site, path: str, roles: list[str],
                    display_name: str) -> tuple[BrowserContext, Page, list[str]]:
    """A new staff member with these roles signed in at `path` with the keyboard only."""
    username, secret = await new_user(site, roles, display_name)
    context = await browser.new_context(locale="zh-CN", viewport=VIEWPORT, timezone_id="Asia/Shanghai")
    page = await context.new_page()
    errors = watch_console(page)
    await page.goto(site.url + path)
    await expect(page.locator("#login")).to_be_visible()
    await page.keyboard.type(username)  # the user name field has the focus
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Tab")
    await page.keyboard.type(cred.totp_code(secret, time.time()))
    await page.keyboard.press("Enter")
    await expect(page.locator(".shell-bar #whoami")).to_have_text(display_name)
    return context, page, errors
