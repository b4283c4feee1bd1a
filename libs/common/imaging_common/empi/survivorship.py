"""Golden record: one best value per field, chosen from a person's source records by rules.

Survivorship rules (documented here, applied in this order, with provenance kept per field):
- Trust of a source: an identity-verified registration (ID card read at the desk) > a clerk's
  registration > the HIS feed > a legacy batch import. Within one trust level, the newer wins.
- name: characters beat pinyin-only spellings (a pinyin entry never overwrites 张伟 with ZHANG WEI);
  otherwise the most trusted value, simplified characters before traditional at equal trust (the
  platform's display script), then the most recent.
- birth date and sex: taken from a valid resident ID number when there is one (the card is a
  better witness than a typed field); otherwise the most trusted, most recent value.
- identifiers: all are kept (they are how other systems find the person); per authority the
  golden number is a valid one from the most trusted, most recent record.
- phone, address, postcode: the most recent non-empty value (people move and change numbers),
  ties broken by trust.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from imaging_common.empi.identifiers import IdType, InvalidIdentifier, parse_resident_id
from imaging_common.empi.names import has_han, latin_of, to_simplified

TRUST = {"verified": 4, "registration": 3, "his": 2, "batch": 1}
# Which national number is shown as "the" ID of a person, in order of preference.
PRIMARY_ID_ORDER = (IdType.RESIDENT_ID, IdType.HOUSEHOLD, IdType.PASSPORT, IdType.HK_MACAU_PERMIT,
                    IdType.TAIWAN_PERMIT, IdType.FOREIGNER_RESIDENCE, IdType.MILITARY)


@dataclass
class SourceRecord:
    id: str
    source: str  # verified | registration | his | batch
    created_at: datetime
    name: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    phone: str | None = None
    address: str | None = None
    postcode: str | None = None
    identifiers: list[dict[str, Any]] = field(default_factory=list)  # {"type","value","valid"}

    @property
    def trust(self) -> int:
        return TRUST.get(self.source, 0)


@dataclass
class Demographics:
    """Who a person is: what the golden record settles and the person's row (empi_person) keeps."""

    name: str
    name_latin: str | None
    birth_date: date | None
    sex: str
    phone: str | None
    address: str | None
    postcode: str | None
    id_type: str | None
    id_number: str | None
    verified: bool


@dataclass
class GoldenRecord(Demographics):
    identifiers: list[dict[str, Any]]
    provenance: dict[str, str]  # field -> source record id


def _by_trust(records: Sequence[SourceRecord]) -> list[SourceRecord]:
    return sorted(records, key=lambda r: (r.trust, r.created_at), reverse=True)


def _by_recency(records: Sequence[SourceRecord]) -> list[SourceRecord]:
    return sorted(records, key=lambda r: (r.created_at, r.trust), reverse=True)


def golden_record(records: Sequence[SourceRecord]) -> GoldenRecord:
    if not records:
        raise ValueError("a person has at least one source record")
    trusted = _by_trust(records)
    recent = _by_recency(records)
    prov: dict[str, str] = {}

    named = [r for r in trusted if r.name]
    han = sorted((r for r in named if has_han(r.name or "")),
                 key=lambda r: (r.trust, to_simplified(r.name or "") == r.name, r.created_at), reverse=True)
    name_src = (han or named or trusted)[0]
    name = name_src.name or ""
    prov["name"] = name_src.id
    latin_src = next((r for r in named if not has_han(r.name or "")), None)
    name_latin = latin_of(name) if han else (latin_of(latin_src.name) if latin_src else None)

    # Identifiers: union, de-duplicated by (type, value); valid before invalid.
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for r in trusted:
        for ident in r.identifiers:
            key = (ident["type"], ident["value"])
            if key not in seen:
                seen[key] = {**ident, "source_record_id": r.id}
    identifiers = sorted(seen.values(), key=lambda i: (not i.get("valid", True)))
    id_type = id_number = None
    for kind in PRIMARY_ID_ORDER:
        hit = next((i for i in identifiers if i["type"] == kind.value and i.get("valid", True)), None)
        if hit:
            id_type, id_number = hit["type"], hit["value"]
            prov["id_number"] = hit["source_record_id"]
            break

    birth_date, sex = None, None
    if id_type in (IdType.RESIDENT_ID.value, IdType.HOUSEHOLD.value) and id_number:
        try:
            parsed = parse_resident_id(id_number)
            birth_date, sex = parsed.birth_date, parsed.sex
            prov["birth_date"] = prov["sex"] = prov["id_number"]
        except InvalidIdentifier:
            pass
    if birth_date is None:
        src = next((r for r in trusted if r.birth_date), None)
        if src:
            birth_date, prov["birth_date"] = src.birth_date, src.id
    if sex is None:
        src = next((r for r in trusted if r.sex in ("M", "F", "O")), None)
        if src:
            sex, prov["sex"] = src.sex, src.id

    def latest(attr: str) -> Any:
        src = next((r for r in recent if getattr(r, attr)), None)
        if src is None:
            return None
        prov[attr] = src.id
        return getattr(src, attr)

    return GoldenRecord(
        name=name, name_latin=name_latin, birth_date=birth_date, sex=sex or "U", phone=latest("phone"),
        address=latest("address"), postcode=latest("postcode"), id_type=id_type, id_number=id_number,
        identifiers=identifiers, verified=any(r.source == "verified" for r in records), provenance=prov,
    )
