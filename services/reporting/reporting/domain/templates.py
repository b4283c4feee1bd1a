"""Report templates per modality and body part: sections and typed fields (standard 7.1.2).

Field types: text, choice (options), number (with unit), measurement (number + unit, unit
required), coded (a finding with a RadLex/SNOMED-style code). Each field says how pre-sign QC
treats it being empty or unit-less: "warning" (shown, signing allowed) or "blocker" (signing
refused). Templates are imported from IHE MRRT (HTML5) too: `from_mrrt(html)`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, Field, field_validator

FieldType = Literal["text", "choice", "number", "measurement", "coded"]
Severity = Literal["warning", "blocker"]


class Code(BaseModel):
    system: str  # "RadLex", "SNOMED-CT", "LOINC", local
    code: str
    display: str = ""


class TemplateField(BaseModel):
    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    label: str
    type: FieldType = "text"
    section: str = "findings"
    required: Severity | None = None  # empty -> warning / blocker; None = optional
    options: list[str] = []  # choice
    unit: str | None = None  # default / expected unit for number and measurement
    unit_required: Severity | None = None  # number without unit -> warning / blocker
    codes: list[Code] = []  # coded: allowed codes; or the concept the field itself records
    laterality: bool = False  # the field names a side (QC compares it with the text and order)
    critical_values: list[str] = []  # option values / codes that are critical findings

    @field_validator("options")
    @classmethod
    def _options_unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("options must be unique")
        return v


class Section(BaseModel):
    id: str  # findings, impression, recommendation, or a template-specific one
    title: str
    required: Severity | None = None


class QCPolicy(BaseModel):
    """How this template treats the checks that belong to no single field."""

    laterality: Severity = "blocker"  # left/right inconsistent (text vs text, field or order)
    sex_organ: Severity = "blocker"  # organ of the other sex (prostate for a female patient)
    free_text_units: Severity = "warning"  # a size in the text without mm/cm


class TemplateDefinition(BaseModel):
    sections: list[Section] = [
        Section(id="findings", title="影像表现", required="blocker"),
        Section(id="impression", title="诊断意见", required="blocker"),
    ]
    fields: list[TemplateField] = []
    qc: QCPolicy = Field(default_factory=lambda: QCPolicy())

    @field_validator("fields")
    @classmethod
    def _ids_unique(cls, v: list[TemplateField]) -> list[TemplateField]:
        ids = [f.id for f in v]
        if len(set(ids)) != len(ids):
            raise ValueError("field ids must be unique")
        return v

    def field(self, field_id: str) -> TemplateField | None:
        return next((f for f in self.fields if f.id == field_id), None)


class TemplateCreate(BaseModel):
    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    name: str = Field(min_length=1, max_length=200)
    modality: str | None = None
    body_part: str | None = None
    definition: TemplateDefinition = TemplateDefinition()


def check_values(definition: TemplateDefinition, fields: dict[str, dict[str, Any]]) -> list[str]:
    """Type errors of field values against the template (unknown field, not a number, bad option)."""
    problems: list[str] = []
    for field_id, value in fields.items():
        spec = definition.field(field_id)
        if spec is None and not definition.fields:
            continue  # a report without a template may carry ad-hoc fields
        if spec is None:
            problems.append(f"field {field_id!r} is not in the template")
            continue
        raw = value.get("value")
        if raw in (None, ""):
            continue
        if spec.type in ("number", "measurement") and (isinstance(raw, bool) or not _is_number(raw)):
            problems.append(f"field {field_id!r} needs a number, got {raw!r}")
        if spec.type == "choice" and spec.options and str(raw) not in spec.options:
            problems.append(f"field {field_id!r}: {raw!r} is not one of {spec.options}")
        if spec.type == "coded" and spec.codes and value.get("code") and value.get("code") not in {
                c.code for c in spec.codes}:
            problems.append(f"field {field_id!r}: code {value.get('code')!r} is not allowed here")
    return problems


def _is_number(raw: Any) -> bool:
    try:
        float(raw)
        return True
    except (TypeError, ValueError):
        return False


# ---- IHE MRRT (Management of Radiology Report Templates), HTML5 ----------------------------------

class MRRTError(ValueError):
    """The document is not an MRRT template we can read."""


_MRRT_TYPES: dict[str, FieldType] = {"TEXT": "text", "NUMBER": "number", "SELECT": "choice", "CHECKBOX": "choice",
                                     "DATE": "text", "TIME": "text"}


class _MRRTParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.meta: dict[str, str] = {}
        self.section_stack: list[str] = []
        self.sections: list[Section] = []
        self.fields: list[dict[str, Any]] = []
        self.labels: dict[str, str] = {}
        self._in: str | None = None
        self._label_for: str | None = None
        self._text: list[str] = []
        self._select: dict[str, Any] | None = None
        self._script: list[str] | None = None
        self.script_xml = ""

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_list}
        if tag == "title":
            self._in, self._text = "title", []
        elif tag == "meta" and attrs.get("name"):
            self.meta[attrs["name"]] = attrs.get("content", "")
        elif tag == "script" and attrs.get("type") == "text/xml":
            self._script = []
        elif tag == "section":
            name = attrs.get("data-section-name") or attrs.get("id") or f"section{len(self.sections) + 1}"
            sid = _section_id(name)
            self.section_stack.append(sid)
            self.sections.append(Section(id=sid, title=name))
        elif tag == "label" and attrs.get("for"):
            self._label_for, self._text = attrs["for"], []
        elif tag in ("input", "textarea", "select"):
            ftype = attrs.get("data-field-type", "").upper() or {"select": "SELECT", "textarea": "TEXT"}.get(
                tag, "NUMBER" if attrs.get("type") == "number" else "TEXT")
            field: dict[str, Any] = {
                "id": attrs.get("id") or attrs.get("name") or f"F{len(self.fields) + 1}",
                "name": attrs.get("name", ""), "mrrt_type": ftype,
                "section": self.section_stack[-1] if self.section_stack else "findings",
                "unit": attrs.get("data-field-units") or attrs.get("data-field-unit") or None,
                "options": [], "required": "required" in attrs,
            }
            self.fields.append(field)
            if tag == "select":
                self._select = field
        elif tag == "option" and self._select is not None:
            self._in, self._text = "option", []
            self._option_value = attrs.get("value")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in == "title":
            self.title, self._in = "".join(self._text).strip(), None
        elif tag == "script" and self._script is not None:
            self.script_xml, self._script = "".join(self._script), None
        elif tag == "section" and self.section_stack:
            self.section_stack.pop()
        elif tag == "label" and self._label_for:
            self.labels[self._label_for] = "".join(self._text).strip()
            self._label_for = None
        elif tag == "option" and self._in == "option" and self._select is not None:
            text = "".join(self._text).strip()
            self._select["options"].append(self._option_value or text)
            self._in = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)
        elif self._in or self._label_for:
            self._text.append(data)


def _section_id(name: str) -> str:
    lowered = name.strip().lower()
    if lowered in ("findings", "影像表现", "所见"):
        return "findings"
    if lowered in ("impression", "impressions", "诊断意见", "印象", "conclusion"):
        return "impression"
    return re.sub(r"[^a-z0-9]+", "_", lowered).strip("_") or "section"


def _coded_content(script_xml: str) -> dict[str, list[Code]]:
    """MRRT template_attributes/coded_content: field id (ORIGTXT) -> codes."""
    if not script_xml.strip():
        return {}
    try:
        root = ET.fromstring(script_xml.strip())
    except ET.ParseError as exc:
        raise MRRTError(f"template attributes are not well-formed XML: {exc}") from exc
    found: dict[str, list[Code]] = {}
    for entry in root.iter("entry"):
        origin = entry.get("ORIGTXT") or entry.get("origtxt")
        if not origin:
            continue
        for code in entry.iter("code"):
            scheme = code.get("scheme") or code.get("SCHEME") or ""
            value = code.get("value") or code.get("VALUE") or ""
            if value:
                system = {"RADLEX": "RadLex", "SNOMEDCT": "SNOMED-CT", "SNOMED": "SNOMED-CT",
                          "LN": "LOINC", "LOINC": "LOINC"}.get(scheme.upper().replace("-", ""), scheme)
                found.setdefault(origin, []).append(Code(system=system, code=value,
                                                         display=code.get("meaning") or ""))
    return found


def from_mrrt(html: str, *, template_id: str | None = None) -> TemplateCreate:
    """An MRRT HTML5 template as our template: sections, typed fields, labels, units, codes."""
    if "<html" not in html.lower():
        raise MRRTError("not an HTML5 document")
    parser = _MRRTParser()
    parser.feed(html)
    parser.close()
    if not parser.fields and not parser.sections:
        raise MRRTError("no <section> and no fields found: not an MRRT template")
    codes = _coded_content(parser.script_xml)
    fields: list[TemplateField] = []
    for raw in parser.fields:
        fid = re.sub(r"[^A-Za-z0-9_.\-]", "_", raw["id"])[:64]
        ftype = _MRRT_TYPES.get(raw["mrrt_type"], "text")
        field_codes = codes.get(raw["id"], [])
        if field_codes and ftype == "text":
            ftype = "coded"
        if ftype == "number" and raw["unit"]:
            ftype = "measurement"
        fields.append(TemplateField(
            id=fid, label=parser.labels.get(raw["id"]) or raw["name"] or fid, type=ftype, section=raw["section"],
            required="warning" if raw["required"] else None, options=list(dict.fromkeys(raw["options"])),
            unit=raw["unit"], unit_required="warning" if ftype == "measurement" else None, codes=field_codes,
            laterality=bool(re.search(r"side|laterality|侧", f"{raw['id']} {raw['name']}", re.I)),
        ))
    sections = parser.sections or [Section(id="findings", title="Findings")]
    for s in sections:
        if s.id in ("findings", "impression"):
            s.required = "blocker"
    name = parser.title or parser.meta.get("dcterms.title") or "MRRT template"
    tid = template_id or re.sub(r"[^A-Za-z0-9_.\-]+", "-", parser.meta.get("dcterms.identifier") or name)[:64]
    return TemplateCreate(id=tid.strip("-") or "mrrt", name=name, definition=TemplateDefinition(
        sections=sections, fields=fields))


# ---- stored templates ------------------------------------------------------------------------------

async def listing(conn: asyncpg.Connection, modality: str | None) -> list[asyncpg.Record]:
    """Templates for a modality (and those for any modality), or all of them."""
    return await conn.fetch("SELECT id, name, modality, body_part, source FROM template "
                            "WHERE $1::text IS NULL OR modality = $1 OR modality IS NULL ORDER BY id", modality)


async def stored(conn: asyncpg.Connection, template_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM template WHERE id = $1", template_id)


async def store(conn: asyncpg.Connection, template: TemplateCreate, source: str, created_by: str) -> None:
    """Create or replace a template (native or imported from MRRT)."""
    await conn.execute(
        """INSERT INTO template (id, name, modality, body_part, source, definition, created_by)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
           ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, modality = EXCLUDED.modality,
               body_part = EXCLUDED.body_part, source = EXCLUDED.source, definition = EXCLUDED.definition""",
        template.id, template.name, template.modality, template.body_part, source,
        template.definition.model_dump_json(), created_by)
