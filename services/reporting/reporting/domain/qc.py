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
    message: str
    field: str | None = None

    def public(self) -> dict[str, Any]:
        return asdict(self)


# "左右" (about, approximately) and "左右对称" (symmetric) are not sides.
_NOT_SIDE = re.compile(r"左右|前后左右|左心|右心|左室|右室|左房|右房")
_LEFT = re.compile(r"左|\bleft\b", re.I)
_RIGHT = re.compile(r"右|\bright\b", re.I)
_BOTH = re.compile(r"双侧|两侧|双肺|两肺|\bbilateral", re.I)

MALE_ONLY = ("前列腺", "睾丸", "精囊", "阴茎", "附睾", "prostate", "testis", "testicle", "seminal vesicle",
             "epididymis", "penis")
FEMALE_ONLY = ("子宫", "卵巢", "输卵管", "宫颈", "阴道", "uterus", "uterine", "ovary", "ovarian",
               "fallopian", "cervix uteri", "vagina")

# A size in free text, e.g. "大小约3.2×2.1" or "直径 12" with no unit after it.
_SIZE = re.compile(r"(?:大小|直径|长径|短径|厚约|size|diameter|measur\w*)[^0-9\n]{0,6}"
                   r"(\d+(?:\.\d+)?(?:\s*[x×*]\s*\d+(?:\.\d+)?)*)(?!\s*(?:[x×*]\s*)?\d)\s*(\S{0,3})", re.I)
_UNITS = ("mm", "cm", "m", "ml", "hu", "毫米", "厘米", "米", "毫升", "%", "°", "cc", "mg", "g", "ms", "s")


def sides(text: str) -> set[str]:
    """The sides a text names: {"L"}, {"R"}, {"L", "R"}; bilateral counts as both."""
    cleaned = _NOT_SIDE.sub(" ", text or "")
    found = set()
    if _LEFT.search(cleaned):
        found.add("L")
    if _RIGHT.search(cleaned):
        found.add("R")
    if _BOTH.search(cleaned):
        found |= {"L", "R"}
    return found


def _side_of_value(value: Any) -> str | None:
    text = str(value or "").strip().upper()
    if text in ("L", "LEFT", "左", "左侧"):
        return "L"
    if text in ("R", "RIGHT", "右", "右侧"):
        return "R"
    if text in ("B", "BILATERAL", "双侧", "两侧"):
        return "B"
    return None


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
            issues.append(Issue("required-section", section.required, f"section {section.title} is empty"))

    # Required fields and units.
    for spec in definition.fields:
        value = fields.get(spec.id) or {}
        raw = value.get("value")
        empty = raw in (None, "") and not value.get("code")
        if spec.required and empty:
            issues.append(Issue("required-field", spec.required, f"{spec.label} is empty", spec.id))
        if spec.type in ("number", "measurement") and not empty and not value.get("unit"):
            # unit_required: the value must carry its unit; otherwise a measurement may fall back
            # on the template's unit, and a plain number (a count) needs none.
            if spec.unit_required:
                issues.append(Issue("unit", spec.unit_required, f"{spec.label}: value without a unit"
                                    + (f" (expected {spec.unit})" if spec.unit else ""), spec.id))
            elif spec.type == "measurement" and not spec.unit:
                issues.append(Issue("unit", "warning", f"{spec.label}: measurement without a unit", spec.id))

    for match in _SIZE.finditer(f"{findings}\n{impression}"):
        after = match.group(2).lower()
        if not after.startswith(_UNITS):
            issues.append(Issue("unit", policy.free_text_units, f"size \"{match.group(0).strip()}\" has no unit"))

    # Left / right.
    f_sides, i_sides = sides(findings), sides(impression)
    if i_sides and f_sides and not i_sides <= f_sides:
        issues.append(Issue("laterality", policy.laterality,
                            f"impression names {_names(i_sides - f_sides)} but the findings do not"))
    ordered = _side_of_value(ordered_laterality)
    if ordered in ("L", "R"):
        other = "R" if ordered == "L" else "L"
        named = f_sides | i_sides
        if other in named and ordered not in named:
            issues.append(Issue("laterality", policy.laterality,
                                f"the order is for the {_names({ordered})} side; the report only names the "
                                f"{_names({other})}"))
    for spec in definition.fields:
        if not spec.laterality:
            continue
        side = _side_of_value((fields.get(spec.id) or {}).get("value"))
        if side in ("L", "R") and (f_sides | i_sides) and side not in (f_sides | i_sides):
            issues.append(Issue("laterality", policy.laterality,
                                f"{spec.label} says {_names({side})} but the text does not", spec.id))
        if side in ("L", "R") and ordered in ("L", "R") and side != ordered:
            issues.append(Issue("laterality", policy.laterality,
                                f"{spec.label} says {_names({side})}; the order is for {_names({ordered})}", spec.id))

    # Sex / organ.
    text = f"{findings}\n{impression}".lower()
    wrong = MALE_ONLY if sex == "F" else FEMALE_ONLY if sex == "M" else ()
    hits = [organ for organ in wrong if organ in text]
    if hits:
        who = "female" if sex == "F" else "male"
        issues.append(Issue("sex-organ", policy.sex_organ, f"{', '.join(hits)} in a report of a {who} patient"))
    return issues


def _names(s: set[str]) -> str:
    return "/".join({"L": "left (左)", "R": "right (右)"}[x] for x in sorted(s))


def blockers(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "blocker"]
