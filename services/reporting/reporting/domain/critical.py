"""Critical findings (standard 7.1.3): marked by the radiologist on a field, or matched in the
report text against the critical-value dictionary. Each raises `critical.raised` at once, in the
transaction that saves it, whatever the report's state (a draft included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Default imaging critical-value dictionary (item code -> terms); a center extends it in settings.
DICTIONARY: dict[str, tuple[str, ...]] = {
    "CV-PTX": ("张力性气胸", "tension pneumothorax"),
    "CV-AD": ("主动脉夹层", "aortic dissection"),
    "CV-PE": ("肺栓塞", "pulmonary embolism"),
    "CV-ICH": ("颅内出血", "脑出血", "intracranial hemorrhage"),
    "CV-PERF": ("消化道穿孔", "gastrointestinal perforation", "free air"),
    "CV-CI": ("急性脑梗死", "acute cerebral infarction"),
    "CV-TORS": ("睾丸扭转", "卵巢扭转", "testicular torsion", "ovarian torsion"),
    "CV-ECT": ("异位妊娠破裂", "ruptured ectopic pregnancy"),
}

NEGATIONS = ("未见", "无", "排除", "no ", "without", "negative for")


@dataclass(frozen=True)
class Found:
    finding: str
    item_code: str | None
    source: str  # radiologist, dictionary


def _negated(text: str, start: int) -> bool:
    window = text[max(0, start - 6):start].lower()
    return any(neg in window for neg in NEGATIONS)


def find(content: dict[str, Any], labels: dict[str, str]) -> list[Found]:
    """Critical findings in the content: fields marked critical, then dictionary terms in the text."""
    found: list[Found] = []
    for field_id, value in sorted((content.get("fields") or {}).items()):
        if value.get("critical"):
            what = value.get("display") or (str(value["value"]) if value.get("value") not in (None, "") else "")
            found.append(Found(f"{labels.get(field_id, field_id)}: {what}".strip(": "), None, "radiologist"))
    text = f"{content.get('findings') or ''}\n{content.get('impression') or ''}"
    lowered = text.lower()
    for code, terms in DICTIONARY.items():
        for term in terms:
            at = lowered.find(term.lower())
            if at >= 0 and not _negated(lowered, at):
                found.append(Found(term, code, "dictionary"))
                break
    return found
