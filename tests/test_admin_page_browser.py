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
            ("用户与角色", "#users-table", "科室管理员"))
    for tab, table, text in seen:
        await page.locator(".tabs button", has_text=tab).click()
        await expect(page.locator(table)).to_contain_text(text)
    await page.locator(".tabs button", has_text="危急值字典与升级").click()  # the dictionary, in its editable rows
    async with site.client("admin") as api:
        items = (await api.get("/api/critical-values/dictionary")).json()["items"]
    codes = page.locator('#dictionary-table input[aria-label$="项代码"]')
    await expect(codes).to_have_count(len(items))
    await expect(codes.first).to_have_value(items[0]["code"])
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


MRRT = """<!DOCTYPE html><html><head><meta charset="UTF-8"><title>Knee MR</title>
<meta name="dcterms.identifier" content="MR-KNEE-{tag}"></head><body>
<section data-section-name="Findings"><header>Findings</header>
  <label for="meniscus">Meniscus</label>
  <select id="meniscus" data-field-type="SELECT" name="meniscus"><option>intact</option><option>torn</option></select>
</section></body></html>"""


async def test_an_admin_keeps_templates_phrases_and_the_critical_value_dictionary(site: Site, browser: Browser) -> None:
    """Issue 23 item 3: report templates (sections, typed fields, QC), department phrases and the critical-value
    dictionary edited on the page, each change through the owning service's API and audited."""
    tag = uuid.uuid4().hex[:4].upper()
    context, page, errors = await signed_in(browser, site, "/ui/admin/#templates", ["admin"], "科室管理员")
    await expect(page.locator(".tabs button[aria-selected=true]")).to_have_text("报告模板与常用词")

    # A new template: two sections by default, a choice field with the side, saved, then edited from its row.
    await page.click("#template-new")
    await expect(page.locator("#template-form [name=id]")).to_be_focused()
    await page.keyboard.type(f"CT-ABD-{tag}")
    await page.keyboard.press("Tab")
    await page.keyboard.type("腹部CT平扫")
    await page.fill("#template-form [name=modality]", "ct")
    await page.fill("#template-form [name=body_part]", "abdomen")
    await expect(page.locator("#template-sections tbody tr")).to_have_count(2)
    await page.click("#field-add")
    await page.fill('[aria-label="字段1编号"]', "kidney_side")
    await page.fill('[aria-label="字段1名称"]', "肾结石侧别")
    await page.select_option('[aria-label="字段1类型"]', "choice")
    await page.fill('[aria-label="字段1选项"]', "左，右,双侧")
    await page.check('[aria-label="字段1记录左右侧"]')
    await page.select_option('[aria-label="字段1为空时"]', "warning")
    await page.select_option('#template-qc select[aria-label="文中尺寸缺单位"]', "blocker")
    await snapshot(page, "admin", "template-editor")
    await page.click("#template-form button[type=submit]")
    await expect(page.locator("#template-status")).to_have_text(f"已保存模板 CT-ABD-{tag}。")
    await expect(page.locator("#template-form")).to_be_hidden()
    async with site.client("admin") as api:
        stored = (await api.get(f"/api/reporting/templates/CT-ABD-{tag}")).json()
    assert (stored["name"], stored["modality"], stored["body_part"]) == ("腹部CT平扫", "CT", "ABDOMEN")
    [field] = stored["definition"]["fields"]
    assert (field["type"], field["options"], field["laterality"], field["required"]) == (
        "choice", ["左", "右", "双侧"], True, "warning")
    assert stored["definition"]["qc"]["free_text_units"] == "blocker"
    assert [s["id"] for s in stored["definition"]["sections"]] == ["findings", "impression"]

    await page.click(f'button[aria-label="编辑 CT-ABD-{tag}"]')
    await expect(page.locator("#template-form [name=name]")).to_be_focused()
    await expect(page.locator("#template-form [name=id]")).to_have_js_property("readOnly", True)
    await expect(page.locator('[aria-label="字段1选项"]')).to_have_value("左,右,双侧")
    await page.click("#section-add")
    await page.fill('[aria-label="段落3编号"]', "recommendation")
    await page.fill('[aria-label="段落3标题"]', "建议")
    await page.click('button[aria-label="删除字段1"]')
    await page.click("#template-form button[type=submit]")
    await expect(page.locator("#template-form")).to_be_hidden()
    async with site.client("admin") as api:
        stored = (await api.get(f"/api/reporting/templates/CT-ABD-{tag}")).json()
    assert stored["definition"]["fields"] == []
    assert stored["definition"]["sections"][-1] == {"id": "recommendation", "title": "建议", "required": None}

    # An IHE MRRT template imported from a file opens in the editor.
    await page.set_input_files("#template-mrrt", files=[{"name": "knee.html", "mimeType": "text/html",
                                                         "buffer": MRRT.replace("{tag}", tag).encode()}])
    await expect(page.locator("#template-heading")).to_have_text(f"编辑模板 MR-KNEE-{tag}")
    await expect(page.locator('[aria-label="字段1选项"]')).to_have_value("intact,torn")
    await page.fill("#template-form [name=modality]", "MR")
    await page.click("#template-form button[type=submit]")
    await expect(page.locator("#templates-table tr", has_text=f"MR-KNEE-{tag}")).to_contain_text("MR")

    # A department phrase added and deleted.
    await page.fill("#phrase-form [name=label]", f"肝脏正常{tag}")
    await page.select_option("#phrase-form [name=section]", "findings")
    await page.fill("#phrase-form [name=modality]", "ct")
    await page.fill("#phrase-form [name=text]", "肝脏形态大小正常，实质密度均匀，未见异常密度影。")
    await page.click("#phrase-form button[type=submit]")
    row = page.locator("#phrases-table tr", has_text=f"肝脏正常{tag}")
    await expect(row).to_contain_text("影像表现")
    async with site.client("admin") as api:
        [phrase] = [p for p in (await api.get("/api/reporting/department-phrases")).json()["data"]
                    if p["label"] == f"肝脏正常{tag}"]
    assert phrase["modality"] == "CT" and phrase["owner"] is None
    await page.click(f'button[aria-label="删除常用词 肝脏正常{tag}"]')
    await expect(row).to_have_count(0)

    # The critical-value dictionary: an item added and the whole list published as the next version.
    await page.locator(".tabs button", has_text="危急值字典与升级").click()
    async with site.client("admin") as api:
        before = (await api.get("/api/critical-values/dictionary")).json()
    await expect(page.locator("#dictionary-version")).to_have_text(f"当前第 {before['version']} 版")
    await expect(page.locator("#dictionary-table tbody tr")).to_have_count(max(before["count"], 1))
    await page.click("#dictionary-add")
    n = before["count"] + 1
    await page.fill(f'[aria-label="第{n}项代码"]', f"AORTIC-{tag}")
    await page.fill(f'[aria-label="第{n}项名称"]', "主动脉夹层")
    await page.fill(f'[aria-label="第{n}项设备（空为全部）"]', "CT MR")
    await page.fill(f'[aria-label="第{n}项通报时限（分钟）"]', "10")
    await page.check(f'[aria-label="第{n}项需上级确认"]')
    await page.fill("#dictionary-form [name=note]", "新增主动脉夹层")
    await page.click("#dictionary-form button[type=submit]")
    await expect(page.locator("#dictionary-version")).to_have_text(f"当前第 {before['version'] + 1} 版")
    await expect(page.locator("#dictionary-versions")).to_contain_text("新增主动脉夹层")
    async with site.client("admin") as api:
        after = (await api.get("/api/critical-values/dictionary")).json()
    assert after["count"] == n
    [item] = [i for i in after["items"] if i["code"] == f"AORTIC-{tag}"]
    assert (item["modalities"], item["category"], item["requires_senior_confirmation"]) == (["CT", "MR"], 1, True)
    assert {i["code"] for i in before["items"]} < {i["code"] for i in after["items"]}
    await snapshot(page, "admin", "dictionary-published")

    # Every change audited in the service that owns it.
    async with site.ctx("reporting").pool.acquire() as conn:
        rows = await conn.fetch("SELECT entity, action FROM audit.audit_log WHERE entity_id = ANY($1)",
                                [f"CT-ABD-{tag}", f"MR-KNEE-{tag}", str(phrase["id"])])
    assert sorted((r["entity"], r["action"]) for r in rows) == [
        ("phrase", "create"), ("phrase", "delete"), ("template", "update"), ("template", "update"),
        ("template", "update"), ("template", "update")]
    async with site.ctx("critical-values").pool.acquire() as conn:
        published = await conn.fetchval("SELECT count(*) FROM audit.audit_log WHERE entity = 'critical_dictionary' "
                                        "AND entity_id = $1", str(before["version"] + 1))
    assert published == 1
    assert errors == []
    await context.close()


async def test_an_admin_registers_the_devices_that_may_connect(site: Site, browser: Browser) -> None:
    """Issue 23 item 3 (devices): the known peers of the DICOM and HL7 ports kept on the page, in the registry of
    the service that owns the port; every change audited there."""
    tag = uuid.uuid4().hex[:4].upper()
    context, page, errors = await signed_in(browser, site, "/ui/admin/#peers", ["admin"], "科室管理员")
    await expect(page.locator("#peer-modes")).to_contain_text("检查工作列表：")
    await page.select_option("#peer-form [name=service]", "worklist")
    await page.fill("#peer-form [name=peer_id]", f"ct1-{tag}")
    await page.select_option("#peer-form [name=kind]", "modality")
    await page.fill("#peer-form [name=name]", "CT1 西门子")
    await page.fill("#peer-form [name=ae_title]", f"CT1{tag}")
    await page.fill("#peer-form [name=addresses]", "10.0.0.5，10.0.1.0/24")
    await page.keyboard.press("Enter")
    row = page.locator("#peers-table tr", has_text=f"ct1-{tag}")
    await expect(row).to_contain_text("检查工作列表")
    await expect(row).to_contain_text(f"CT1{tag}")
    async with site.client("admin") as api:
        peer = (await api.get(f"/api/worklist/admin/peers/ct1-{tag}")).json()
    assert peer["kind"] == "modality" and peer["addresses"] == ["10.0.0.5", "10.0.1.0/24"] and peer["active"]

    # A HIS on registration's HL7 port, then the modality edited from its row and, last, forgotten.
    await page.select_option("#peer-form [name=service]", "registration")
    await page.fill("#peer-form [name=peer_id]", f"his-{tag}")
    await page.select_option("#peer-form [name=kind]", "his")
    await page.fill("#peer-form [name=hl7_application]", "HIS")
    await page.fill("#peer-form [name=hl7_facility]", "H001")
    await page.fill("#peer-form [name=addresses]", "10.0.2.9")
    await page.keyboard.press("Enter")
    await expect(page.locator("#peers-table tr", has_text=f"his-{tag}")).to_contain_text("HIS / H001")
    await page.click(f'button[aria-label="编辑对端 ct1-{tag}"]')
    await expect(page.locator("#peer-form [name=peer_id]")).to_be_focused()
    await expect(page.locator("#peer-form [name=service]")).to_have_value("worklist")
    await page.fill("#peer-form [name=name]", "CT1 西门子（急诊）")
    await page.uncheck("#peer-form [name=active]")
    await page.keyboard.press("Enter")
    await expect(row).to_contain_text("停用")
    await page.click(f'button[aria-label="删除对端 ct1-{tag}"]')
    await expect(row).to_have_count(0)
    async with site.client("admin") as api:
        assert (await api.get(f"/api/worklist/admin/peers/ct1-{tag}")).status_code == 404
        assert (await api.get(f"/api/registration/admin/peers/his-{tag}")).json()["hl7_application"] == "HIS"
    async with site.ctx("worklist").pool.acquire() as conn:
        actions = await conn.fetch("SELECT action FROM audit.audit_log WHERE entity = 'peer' AND entity_id = $1",
                                   f"ct1-{tag}")
    assert sorted(a["action"] for a in actions) == ["delete", "update", "update"]  # a PUT is an update
    await snapshot(page, "admin", "peers")
    assert errors == []
    await context.close()
