"""The scheduling page in headless Chromium through the all-in-one platform (issue 23 items 3 and 6): a clerk
books a waiting exam with the keyboard, moves it to another room by dragging it on the board, prints the slip
through its short-lived link (opened in a browser that holds no token: it works; tampered or expired: refused)
and cancels with a reason; no console errors; screenshots under var/test-artefacts/scheduling/."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
from imaging_testing import eventually
from playwright.async_api import Browser, expect
from scheduling.adapters import slip_links

from . import staff_pages
from .staff_pages import Site, signed_in, snapshot

site, browser = staff_pages.site, staff_pages.browser  # the shared fixtures

DAYS = [{"weekday": d, "starts": "08:00", "ends": "18:00"} for d in range(1, 8)]


async def seed(site: Site, tag: str) -> dict[str, Any]:
    """Two CT rooms on a campus of this test, an exam type, and a patient's order of it, waiting in scheduling.
    The exam needs a capability only these rooms have: the pool spans every campus, so the earliest slot would
    otherwise be in another test's CT room whenever that one's hours start earlier in the day."""
    campus, exam, capability = f"测试院区{tag}", f"CT-T{tag}", f"test-{tag}"
    async with site.client("admin") as admin, site.client("clerk") as clerk:
        for n in (1, 2):
            r = await admin.put(f"/api/scheduling/rooms/R{n}-{tag}", json={
                "id": f"R{n}-{tag}", "name": f"CT{n}室", "modality": "CT", "campus": campus, "building": "门诊楼",
                "floor": "1", "location": f"门诊楼1层 CT{n}室", "sessions": DAYS, "capabilities": [capability]})
            assert r.status_code == 200, r.text
        r = await admin.put(f"/api/scheduling/exam-types/{exam}", json={
            "code": exam, "name": "胸部CT平扫", "modality": "CT", "body_part": "CHEST", "duration_minutes": 10,
            "preparation": "检查前去除金属物品", "required_capabilities": [capability]})
        assert r.status_code == 200, r.text
        name = f"排程{tag[:4]}"
        r = await clerk.post("/api/registration/patients", json={"name": name, "sex": "F", "birth_date": "1980-02-03",
                                                                  "force_new": True})
        assert r.status_code == 201, r.text
        empi_id = r.json()["patient"]["empi_id"]
        r = await clerk.post("/api/registration/orders", json={
            "empi_id": empi_id, "ordering_department": "呼吸科", "ordering_doctor": "王医生",
            "clinical_diagnosis": "咳嗽", "purpose": "排除肺炎",
            "items": [{"code": exam, "name": "胸部CT平扫", "modality": "CT", "body_part": "CHEST"}]})
        assert r.status_code == 201, r.text
        accession = r.json()["accession_number"]
        order_id = (await admin.get(f"/api/registration/orders/{accession}")).json()["order_id"]

        async def waiting() -> Any:
            r = await admin.get("/api/scheduling/requests", params={"order_id": order_id})
            return r.status_code == 200 and r.json()["data"]

        await eventually(waiting, "scheduling to learn the order", within=60)
    return {"campus": campus, "exam": exam, "name": name, "order_id": order_id, "accession": accession,
            "rooms": [f"R1-{tag}", f"R2-{tag}"]}


async def appointment(site: Site, order_id: str) -> dict[str, Any]:
    async with site.client("admin") as admin:
        [a] = (await admin.get("/api/scheduling/appointments", params={"order_id": order_id})).json()["data"]
    return a


async def test_a_clerk_books_drags_prints_and_cancels(site: Site, browser: Browser) -> None:
    tag = uuid.uuid4().hex[:6]
    w = await seed(site, tag)
    context, page, errors = await signed_in(browser, site, "/ui/scheduling/", ["clerk"], "前台小李")
    await expect(page.locator("#app")).to_be_visible()
    await page.select_option("#campus", w["campus"])
    await expect(page.locator("#board thead th")).to_have_count(3)

    # Book with the keyboard: the waiting exam (found by its order), the earliest slot, confirm.
    await page.fill("#order-id", w["order_id"])
    await page.keyboard.press("Enter")
    pick = page.locator("#requests button", has_text=w["name"])
    await expect(pick).to_contain_text("胸部CT平扫")
    await pick.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#find")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#proposal")).to_contain_text("最早可约：" + w["campus"])
    await expect(page.locator("#confirm")).to_be_focused()
    await snapshot(page, "scheduling", "proposal")
    await page.keyboard.press("Enter")
    booked = page.locator(".appt", has_text=w["name"])
    await expect(booked).to_have_count(1)
    first = await appointment(site, w["order_id"])
    assert first["status"] == "booked" and first["room_id"] == w["rooms"][0], first
    await expect(page.locator(f'#board td[data-room="{w["rooms"][0]}"] .appt')).to_have_count(1)
    await snapshot(page, "scheduling", "booked")

    # Drag it to the other room in the same hour: a reschedule, same time, other room.
    cell = page.locator(f'#board td[data-room="{w["rooms"][1]}"]').nth(
        await page.locator(f'#board td[data-room="{w["rooms"][0]}"]').evaluate_all(
            "(cells) => cells.findIndex((c) => c.querySelector('.appt'))"))
    async with page.expect_response(lambda r: r.url.endswith("/reschedule")) as moved:
        await booked.drag_to(cell)
    assert (await moved.value).status == 200
    await expect(page.locator(f'#board td[data-room="{w["rooms"][1]}"] .appt', has_text=w["name"])).to_have_count(1)
    second = await appointment(site, w["order_id"])
    assert second["room_id"] == w["rooms"][1] and second["start"] == first["start"] and second["status"] == "booked"
    await snapshot(page, "scheduling", "dragged")

    # Moved with the keyboard instead: outside the room's hours, refused in Chinese; an hour later, moved.
    await page.locator(".appt", has_text=w["name"]).focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#detail")).to_be_visible()
    day = (await page.input_value("#move-start"))[:10]  # local date of the booking
    await page.fill("#move-start", f"{day}T20:00")
    await page.locator("#move-start").press("Enter")
    await expect(page.locator("#error")).to_have_text("无法预约：不在检查室工作时间内")
    assert errors == ["error: Failed to load resource: the server responded with a status of 422 "
                      "(Unprocessable Entity)"]
    errors.clear()  # the browser's own line for the refused move; nothing else may appear
    next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    await page.fill("#move-start", f"{next_day}T09:00")
    await page.locator("#move-start").press("Enter")
    await expect(page.locator("#day")).to_have_value(next_day)  # the board follows the booking
    await expect(page.locator(f'#board td[data-room="{w["rooms"][1]}"] .appt', has_text=w["name"])).to_contain_text(
        "09:00")
    await expect(page.locator("#error")).to_be_empty()
    third = await appointment(site, w["order_id"])
    assert third["room_id"] == w["rooms"][1] and third["start"] != second["start"]

    # The slip: a link that opens without a token in a browser that never signed in.
    await page.locator(".appt", has_text=w["name"]).click()
    await expect(page.locator("#detail")).to_be_visible()
    await page.click("#slip")
    link = page.locator("#slip-link")
    await expect(link).to_be_visible()
    await expect(page.locator("#slip-expiry")).to_contain_text("10 分钟内有效")
    href = await link.get_attribute("href")
    assert href and "slip=" in href
    kiosk = await browser.new_context(locale="zh-CN")
    slip_page = await kiosk.new_page()
    r = await slip_page.goto(site.url + href)
    assert r is not None and r.status == 200
    await expect(slip_page.locator("body")).to_contain_text(w["name"])
    await expect(slip_page.locator("body")).to_contain_text(w["accession"])
    await snapshot(slip_page, "scheduling", "slip")
    token = href.split("slip=")[1]
    r = await slip_page.goto(site.url + href.replace(token, token[::-1]))
    assert r is not None and r.status == 403
    await expect(slip_page.locator("body")).to_contain_text("预约回执链接无效或已过期")
    assert w["name"] not in await slip_page.content()
    ctx = site.ctx("scheduling")
    short = await slip_links.issue(ctx.redis, ctx.settings.namespace, appointment_id=third["id"],
                                   user_id="u-test", username="test", seconds=1)
    await asyncio.sleep(1.5)
    r = await slip_page.goto(f"{site.url}/api/scheduling/appointments/{third['id']}/receipt.html?slip={short}")
    assert r is not None and r.status == 403
    async with httpx.AsyncClient(base_url=site.url) as anon:  # and never without any link
        assert (await anon.get(f"/api/scheduling/appointments/{third['id']}/receipt.html")).status_code == 401
    await kiosk.close()

    # Cancel with a reason (keyboard: the reason, Enter): gone from the board, waiting again.
    await page.fill("#cancel-reason", "患者要求改期")
    await page.keyboard.press("Enter")
    await expect(page.locator(".appt", has_text=w["name"])).to_have_count(0)
    await page.fill("#order-id", w["order_id"])
    await page.keyboard.press("Enter")
    await expect(page.locator("#requests button", has_text=w["name"])).to_have_count(1)
    async with site.client("admin") as admin:
        [gone] = (await admin.get("/api/scheduling/appointments", params={"order_id": w["order_id"],
                                                                          "status": "cancelled"})).json()["data"]
    assert gone["reason"] == "患者要求改期"
    await snapshot(page, "scheduling", "cancelled")

    # The week view shows the same board by day.
    await page.click("#view-week")
    await expect(page.locator("#board tbody tr")).to_have_count(7)
    assert errors == []
    await context.close()


async def test_a_technologist_sees_the_board_without_booking(site: Site, browser: Browser) -> None:
    tag = uuid.uuid4().hex[:6]
    w = await seed(site, tag)
    async with site.client("clerk") as clerk:
        r = await clerk.post("/api/scheduling/appointments", json={"order_id": w["order_id"], "exam_code": w["exam"],
                                                                   "campus": w["campus"]})
        assert r.status_code == 201, r.text
        booked = r.json()
    context, page, errors = await signed_in(browser, site, "/ui/scheduling/", ["technologist"], "技师小陈")
    await page.select_option("#campus", w["campus"])
    await page.fill("#day", booked["start"][:10])  # a UTC date: the rooms open 08:00-18:00 Beijing time
    await page.locator("#day").dispatch_event("change")
    appt = page.locator(".appt", has_text=w["name"])
    await expect(appt).to_have_count(1)
    assert await appt.get_attribute("draggable") is None
    await appt.click()
    await expect(page.locator("#detail")).to_be_visible()
    for gone in ("#requests", "#move", "#cancel", "#booking"):
        await expect(page.locator(gone)).to_have_count(0)
    await expect(page.locator("#slip")).to_be_visible()
    await snapshot(page, "scheduling", "technologist")
    assert errors == []
    await context.close()
