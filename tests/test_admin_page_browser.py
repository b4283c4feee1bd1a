"""The administration page /ui/admin/ in headless Chromium, on a platform whose database is empty as on day one
(issue 23 items 3, 4 and 6): an admin previews and loads the starter configuration, adds a room with its
working hours and an exam type, all through the services' admin APIs (audited), and sees the other services'
configuration; a clerk gets a Chinese 无权限 message and nothing else; no console errors; screenshots under
var/test-artefacts/admin/."""

from __future__ import annotations

import uuid

from imaging_testing import eventually
from playwright.async_api import Browser, expect

from . import staff_pages
from .staff_pages import Site, signed_in, snapshot

site, browser = staff_pages.empty_site, staff_pages.browser  # the shared fixtures: an empty database here


async def test_an_admin_loads_the_starter_adds_a_room_and_an_exam(site: Site, browser: Browser) -> None:
    tag = uuid.uuid4().hex[:4].upper()
    context, page, errors = await signed_in(browser, site, "/ui/admin/", ["admin"], "科室管理员")
    await expect(page.locator(".tabs button[aria-selected=true]")).to_have_text("载入初始配置")

    # Day one: the preview says what loading adds; loading adds it; loading again adds nothing.
    await expect(page.locator("#starter-status")).to_contain_text("预览：载入将新增")
    await expect(page.locator("#starter-table")).to_contain_text("检查项目")
    await expect(page.locator("#starter-table")).to_contain_text("危急值项目")
    async with site.client("admin") as api:
        assert (await api.get("/api/scheduling/rooms")).json()["count"] == 0
    await snapshot(page, "admin", "starter-preview")
    await page.locator("#starter-load").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#starter-status")).to_contain_text("已载入初始配置：新增")
    async with site.client("admin") as api:
        rooms = (await api.get("/api/scheduling/rooms")).json()["count"]
        exams = {e["code"] for e in (await api.get("/api/scheduling/exam-types")).json()["data"]}
        assert rooms >= 10 and {"CT-CHEST", "MR-KNEE"} <= exams
        assert (await api.get("/api/queue/queues")).json()["count"] > 0
    await snapshot(page, "admin", "starter-loaded")
    await page.click("#starter-load")
    await expect(page.locator("#starter-status")).to_have_text("已载入初始配置：新增 0 项")

    # A room with its hours, with the keyboard: the tab, then the form's fields in order.
    await page.locator(".tabs button", has_text="检查室与工作时间").click()
    await expect(page.locator("#rooms-table")).to_contain_text("本部")
    await page.locator("#room-form [name=id]").focus()
    for value in (f"CT9-{tag}", "CT9室", "CT", "本部", "门诊楼1层东侧", f"CT9{tag}"):
        await page.keyboard.type(value)
        await page.keyboard.press("Tab")
    await page.fill("#room-form [name=starts]", "07:30")
    await page.fill("#room-form [name=ends]", "19:00")
    await page.locator("#room-form button[type=submit]").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#rooms-table tr", has_text=f"CT9-{tag}")).to_contain_text("周一 07:30-19:00")
    async with site.client("admin") as api:
        [room] = [r for r in (await api.get("/api/scheduling/rooms")).json()["data"] if r["id"] == f"CT9-{tag}"]
    assert room["campus"] == "本部" and room["station_ae_title"] == f"CT9{tag}"
    assert sorted(s["weekday"] for s in room["sessions"]) == [1, 2, 3, 4, 5]
    await snapshot(page, "admin", "room-added")
    # Edited from its row: the form is filled, the change saved with the same PUT.
    await page.click(f'button[aria-label="编辑 CT9-{tag}"]')
    await expect(page.locator("#room-form [name=name]")).to_be_focused()
    await expect(page.locator("#room-form [name=starts]")).to_have_value("07:30")
    await page.fill("#room-form [name=name]", "CT9室（心脏）")
    await page.keyboard.press("Enter")
    await expect(page.locator("#rooms-table tr", has_text=f"CT9-{tag}")).to_contain_text("CT9室（心脏）")

    # An exam type in the catalogue.
    await page.locator(".tabs button", has_text="检查项目目录").click()
    await expect(page.locator("#exams-table")).to_contain_text("CT-CHEST")
    await page.fill("#exam-form [name=code]", f"CT-CARD-{tag}")
    await page.fill("#exam-form [name=name]", "冠状动脉CTA")
    await page.fill("#exam-form [name=modality]", "ct")
    await page.fill("#exam-form [name=body_part]", "HEART")
    await page.fill("#exam-form [name=duration_minutes]", "20")
    await page.select_option("#exam-form [name=contrast]", "iodinated")
    await page.check("#exam-form [name=fasting]")
    await page.fill("#exam-form [name=preparation]", "检查前4小时禁食，控制心率")
    await page.keyboard.press("Enter")
    await expect(page.locator("#exams-table tr", has_text=f"CT-CARD-{tag}")).to_contain_text("冠状动脉CTA")
    async with site.client("admin") as api:
        [exam] = [e for e in (await api.get("/api/scheduling/exam-types")).json()["data"]
                  if e["code"] == f"CT-CARD-{tag}"]
    assert exam["modality"] == "CT" and exam["contrast"] == "iodinated" and exam["fasting"] is True

    # A queue and a door screen added; a starter queue renamed from its row keeps its priority policy and
    # skip rule (the form does not show them).
    await page.locator(".tabs button", has_text="队列与屏幕").click()
    await expect(page.locator("#queues-table tbody tr").first).to_be_visible()
    async with site.client("admin") as api:
        [before] = (await api.get("/api/queue/queues")).json()["data"][:1]
    await page.click(f'button[aria-label="编辑 {before["queue_id"]}"]')
    await expect(page.locator("#queue-form [name=name]")).to_be_focused()
    await page.fill("#queue-form [name=name]", before["name"] + "（改）")
    await page.keyboard.press("Enter")
    await expect(page.locator("#queues-table")).to_contain_text(before["name"] + "（改）")
    await page.fill("#queue-form [name=queue_id]", f"Q-{tag}")
    await page.fill("#queue-form [name=name]", "心脏CT候诊")
    await page.fill("#queue-form [name=ticket_prefix]", "H")
    await page.keyboard.press("Enter")
    await expect(page.locator("#queues-table")).to_contain_text("心脏CT候诊")
    await page.fill("#screen-form [name=screen_id]", f"S-{tag}")
    await page.select_option("#screen-form [name=kind]", "door")
    await page.fill("#screen-form [name=title]", "CT9室")
    await page.fill("#screen-form [name=room_ids]", "CT1")
    await page.keyboard.press("Enter")
    await expect(page.locator("#screens-table tr", has_text=f"S-{tag}")).to_contain_text("诊室门口屏")
    async with site.client("admin") as api:
        queues = {q["queue_id"]: q for q in (await api.get("/api/queue/queues")).json()["data"]}
        screens = {x["screen_id"]: x for x in (await api.get("/api/queue/screens")).json()["data"]}
    after = queues[before["queue_id"]]
    assert after["name"] == before["name"] + "（改）"
    assert (after["policy"], after["skip_rule"]) == (before["policy"], before["skip_rule"])
    assert queues[f"Q-{tag}"]["ticket_prefix"] == "H" and screens[f"S-{tag}"]["room_ids"] == ["CT1"]

    # A user added (the one-time secrets shown once), then given another role from its row.
    await page.locator(".tabs button", has_text="用户与角色").click()
    await page.fill("#user-form [name=username]", f"zhang{tag.lower()}")
    await page.fill("#user-form [name=display_name]", "张护士")
    await page.check("#user-roles input[value=nurse]")
    await page.locator("#user-submit").click()
    await expect(page.locator("#user-secret")).to_contain_text("一次性密码")
    await page.click(f'button[aria-label="修改 zhang{tag.lower()} 的角色"]')
    await expect(page.locator("#user-form [name=username]")).to_have_value(f"zhang{tag.lower()}")
    await page.check("#user-roles input[value=clerk]")
    await page.keyboard.press("Enter")
    await expect(page.locator("#users-table tr", has_text=f"zhang{tag.lower()}")).to_contain_text("登记员、护士")
    await page.click(f'#users-table button[data-user="zhang{tag.lower()}"]')
    await expect(page.locator("#users-table tr", has_text=f"zhang{tag.lower()}")).to_contain_text("已停用")

    # Receivers: a FHIR receiver of reports and a clinician system (HL7) for critical values.
    await page.locator(".tabs button", has_text="报告接收方").click()
    await page.fill("#report-receiver-form [name=id]", f"emr-{tag}")
    await page.fill("#report-receiver-form [name=name]", "电子病历")
    await page.select_option("#report-receiver-form [name=kind]", "fhir")
    await page.fill("#report-receiver-form [name=url]", "http://10.20.0.5/fhir")
    await page.keyboard.press("Enter")
    await expect(page.locator("#report-receivers-table tr", has_text=f"emr-{tag}")).to_contain_text(
        "http://10.20.0.5/fhir")
    await page.fill("#critical-receiver-form [name=receiver_id]", f"his-{tag}")
    await page.fill("#critical-receiver-form [name=name]", "医生工作站")
    await page.fill("#critical-receiver-form [name=hl7_host]", "10.20.0.6")
    await page.fill("#critical-receiver-form [name=hl7_port]", "2575")
    await page.keyboard.press("Enter")
    await expect(page.locator("#critical-receivers-table tr", has_text=f"his-{tag}")).to_contain_text("10.20.0.6:2575")
    async with site.client("admin") as api:
        [his] = [x for x in (await api.get("/api/critical-values/receivers")).json()["data"]
                 if x["receiver_id"] == f"his-{tag}"]
    assert his["department"] == "*" and his["hl7_port"] == 2575

    # The escalation chain: a step added (phone task after 20 minutes) and saved.
    await page.locator(".tabs button", has_text="危急值字典与升级").click()
    async with site.client("admin") as api:
        steps = (await api.get("/api/critical-values/escalation-chain")).json()["steps"]
    await expect(page.locator("#chain-table tbody tr")).to_have_count(len(steps))
    await page.click("#chain-add")
    n = len(steps) + 1
    await page.select_option(f'#chain-table select[aria-label="第{n}步动作"]', "phone-task")
    await page.fill(f'#chain-table input[aria-label="第{n}步分钟数"]', "20")
    await page.locator(f'#chain-table input[aria-label="第{n}步分钟数"]').press("Enter")
    async with site.client("admin") as api:
        async def saved() -> bool:
            r = await api.get("/api/critical-values/escalation-chain")
            return len(r.json()["steps"]) == n
        await eventually(saved, "the chain saved", within=10)
        last = (await api.get("/api/critical-values/escalation-chain")).json()["steps"][-1]
    assert last["action"] == "phone-task" and last["after_minutes"] == 20

    # The other services' configuration, as loaded.
    seen = (("队列与屏幕", "#screens-table", "候诊大厅屏"), ("报告模板与常用词", "#templates-table", "CT"),
            ("危急值字典与升级", "#dictionary-table", "CT"), ("用户与角色", "#users-table", "科室管理员"))
    for tab, table, text in seen:
        await page.locator(".tabs button", has_text=tab).click()
        await expect(page.locator(table)).to_contain_text(text)
    await snapshot(page, "admin", "users")

    # Every change audited, by this admin, in the services that own them.
    async with site.ctx("scheduling").pool.acquire() as conn:
        rows = await conn.fetch("SELECT action, entity, entity_id FROM audit.audit_log WHERE entity_id = ANY($1)",
                                [f"CT9-{tag}", f"CT-CARD-{tag}"])
    assert sorted((r["entity"], r["entity_id"]) for r in rows) == [
        ("exam_type", f"CT-CARD-{tag}"), ("room", f"CT9-{tag}"), ("room", f"CT9-{tag}")]
    async with site.ctx("queue").pool.acquire() as conn:
        queue_rows = await conn.fetch("SELECT entity_id FROM audit.audit_log WHERE entity_id = ANY($1)",
                                      [f"Q-{tag}", f"S-{tag}", before["queue_id"]])
    assert {r["entity_id"] for r in queue_rows} >= {f"Q-{tag}", f"S-{tag}", before["queue_id"]}
    async with site.ctx("registration").pool.acquire() as conn:
        user_id = await conn.fetchval("SELECT id::text FROM staff_users WHERE username = $1", f"zhang{tag.lower()}")
        user_rows = await conn.fetch(
            "SELECT action FROM audit.audit_log WHERE entity = 'staff_user' AND entity_id = $1", user_id)
    assert sorted(r["action"] for r in user_rows) == ["create", "update", "update"]
    assert errors == []
    await context.close()


async def test_others_see_no_permission(site: Site, browser: Browser) -> None:
    context, page, errors = await signed_in(browser, site, "/ui/admin/", ["clerk"], "前台小王")
    await expect(page.locator("#forbidden")).to_be_visible()
    await expect(page.locator("#forbidden")).to_contain_text("无权限")
    await expect(page.locator("#workspace")).to_be_hidden()
    await snapshot(page, "admin", "forbidden")
    assert errors == []
    await context.close()
