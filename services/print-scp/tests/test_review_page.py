"""The film review list in headless Chromium: a conflicting film shows why, what was read where, and
both candidates; a technologist attaches it by hand."""

from __future__ import annotations

from imaging_testing import free_port, http_server
from imaging_testing.auth import issue_test_token
from playwright.async_api import async_playwright
from print_scp.app import create_app
from print_scp.settings import Settings

from .test_film_identity import _burned, _print, _study

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--no-first-run"]


async def test_review_page_shows_the_evidence_and_matches_by_hand(print_app, settings_for) -> None:
    a, b = await _study(print_app), await _study(print_app, name="王五")
    film = await _print(print_app, [_burned(b["patient"]["patient_id"], b["accession"], 21)], study_uid=a["study_uid"])
    assert film["match_status"] == "review"
    settings = settings_for(Settings, print_port=free_port(), print_host="127.0.0.1")
    app = create_app(settings)
    token = issue_test_token(settings, roles=["technologist"], username="tech-zhou")
    async with http_server(app) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.add_init_script(f"sessionStorage.setItem('imaging.access_token', {token!r})")
            await page.goto(f"{url}/ui/print/review")
            row = page.locator("tr", has_text=b["patient"]["patient_id"]).filter(has_text="证据冲突")
            await row.first.wait_for(timeout=10000)
            text = await row.first.inner_text()
            assert "box 1:" in text and a["accession"] in text and b["accession"] in text
            assert "Study UID: " + a["study_uid"] in text
            await row.first.locator("input").fill(b["accession"])
            await row.first.locator("button").click()
            await page.locator("tr", has_text=b["patient"]["patient_id"]).filter(has_text="证据冲突").first \
                .wait_for(state="detached", timeout=10000)
        finally:
            await browser.close()
    [after] = await print_app.wait_films("id = $1 AND match_status = 'matched'", film["id"])
    assert after["accession_number"] == b["accession"] and after["matched_by"] == "tech-zhou"
