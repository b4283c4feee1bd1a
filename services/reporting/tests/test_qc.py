"""Pre-sign QC (standard 8.3.1): left/right, sex/organ, empty required parts, missing units —
warnings shown, blockers refusing the signature, as the template says."""

from __future__ import annotations

from reporting.domain import qc
from reporting.domain.templates import QCPolicy, TemplateDefinition, TemplateField

from .conftest import CONTENT, Service, World

DEFAULT = TemplateDefinition()


def rules(issues: list[qc.Issue]) -> list[tuple[str, str]]:
    return [(i.rule, i.severity) for i in issues]


def test_sides_in_chinese_and_english() -> None:
    assert qc.sides("左肺上叶结节") == {"L"}
    assert qc.sides("右侧肾脏") == {"R"}
    assert qc.sides("双肺纹理增多") == {"L", "R"}
    assert qc.sides("结节大小3cm左右") == set()  # 左右 = "about", not a side
    assert qc.sides("left kidney, right ureter") == {"L", "R"}
    assert qc.sides("bright signal") == set()


def test_laterality_between_findings_impression_and_order() -> None:
    content = {"findings": "右肺上叶见结节，大小约8mm。", "impression": "左肺上叶结节。"}
    assert ("laterality", "blocker") in rules(qc.check(content, DEFAULT))
    ok = {"findings": "右肺上叶见结节，大小约8mm。", "impression": "右肺上叶结节。"}
    assert rules(qc.check(ok, DEFAULT)) == []
    assert ("laterality", "blocker") in rules(qc.check(ok, DEFAULT, ordered_laterality="L"))
    relaxed = TemplateDefinition(qc=QCPolicy(laterality="warning"))
    assert ("laterality", "warning") in rules(qc.check(content, relaxed))


def test_sex_organ_mismatch() -> None:
    content = {"findings": "前列腺体积增大。", "impression": "前列腺增生。"}
    issues = qc.check(content, DEFAULT, sex="F")
    assert ("sex-organ", "blocker") in rules(issues) and "前列腺" in issues[0].message
    assert rules(qc.check(content, DEFAULT, sex="M")) == []
    assert ("sex-organ", "blocker") in rules(qc.check({"findings": "子宫肌瘤", "impression": "uterus"}, DEFAULT,
                                                      sex="M"))


def test_required_sections_fields_and_units() -> None:
    definition = TemplateDefinition(fields=[
        TemplateField(id="size", label="结节大小", type="measurement", unit="mm", unit_required="blocker",
                      required="warning"),
        TemplateField(id="count", label="结节数目", type="number", required="blocker"),
    ])
    empty = qc.check({"findings": "", "impression": "", "fields": {}}, definition)
    assert rules(empty).count(("required-section", "blocker")) == 2
    assert ("required-field", "warning") in rules(empty) and ("required-field", "blocker") in rules(empty)
    unitless = qc.check({**CONTENT, "fields": {"size": {"value": 12}, "count": {"value": 1}}}, definition)
    assert ("unit", "blocker") in rules(unitless)
    with_unit = qc.check({**CONTENT, "fields": {"size": {"value": 12, "unit": "mm"}, "count": {"value": 1}}},
                         definition)
    assert rules(with_unit) == []
    text = qc.check({"findings": "右肾见囊肿，大小约3.2×2.1。", "impression": "右肾囊肿。"}, DEFAULT)
    assert ("unit", "warning") in rules(text)
    assert rules(qc.check({"findings": "右肾见囊肿，大小约3.2×2.1cm。", "impression": "右肾囊肿。"}, DEFAULT)) == []


async def test_blockers_refuse_signing_warnings_do_not(service: Service, world: World) -> None:
    rad = service.auth("radiologist", username=f"rad-{world.tag}")
    acc = await world.exam(sex="F", laterality="R")
    bad = {"findings": "前列腺未见异常，左肺见结节。", "impression": "左肺结节。"}
    saved = await world.step(acc, "save", rad, content=bad)  # saving a draft is allowed, with the issues shown
    assert saved["state"] == "draft"
    r = await service.client.get(f"/api/reporting/reports/{saved['report_id']}", headers=rad)
    assert {i["rule"] for i in r.json()["qc"]} == {"sex-organ", "laterality"}
    refused = await world.step(acc, "preliminary", rad, expect=422)
    assert {e["rule"] for e in refused["errors"]} == {"sex-organ", "laterality"}
    state = (await service.client.get(f"/api/reporting/exams/{acc}", headers=rad)).json()["report"]["state"]
    assert state == "draft"  # nothing signed, nothing lost
    fine = {"findings": "右肺见结节，大小约3.2×2.1。", "impression": "右肺结节。"}
    signed = await world.step(acc, "preliminary", rad, content=fine)
    assert signed["state"] == "preliminary" and [w["rule"] for w in signed["warnings"]] == ["unit"]
    r = await service.client.post("/api/reporting/qc", headers=rad,
                                  json={"accession_number": acc, "content": bad})
    assert r.status_code == 200 and r.json()["blocked"] is True


def test_a_bilateral_phrase_does_not_hide_a_contradiction() -> None:
    """Findings put the nodule in the left upper lobe and add a routine bilateral negative; the impression
    says right upper lobe. The bilateral phrase is about the pleura, not the lung: the contradiction stands."""
    content = {"findings": "左肺上叶见结节，大小约8mm。双侧胸腔未见积液。", "impression": "右肺上叶结节。"}
    issues = qc.check(content, DEFAULT)
    assert [(i.rule, i.code) for i in issues] == [("laterality", "qc.laterality.impression-vs-findings")]
    assert issues[0].message == "印象写右肺，所见写左肺"
    fine = {"findings": "右肺上叶见结节，大小约8mm。双侧胸腔未见积液。", "impression": "右肺上叶结节。"}
    assert qc.check(fine, DEFAULT) == []
    # a negative bilateral statement does not name the ordered side either
    assert [i.code for i in qc.check(fine, DEFAULT, ordered_laterality="L")] == ["qc.laterality.order"]
    # a real bilateral finding of the same site covers either side in the impression
    both = {"findings": "双肺见多发结节，大小约5mm。", "impression": "右肺结节为著。"}
    assert qc.check(both, DEFAULT) == []
    english = {"findings": "Nodule in the left kidney, 8 mm. No bilateral pleural effusion.",
               "impression": "Right kidney nodule."}
    assert [i.code for i in qc.check(english, DEFAULT)] == ["qc.laterality.impression-vs-findings"]


def test_messages_are_chinese_with_stable_codes() -> None:
    definition = TemplateDefinition(fields=[
        TemplateField(id="pneumothorax", label="气胸", type="choice", options=["有", "无"], required="blocker"),
        TemplateField(id="size", label="结节大小", type="measurement", unit="mm", unit_required="blocker")])
    issues = qc.check({"findings": "右肾见囊肿，大小约8。", "impression": "",
                       "fields": {"size": {"value": 3}}}, definition, sex="F")
    by_code = {i.code: i.message for i in issues}
    assert by_code["qc.required-section"] == "“诊断意见”未填写"
    assert by_code["qc.required-field"] == "“气胸”未填写"
    assert by_code["qc.unit.field"] == "“结节大小”的数值缺少单位（应为 mm）"
    assert by_code["qc.unit.free-text"] == "尺寸“大小约8。”缺少单位"
    assert all(i.public()["code"] for i in issues)
    organ = qc.check({"findings": "前列腺增大", "impression": "前列腺增生"}, DEFAULT, sex="F")
    assert [(i.code, i.message) for i in organ] == [("qc.sex-organ", "女性患者的报告中出现：前列腺")]
