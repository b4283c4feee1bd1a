"""The critical-value pages in headless Chromium through the all-in-one platform (issue 23, item 3): a senior
radiologist works the board (the nearest deadline first; reject an AI finding with a reason, close one as
documented, each in an in-page dialog with the keyboard), and a clinician opens the acknowledgement link from
a HIS message with no session, signs in on that page and acknowledges. Screenshots under
var/test-artefacts/critical-values/."""

from __future__ import annotations

import uuid
from typing import Any

from critical_values.domain import recipients
from playwright.async_api import Browser, expect

from . import staff_pages
from .staff_pages import Site, signed_in, snapshot

site, browser = staff_pages.site, staff_pages.browser  # the shared fixtures


async def seed(site: Site, tag: str) -> dict[str, Any]:
    """An order known to critical values, an AI finding on it waiting for a radiologist, and a radiologist's
    value on it (not delivered: no receiver is configured)."""
    accession = f"CB{tag}"
    async with site.ctx("critical-values").pool.acquire() as conn:
        await recipients.remember_order(
            conn, accession_number=accession, order_id=f"O-{accession}", patient={"patient_id": f"P{tag}",
                                                                                 "name": "欧阳明华"},
            patient_class="I", ordering_doctor_id="D1", ordering_doctor="李医生", ordering_department=f"CB-{tag}",
            ward="心内科病区", modality="CT")
    async with site.client("radiologist") as rad:
        ai = await rad.post("/api/critical-values/ai-findings", json={
            "accession_number": accession, "finding": "疑似肺栓塞", "item_code": "PE", "model": "ctpa-pe-v2",
            "score": 0.93})
        assert ai.status_code == 201, ai.text
        own = await rad.post("/api/critical-values/critical-values", json={
            "accession_number": accession, "finding": "张力性气胸"})
        assert own.status_code == 201, own.text
    return {"accession": accession, "ai": ai.json()["critical_id"], "own": own.json()["critical_id"]}


async def test_board_actions_in_dialogs(site: Site, browser: Browser) -> None:
    made = await seed(site, uuid.uuid4().hex[:6].upper())
    async with site.client("senior-radiologist") as senior:
        board = (await senior.get("/api/critical-values/board")).json()["data"]
    left = [item["seconds_left"] for item in board]
    assert left == sorted(left)  # the nearest deadline first, whatever its kind

    context, page, errors = await signed_in(browser, site, "/ui/critical-values/", ["senior-radiologist"], "主任甲")
    try:
        ai_row = page.locator("#items tr", has_text="疑似肺栓塞").filter(has_text=made["accession"])
        await expect(ai_row).to_have_count(1)
        assert "欧阳明华" not in await page.content()  # masked on the board
        await snapshot(page, "critical-values", "board-with-actions")

        # Reject the AI finding: the dialog names the value, the reason is required, Enter sends it.
        await ai_row.get_by_role("button", name="不予确认").click()
        dialog = page.locator("#act")
        await expect(dialog).to_be_visible()
        await expect(page.locator("#act-what")).to_contain_text(made["accession"])
        await page.keyboard.type("充盈缺损为伪影")  # the reason field has the focus
        await snapshot(page, "critical-values", "reject-dialog")
        await page.locator("#act-ok").click()
        await expect(dialog).to_be_hidden()
        await expect(ai_row).to_have_count(0)

        # Close the radiologist's own value as documented, after telling the doctor face to face.
        own_row = page.locator("#items tr", has_text="张力性气胸").filter(has_text=made["accession"])
        await own_row.get_by_role("button", name="仅记录关闭").click()
        await expect(dialog).to_be_visible()
        await page.keyboard.type("已当面告知李医生")
        await page.keyboard.press("Tab")  # to the send button
        await page.keyboard.press("Enter")
        await expect(own_row).to_have_count(0)
        assert errors == []
    finally:
        await context.close()
    async with site.client("senior-radiologist") as senior:
        ai = (await senior.get(f"/api/critical-values/critical-values/{made['ai']}")).json()
        own = (await senior.get(f"/api/critical-values/critical-values/{made['own']}")).json()
    assert ai["state"] == "rejected" and own["closed_at"] is not None


async def test_acknowledgement_link_signs_in_and_returns(site: Site, browser: Browser) -> None:
    made = await seed(site, uuid.uuid4().hex[:6].upper())
    path = f"/ui/critical-values/ack/{made['own']}"
    # The HIS link opened in a browser with no session: the sign-in form on that page, then the value there.
    context, page, errors = await signed_in(browser, site, path, ["clinician"], "李医生")
    try:
        assert page.url.endswith(path)
        await expect(page.locator("#finding")).to_have_text("张力性气胸")
        await expect(page.locator("#patient")).to_have_text("欧阳明华")
        await page.fill("#action", "已行胸腔闭式引流")
        await page.get_by_role("button", name="已阅并处理").click()
        await expect(page.locator("#state")).to_contain_text("已确认")
        await snapshot(page, "critical-values", "acknowledged")
        assert errors == []
    finally:
        await context.close()
    async with site.client("senior-radiologist") as senior:
        value = (await senior.get(f"/api/critical-values/critical-values/{made['own']}")).json()
    assert value["acknowledged_by"] == "李医生" and value["action_taken"] == "已行胸腔闭式引流"
