"""`MatchRecord`: one source record reduced to the forms the comparators use, computed once."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

from imaging_common.empi.identifiers import Identifier, IdType, is_valid_resident_id
from imaging_common.empi.names import NameForm, name_form, to_simplified

_DIGITS = re.compile(r"\D+")
_ADDRESS_NOISE = re.compile(r"[\s,，.。;；:：、/\\()（）#号\-—_]+")


def normalize_phone(value: str | None) -> str | None:
    """Digits only, country prefix dropped: the last 11 digits of a mobile, or a landline as given."""
    if not value:
        return None
    digits = _DIGITS.sub("", value)
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(set(digits)) == 1 or len(digits) < 7 or (len(digits) == 11 and len(set(digits[3:])) == 1):
        return None  # "00000000000", "13800000000"-style placeholders for "unknown" are no evidence
    return digits


def normalize_address(value: str | None) -> str | None:
    if not value:
        return None
    text = _ADDRESS_NOISE.sub("", to_simplified(unicodedata.normalize("NFKC", value))).upper()
    return text or None


@lru_cache(maxsize=131072)
def bigrams(text: str) -> frozenset[str]:
    """Character pairs of an address; computed when compared, not kept per record (two kilobytes each:
    a million records' would not fit the batch's memory), cached for the records met most."""
    return frozenset(text[i:i + 2] for i in range(len(text) - 1)) if len(text) > 1 else frozenset((text,))


def parse_date(value: Any) -> date | None:
    """ISO dates, YYYYMMDD (HL7, DICOM) and YYYY/MM/DD; None for empty or impossible dates."""
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    text = _DIGITS.sub("", str(value))[:8]
    if len(text) != 8:
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def normalize_sex(value: str | None) -> str | None:
    if not value:
        return None
    text = value.strip().upper()
    if text in ("M", "MALE", "男", "1"):
        return "M"
    if text in ("F", "FEMALE", "女", "2"):
        return "F"
    return None


@dataclass(slots=True)
class MatchRecord:
    """What the matcher knows about one record. `ref` is the caller's key for it."""

    ref: str
    name: NameForm | None = None
    birth_date: date | None = None
    sex: str | None = None
    national: dict[IdType, Identifier] = field(default_factory=dict)  # one per authority
    local: frozenset[tuple[str, str]] = frozenset()  # (authority, number): cards, HIS/PACS ids
    phone: str | None = None
    address: str | None = None
    postcode: str | None = None

    @property
    def address_grams(self) -> frozenset[str]:
        return bigrams(self.address) if self.address else frozenset()

    @classmethod
    def build(
        cls, ref: str, *, name: str | None = None, family_name: str | None = None, given_name: str | None = None,
        birth_date: Any = None, sex: str | None = None,
        identifiers: list[tuple[str | IdType, str]] | None = None, phone: str | None = None,
        address: str | None = None, postcode: str | None = None,
    ) -> MatchRecord:
        """Normalize raw fields; malformed ID numbers are kept (marked invalid) since typos are evidence."""
        if not name and (family_name or given_name):
            family, given = (family_name or "").strip(), (given_name or "").strip()
            han = any("\u3400" <= ch <= "\u9fff" for ch in family + given)
            name = family + given if han else f"{family}^{given}"
        national: dict[IdType, Identifier] = {}
        local: set[tuple[str, str]] = set()
        for kind, value in identifiers or ():
            if not value or not str(value).strip():
                continue
            ident = Identifier.of(kind, str(value), strict=False)
            if ident.type.is_national:
                kind_key = IdType.RESIDENT_ID if ident.type is IdType.HOUSEHOLD else ident.type
                if kind_key not in national or (ident.valid and not national[kind_key].valid):
                    national[kind_key] = Identifier(kind_key, ident.value, ident.valid)
            else:
                local.add((ident.type.value, ident.value))
        resident = national.get(IdType.RESIDENT_ID)
        if resident is None or not resident.valid:
            # The social security (medical insurance) number is the resident ID number for most people
            # (社会保障号码 = 公民身份号码): read from the insurance card, it is that evidence too.
            for kind_name, number in sorted(local):
                if kind_name == IdType.MEDICAL_INSURANCE.value and is_valid_resident_id(number):
                    national[IdType.RESIDENT_ID] = Identifier(IdType.RESIDENT_ID, number)
                    break
        dob = parse_date(birth_date)
        sx = normalize_sex(sex)
        resident = national.get(IdType.RESIDENT_ID)
        if resident is not None and resident.valid:
            # The ID card is the better witness of birth date and sex than a typed field.
            # (Already validated by Identifier.of: the embedded date is a real date.)
            v = resident.value
            dob = dob or date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
            sx = sx or ("M" if int(v[16]) % 2 else "F")
        addr = normalize_address(address)
        return cls(
            ref=ref, name=name_form(name), birth_date=dob, sex=sx, national=national, local=frozenset(local),
            phone=normalize_phone(phone), address=addr, postcode=_DIGITS.sub("", postcode) if postcode else None,
        )

