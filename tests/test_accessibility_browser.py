"""Accessibility pass over every staff page (issue 23, item 6): axe-core (the copy bundled with
axe-playwright-python) in headless Chromium, signed in as a member of staff holding every staff role, each
page with data on it; no violation of serious or critical impact. The full report of any violation,
whatever its impact, is kept under var/test-artefacts/accessibility/ for people to read."""

from __future__ import annotations

import json
import uuid

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, expect

from . import staff_pages
from .staff_pages import ARTEFACTS, Site, signed_in
from .test_critical_pages_browser import seed as seed_critical_values

site, browser = staff_pages.site, staff_pages.browser  # the shared fixtures

ROLES = ["admin", "clerk", "nurse", "technologist", "radiologist", "senior-radiologist", "clinician"]
PAGES = ["/", "/ui/registration/", "/ui/worklist/", "/ui/scheduling/", "/ui/reporting/", "/ui/critical-values/",
         "/ui/critical-values/ack/{critical_id}", "/ui/print/review", "/ui/queue/terminal", "/ui/admin/",
         "/ui/dashboard/", "/ui/dashboard/qc/"]
BLOCKING = {"serious", "critical"}


async def test_no_serious_violations_on_any_staff_page(site: Site, browser: Browser) -> None:
    made = await seed_critical_values(site, uuid.uuid4().hex[:6].upper())
    context, page, errors = await signed_in(browser, site, "/", ROLES, "无障碍检查")
    axe = Axe()
    found: dict[str, list[str]] = {}
    folder = ARTEFACTS / "accessibility"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for path in PAGES:
            url = site.url + path.format(critical_id=made["own"])
            await page.goto(url)
            await expect(page.locator(".shell-bar #whoami")).to_have_text("无障碍检查")
            await page.wait_for_timeout(1000)  # its lists loaded (live pages never go network-idle)
            results = await axe.run(page)
            violations = results.response["violations"]
            name = path.strip("/").replace("/", "-").split("{")[0].strip("-") or "home"
            (folder / f"{name}.json").write_text(json.dumps(violations, ensure_ascii=False, indent=1))
            serious = [f"{v['id']} ({v['impact']}): {v['help']} — " +
                       "; ".join(n["target"][0] if isinstance(n["target"][0], str) else str(n["target"])
                                 for n in v["nodes"][:4])
                       for v in violations if v["impact"] in BLOCKING]
            if serious:
                found[path] = serious
        assert not found, "\n".join(f"{p}:\n  " + "\n  ".join(v) for p, v in found.items())
        # The pages show the whole session's data (that is the point: full pages); a film another test recorded
        # without storing its image answers 404 on the print page. Any other console error fails.
        assert [e for e in errors if "status of 404" not in e] == []
    finally:
        await context.close()
