"""Pre-sign QC (standard 8.3.1): low-level and logical errors found before a report is signed.

Checks: left/right inconsistent between findings and impression or with the ordered side
(Chinese 左/右 and English left/right; "3cm左右" means "about 3 cm" and is not a side);
sex-organ mismatch (prostate for a female patient, uterus for a male one); required sections
and fields empty; measurements without a unit. Each issue is a "warning" (shown, signing
allowed) or a "blocker" (signing refused) as the template field or the template's QC policy says.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from reporting.domain.templates import TemplateDefinition


@dataclass(frozen=True)
class Issue:
    rule: str  # laterality, sex-organ, required-section, required-field, unit
    severity: str  # warning, blocker
    message: str  # Chinese, for the radiologist
    field: str | None = None
    code: str = ""  # stable, for clients and statistics: qc.<rule>.<what>

    def public(self) -> dict[str, Any]:
        return asdict(self)


# "左右" (about, approximately) and "左右对称" (symmetric) are not sides.
_NOT_SIDE = re.compile(r"左右|前后左右|左心|右心|左室|右室|左房|右房")

# A side and the part of the body it qualifies: 左肺上叶 -> (L, 肺), 双侧胸腔 -> (B, 胸腔), "right kidney" ->
# (R, kidney). The site is what makes two mentions comparable: a bilateral statement about the pleura
# says nothing about which lung the nodule is in.
_SITES = sorted((
    "肺", "胸腔", "胸膜", "肾上腺", "肾", "输尿管", "乳腺", "乳房", "腋窝", "甲状腺", "卵巢", "附件", "输卵管",
    "睾丸", "精索", "额叶", "颞叶", "顶叶", "枕叶", "基底节", "丘脑", "小脑", "大脑", "侧脑室", "半球", "上颌窦",
    "筛窦", "额窦", "蝶窦", "眼", "眼眶", "耳", "颈部", "颈内动脉", "颈动脉", "椎动脉", "锁骨", "肩", "肩关节", "肱骨",
    "肘", "尺骨", "桡骨", "腕", "手", "髋", "髋关节", "股骨", "膝", "膝关节", "胫骨", "腓骨", "踝", "足", "肋骨", "肋",
    "髂骨", "骶髂关节", "腹股沟", "上肢", "下肢", "膈", "心", "肝", "腮腺", "颌下腺",
), key=len, reverse=True)
_ZH_MENTION = re.compile(r"(双侧|两侧|双|两|左侧|右侧|左|右)(" + "|".join(_SITES) + ")?")
_EN_MENTION = re.compile(r"\b(left|right|bilateral)\b(?:\s+([a-z]+))?", re.I)
_NEGATION = re.compile(r"未见|无|未|不|没有|\bno\b|\bwithout\b|\bnormal\b", re.I)
_ZH_SIDE = {"左": "L", "左侧": "L", "右": "R", "右侧": "R", "双": "B", "双侧": "B", "两": "B", "两侧": "B"}
_EN_SIDE = {"left": "L", "right": "R", "bilateral": "B"}


@dataclass(frozen=True)
class Mention:
    side: str  # L, R or B
    site: str | None  # 肺, kidney, ... or None when the text names no part we know
    negated: bool  # in a clause that says something is absent (双侧胸腔未见积液)


def mentions(text: str) -> list[Mention]:
    """Each side the text names, with its site, clause by clause."""
    found: list[Mention] = []
    for clause in re.split(r"[。；;，,\n]", _NOT_SIDE.sub(" ", text or "")):
        negated = bool(_NEGATION.search(clause))
        for m in _ZH_MENTION.finditer(clause):
            if m.group(1) in ("双", "两") and not m.group(2):
                continue  # 双 / 两 alone (两个, 双期) is not a side
            found.append(Mention(_ZH_SIDE[m.group(1)], m.group(2), negated))
        for m in _EN_MENTION.finditer(clause):
            found.append(Mention(_EN_SIDE[m.group(1).lower()], (m.group(2) or "").lower() or None, negated))
    return found


def _expand(side: str) -> set[str]:
    return {"L", "R"} if side == "B" else {side}


def sides(text: str) -> set[str]:
    """The sides a text names: {"L"}, {"R"}, {"L", "R"}; bilateral counts as both."""
    return set().union(*(_expand(m.side) for m in mentions(text))) if text else set()


def _side_of_value(value: Any) -> str | None:
    text = str(value or "").strip().upper()
    if text in ("L", "LEFT", "左", "左侧"):
        return "L"
    if text in ("R", "RIGHT", "右", "右侧"):
        return "R"
    if text in ("B", "BILATERAL", "双侧", "两侧"):
        return "B"
    return None


def _laterality(findings: str, impression: str, ordered: str | None, policy_severity: str,
                fields: dict[str, dict[str, Any]], definition: TemplateDefinition) -> list[Issue]:
    """Left/right between impression and findings site by site, then against the order and the fields.

    A bilateral or negative statement about one site (双侧胸腔未见积液) never vouches for a side of another
    site (右肺上叶 in the impression when the findings put the lesion in 左肺上叶)."""
    issues: list[Issue] = []
    f_mentions, i_mentions = mentions(findings), mentions(impression)
    f_by_site: dict[str, set[str]] = {}
    for m in f_mentions:
        if m.site:
            f_by_site.setdefault(m.site, set()).update(_expand(m.side))
    # Sides the findings name where no site decides: explicit ones, and bilateral statements that are not
    # negative (a negative one says nothing is there, on either side).
    f_loose = set().union(*(_expand(m.side) for m in f_mentions if m.side != "B" or not m.negated))
    for m in i_mentions:
        if m.side == "B":
            continue
        if m.site and m.site in f_by_site:
            if m.side not in f_by_site[m.site]:
                issues.append(Issue("laterality", policy_severity,
                                    f"印象写{_side_zh(m.side)}{m.site}，所见写{_sides_zh(f_by_site[m.site])}{m.site}",
                                    code="qc.laterality.impression-vs-findings"))
        elif f_loose and m.side not in f_loose:
            issues.append(Issue("laterality", policy_severity,
                                f"印象写{_side_zh(m.side)}{m.site or '侧'}，所见未提及{_side_zh(m.side)}侧",
                                code="qc.laterality.impression-vs-findings"))
    explicit = {m.side for m in f_mentions + i_mentions if m.side != "B"}
    if ordered in ("L", "R"):
        other = "R" if ordered == "L" else "L"
        if other in explicit and ordered not in explicit:
            issues.append(Issue("laterality", policy_severity,
                                f"申请部位为{_side_zh(ordered)}侧，报告只写了{_side_zh(other)}侧",
                                code="qc.laterality.order"))
    named = f_loose | set().union(*(_expand(m.side) for m in i_mentions if m.side != "B" or not m.negated))
    for spec in definition.fields:
        if not spec.laterality:
            continue
        side = _side_of_value((fields.get(spec.id) or {}).get("value"))
        if side in ("L", "R") and named and side not in named:
            issues.append(Issue("laterality", policy_severity,
                                f"“{spec.label}”为{_side_zh(side)}侧，正文未提及{_side_zh(side)}侧", spec.id,
                                code="qc.laterality.field-vs-text"))
        if side in ("L", "R") and ordered in ("L", "R") and side != ordered:
            issues.append(Issue("laterality", policy_severity,
                                f"“{spec.label}”为{_side_zh(side)}侧，申请部位为{_side_zh(ordered)}侧", spec.id,
                                code="qc.laterality.field-vs-order"))
    return issues


def _side_zh(side: str) -> str:
    return {"L": "左", "R": "右", "B": "双侧"}[side]


def _sides_zh(s: set[str]) -> str:
    return "双侧" if s == {"L", "R"} else _side_zh(next(iter(s)))


MALE_ONLY = ("前列腺", "睾丸", "精囊", "阴茎", "附睾", "prostate", "testis", "testicle", "seminal vesicle",
             "epididymis", "penis")
FEMALE_ONLY = ("子宫", "卵巢", "输卵管", "宫颈", "阴道", "uterus", "uterine", "ovary", "ovarian",
               "fallopian", "cervix uteri", "vagina")

# A size in free text, e.g. "大小约3.2×2.1" or "直径 12" with no unit after it.
_SIZE = re.compile(r"(?:大小|直径|长径|短径|厚约|size|diameter|measur\w*)[^0-9\n]{0,6}"
                   r"(\d+(?:\.\d+)?(?:\s*[x×*]\s*\d+(?:\.\d+)?)*)(?!\s*(?:[x×*]\s*)?\d)\s*(\S{0,3})", re.I)
_UNITS = ("mm", "cm", "m", "ml", "hu", "毫米", "厘米", "米", "毫升", "%", "°", "cc", "mg", "g", "ms", "s")


def check(content: dict[str, Any], definition: TemplateDefinition, *, sex: str = "U",
          ordered_laterality: str | None = None) -> list[Issue]:
    """Every issue found in `content` (findings, impression, fields) for this patient and order."""
    issues: list[Issue] = []
    policy = definition.qc
    findings, impression = content.get("findings") or "", content.get("impression") or ""
    fields: dict[str, dict[str, Any]] = content.get("fields") or {}

    # Required sections.
    texts = {"findings": findings, "impression": impression, "recommendation": content.get("recommendation") or ""}
    for section in definition.sections:
        if section.required and section.id in texts and not texts[section.id].strip():
            issues.append(Issue("required-section", section.required, f"“{section.title}”未填写",
                                code="qc.required-section"))

    # Required fields and units.
    for spec in definition.fields:
        value = fields.get(spec.id) or {}
        raw = value.get("value")
        empty = raw in (None, "") and not value.get("code")
        if spec.required and empty:
            issues.append(Issue("required-field", spec.required, f"“{spec.label}”未填写", spec.id,
                                code="qc.required-field"))
        if spec.type in ("number", "measurement") and not empty and not value.get("unit"):
            # unit_required: the value must carry its unit; otherwise a measurement may fall back
            # on the template's unit, and a plain number (a count) needs none.
            if spec.unit_required:
                issues.append(Issue("unit", spec.unit_required, f"“{spec.label}”的数值缺少单位"
                                    + (f"（应为 {spec.unit}）" if spec.unit else ""), spec.id, code="qc.unit.field"))
            elif spec.type == "measurement" and not spec.unit:
                issues.append(Issue("unit", "warning", f"“{spec.label}”的测量值缺少单位", spec.id,
                                    code="qc.unit.field"))

    for match in _SIZE.finditer(f"{findings}\n{impression}"):
        after = match.group(2).lower()
        if not after.startswith(_UNITS):
            issues.append(Issue("unit", policy.free_text_units, f"尺寸“{match.group(0).strip()}”缺少单位",
                                code="qc.unit.free-text"))

    # Left / right.
    issues += _laterality(findings, impression, _side_of_value(ordered_laterality), policy.laterality,
                          fields, definition)

    # Sex / organ.
    text = f"{findings}\n{impression}".lower()
    wrong = MALE_ONLY if sex == "F" else FEMALE_ONLY if sex == "M" else ()
    hits = [organ for organ in wrong if organ in text]
    if hits:
        who = "女" if sex == "F" else "男"
        issues.append(Issue("sex-organ", policy.sex_organ, f"{who}性患者的报告中出现：{'、'.join(hits)}",
                            code="qc.sex-organ"))
    return issues


def blockers(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "blocker"]
