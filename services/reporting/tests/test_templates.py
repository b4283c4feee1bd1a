"""Templates with typed fields, IHE MRRT import, phrases, structured fields stored as searchable data."""

from __future__ import annotations

from reporting.domain.templates import MRRTError, from_mrrt

from .conftest import CONTENT, Service, World

MRRT = """<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>Chest CT Lung Nodule</title>
<meta name="dcterms.identifier" content="RPT-LUNG-1">
<script type="text/xml">
<template_attributes>
  <coded_content>
    <entry ORIGTXT="nodule_type"><term><code meaning="solid nodule" value="RID50149" scheme="RADLEX"/></term></entry>
  </coded_content>
</template_attributes>
</script></head>
<body>
<section data-section-name="Findings"><header>Findings</header>
  <label for="side">Side</label>
  <select id="side" data-field-type="SELECT" name="side">
    <option value="L">Left</option><option value="R">Right</option></select>
  <label for="size">Size</label>
  <input type="number" id="size" name="size" data-field-type="NUMBER" data-field-units="mm">
  <label for="nodule_type">Nodule type</label>
  <input type="text" id="nodule_type" name="nodule_type" data-field-type="TEXT">
  <textarea id="findings_text" name="findings_text" data-field-type="TEXT"></textarea>
</section>
<section data-section-name="Impression"><header>Impression</header>
  <label for="lungrads">Lung-RADS</label>
  <select id="lungrads" data-field-type="SELECT" name="lungrads" required>
    <option>2</option><option>3</option><option>4A</option><option>4B</option></select>
</section>
</body></html>"""


def test_mrrt_import() -> None:
    t = from_mrrt(MRRT)
    assert t.id == "RPT-LUNG-1" and t.name == "Chest CT Lung Nodule"
    fields = {f.id: f for f in t.definition.fields}
    assert fields["side"].type == "choice" and fields["side"].options == ["L", "R"] and fields["side"].laterality
    assert fields["size"].type == "measurement" and fields["size"].unit == "mm"
    assert fields["nodule_type"].type == "coded" and fields["nodule_type"].codes[0].code == "RID50149"
    assert fields["nodule_type"].codes[0].system == "RadLex"
    assert fields["lungrads"].section == "impression" and fields["lungrads"].required == "warning"
    assert fields["lungrads"].options == ["2", "3", "4A", "4B"]
    assert {s.id for s in t.definition.sections} == {"findings", "impression"}


def test_mrrt_garbage_is_refused() -> None:
    for bad in ("just text", "<html><body><p>nothing</p></body></html>"):
        try:
            from_mrrt(bad)
        except MRRTError:
            continue
        raise AssertionError(f"accepted {bad!r}")


async def test_template_fields_phrases_and_search(service: Service, world: World) -> None:
    svc = service
    senior = svc.auth("senior-radiologist", username=f"senior-{world.tag}")
    rad = svc.auth("radiologist", username=f"rad-{world.tag}")
    tid = f"LUNG-{world.tag}"
    r = await svc.client.post(f"/api/reporting/templates/mrrt?template_id={tid}&modality=CT&body_part=CHEST",
                              headers=rad, content=MRRT.encode())
    assert r.status_code == 403
    r = await svc.client.post(f"/api/reporting/templates/mrrt?template_id={tid}", headers=senior,
                              content=b"<html><body>no template</body></html>")
    assert r.status_code == 422
    r = await svc.client.post(f"/api/reporting/templates/mrrt?template_id={tid}&modality=CT&body_part=CHEST",
                              headers=senior, content=MRRT.encode())
    assert r.status_code == 200, r.text
    assert (await svc.client.get(f"/api/reporting/templates/{tid}", headers=rad)).json()["source"] == "mrrt"

    acc = await world.exam()
    bad = {**CONTENT, "fields": {"size": {"value": "big"}}}
    r = await world.step(acc, "save", rad, content=bad, template_id=tid, expect=422)
    assert "needs a number" in r["errors"][0]["msg"]
    r = await world.step(acc, "save", rad, content={**CONTENT, "fields": {"nope": {"value": 1}}}, template_id=tid,
                         expect=422)
    good = {**CONTENT, "fields": {
        "side": {"value": "R"}, "size": {"value": 12.5, "unit": "mm"}, "lungrads": {"value": "4A"},
        "nodule_type": {"value": "solid", "code": "RID50149", "code_system": "RadLex", "display": "solid nodule"}}}
    saved = await world.step(acc, "save", rad, content=good, template_id=tid)
    r = await svc.client.get("/api/reporting/search?field_id=size&min_number=10&max_number=20", headers=rad)
    assert saved["report_id"] in {row["report_id"] for row in r.json()["data"]}
    r = await svc.client.get("/api/reporting/search?code=RID50149", headers=rad)
    assert saved["report_id"] in {row["report_id"] for row in r.json()["data"]}
    r = await svc.client.get("/api/reporting/search?field_id=lungrads&value=4A", headers=svc.auth("clerk"))
    assert r.status_code == 403

    # Phrases: own and department ones; only seniors keep department phrases.
    r = await svc.client.post("/api/reporting/phrases", headers=rad,
                              json={"label": "正常胸部", "text": "双肺纹理清晰，未见明确实质性病变。"})
    assert r.status_code == 201
    r = await svc.client.post("/api/reporting/phrases", headers=rad,
                              json={"label": "科室", "text": "x", "department": "放射科"})
    assert r.status_code == 403
    r = await svc.client.post("/api/reporting/phrases", headers=senior,
                              json={"label": f"科室{world.tag}", "text": "纵隔未见异常。", "department": "放射科"})
    assert r.status_code == 201
    mine = (await svc.client.get("/api/reporting/phrases", headers=rad)).json()["data"]
    labels = {p["label"] for p in mine}
    assert "正常胸部" in labels and f"科室{world.tag}" in labels
    other = (await svc.client.get("/api/reporting/phrases",
                                  headers=svc.auth("radiologist", username=f"other-{world.tag}"))).json()["data"]
    assert "正常胸部" not in {p["label"] for p in other}


async def test_department_phrases_are_kept_by_seniors_and_admins_with_audit(service: Service, world: World) -> None:
    svc = service
    admin = svc.auth("admin", username=f"admin-{world.tag}")
    body = {"label": f"肝脏{world.tag}", "text": "肝脏形态大小正常。", "section": "findings", "modality": "CT"}
    assert (await svc.client.post("/api/reporting/department-phrases", headers=svc.auth("radiologist"),
                                  json=body)).status_code == 403
    assert (await svc.client.get("/api/reporting/department-phrases", headers=svc.auth("clerk"))).status_code == 403
    r = await svc.client.post("/api/reporting/department-phrases", headers=admin, json=body)
    assert r.status_code == 201, r.text
    phrase = r.json()
    assert phrase["owner"] is None and phrase["department"] == "影像科"
    listed = (await svc.client.get("/api/reporting/department-phrases", headers=admin)).json()["data"]
    assert phrase["id"] in {p["id"] for p in listed} and all(p["owner"] is None for p in listed)
    # A radiologist sees it among the department's; nobody's own phrase can be deleted through this route.
    rad = svc.auth("radiologist", username=f"rad2-{world.tag}")
    seen = (await svc.client.get("/api/reporting/phrases", headers=rad)).json()["data"]
    assert phrase["id"] in {p["id"] for p in seen}
    own = (await svc.client.post("/api/reporting/phrases", headers=rad, json={"label": "我的", "text": "x"})).json()

    async def delete(phrase_id: int) -> int:
        return (await svc.client.delete(f"/api/reporting/department-phrases/{phrase_id}", headers=admin)).status_code

    assert await delete(own["id"]) == 404
    assert await delete(phrase["id"]) == 204
    assert await delete(phrase["id"]) == 404
    async with svc.ctx.pool.acquire() as conn:
        actions = await conn.fetch("SELECT action, actor FROM audit.audit_log WHERE entity = 'phrase' "
                                   "AND entity_id = $1", str(phrase["id"]))
    assert sorted((a["action"], a["actor"]) for a in actions) == [("create", f"admin-{world.tag}"),
                                                                  ("delete", f"admin-{world.tag}")]


async def test_versions_compare_shows_who_changed_what(service: Service, world: World) -> None:
    svc = service
    a = svc.auth("radiologist", username=f"a-{world.tag}")
    b = svc.auth("senior-radiologist", username=f"b-{world.tag}")
    acc = await world.exam()
    first = await world.step(acc, "save", a, content=CONTENT)
    await world.step(acc, "preliminary", a, content={**CONTENT, "impression": "右肺上叶结节，考虑良性。"})
    await world.step(acc, "save", b, content={**CONTENT, "impression": "右肺上叶结节，建议3个月复查。"})
    rid = first["report_id"]
    r = await svc.client.get(f"/api/reporting/reports/{rid}/diff?from=1&to=3", headers=b)
    body = r.json()
    assert [c["section"] for c in body["changes"]] == ["impression"]
    assert body["changes"][0]["new"] == "右肺上叶结节，建议3个月复查。"
    assert [(s["version"], s["by"]) for s in body["by_step"]] == [(2, f"a-{world.tag}"), (3, f"b-{world.tag}")]
    assert (await svc.client.get(f"/api/reporting/reports/{rid}/diff?from=1&to=99", headers=b)).status_code == 404
