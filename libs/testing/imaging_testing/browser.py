"""Staff pages in Chromium (Playwright) for tests: signing in at the registration desk as a clerk does."""

from __future__ import annotations

import time
from typing import Any

from imaging_common.auth import credentials as cred
from playwright.async_api import expect


async def desk_sign_in(page: Any, url: str, username: str, password: str, totp_secret: str) -> None:
    """Open the desk page `url`, sign in with the password and the current TOTP code, and wait for the desk."""
    await page.goto(url)
    await page.fill("#login-username", username)
    await page.fill("#login-password", password)
    await page.fill("#login-totp", cred.totp_code(totp_secret, time.time()))
    await page.keyboard.press("Enter")
    await expect(page.locator("#main-view")).to_be_visible()
