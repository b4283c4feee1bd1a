"""Patient identifiers and their assigning authorities (smart-imaging standard 6.1.3 (1)).

A person carries many identifiers, each issued by one authority: the resident identity card
(GB 11643-1999, 18 characters with an ISO 7064 MOD 11-2 check character), passports, travel
permits for Hong Kong/Macau and Taiwan residents, the foreigner permanent residence card,
hospital cards, the HIS patient ID and the PACS PatientID. Numbers are normalized before they
are stored or compared; a full ID number never goes to a log — use `mask()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from operator import mul


class IdType(StrEnum):
    """Assigning authorities; the value is what APIs, CSV files and the database carry."""

    RESIDENT_ID = "resident-id"  # 居民身份证 GB 11643
    HOUSEHOLD = "household-register"  # 户口簿 (carries the resident ID number)
    MILITARY = "military-officer"  # 军官证
    PASSPORT = "passport"  # 护照
    HK_MACAU_PERMIT = "hk-macau-permit"  # 港澳居民来往内地通行证
    TAIWAN_PERMIT = "taiwan-permit"  # 台湾居民来往大陆通行证
    FOREIGNER_RESIDENCE = "foreigner-residence"  # 外国人永久居留身份证 / 居留证
    HOSPITAL_CARD = "hospital-card"  # 医院就诊卡
    HIS_PATIENT_ID = "his-patient-id"  # HIS 病人 ID
    PACS_PATIENT_ID = "pacs-patient-id"  # DICOM (0010,0020)
    MEDICAL_INSURANCE = "medical-insurance"  # 医保号

    @property
    def is_national(self) -> bool:
        """Numbers that identify a person nationally (one per person per authority)."""
        return self in _NATIONAL


_NATIONAL = {IdType.RESIDENT_ID, IdType.HOUSEHOLD, IdType.PASSPORT, IdType.HK_MACAU_PERMIT,
             IdType.TAIWAN_PERMIT, IdType.FOREIGNER_RESIDENCE, IdType.MILITARY}

# Aliases seen in HIS feeds and legacy CSV files -> IdType (HL7 PID-3.5 identifier type codes too).
ID_TYPE_ALIASES: dict[str, IdType] = {
    "resident-id": IdType.RESIDENT_ID, "id": IdType.RESIDENT_ID, "idcard": IdType.RESIDENT_ID,
    "身份证": IdType.RESIDENT_ID, "居民身份证": IdType.RESIDENT_ID, "ri": IdType.RESIDENT_ID,
    "nnchn": IdType.RESIDENT_ID, "household-register": IdType.HOUSEHOLD, "户口簿": IdType.HOUSEHOLD,
    "military-officer": IdType.MILITARY, "军官证": IdType.MILITARY,
    "passport": IdType.PASSPORT, "ppn": IdType.PASSPORT, "护照": IdType.PASSPORT,
    "hk-macau-permit": IdType.HK_MACAU_PERMIT, "港澳通行证": IdType.HK_MACAU_PERMIT,
    "港澳居民来往内地通行证": IdType.HK_MACAU_PERMIT,
    "taiwan-permit": IdType.TAIWAN_PERMIT, "台胞证": IdType.TAIWAN_PERMIT,
    "台湾居民来往大陆通行证": IdType.TAIWAN_PERMIT,
    "foreigner-residence": IdType.FOREIGNER_RESIDENCE, "外国人居留证": IdType.FOREIGNER_RESIDENCE,
    "hospital-card": IdType.HOSPITAL_CARD, "就诊卡": IdType.HOSPITAL_CARD, "hc": IdType.HOSPITAL_CARD,
    "his-patient-id": IdType.HIS_PATIENT_ID, "pi": IdType.HIS_PATIENT_ID, "mr": IdType.HIS_PATIENT_ID,
    "pacs-patient-id": IdType.PACS_PATIENT_ID,
    "medical-insurance": IdType.MEDICAL_INSURANCE, "医保号": IdType.MEDICAL_INSURANCE,
}


def parse_id_type(value: str | None, default: IdType = IdType.RESIDENT_ID) -> IdType:
    if not value:
        return default
    key = value.strip().lower()
    if key in ID_TYPE_ALIASES:
        return ID_TYPE_ALIASES[key]
    raise ValueError(f"unknown identifier type {value!r}")


class InvalidIdentifier(ValueError):
    """An identifier that fails its authority's format rules; the message never holds the number."""


# ---- GB 11643-1999 resident identity number ------------------------------------------------

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_RESIDENT = re.compile(r"^\d{17}[\dX]$")
# First two digits: province-level codes of GB/T 2260 (incl. 71 Taiwan, 81 Hong Kong, 82 Macau,
# 83 for residence permits of Taiwan residents).
PROVINCES = {
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91,
}


def resident_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits."""
    if len(first17) != 17:
        raise ValueError("17 digits expected")
    return _CHECK[sum(map(mul, map(int, first17), _WEIGHTS)) % 11]


@dataclass(frozen=True)
class ResidentId:
    number: str
    region: str  # 6-digit administrative division code (GB/T 2260)
    birth_date: date
    sex: str  # "M" (odd sequence digit) or "F" (even)


def normalize_resident_id(number: str) -> str:
    """Upper-case, full-width digits and spaces removed: the form that is stored and compared."""
    text = number.strip().translate(_FULLWIDTH).replace(" ", "").replace("-", "").upper()
    return text


_FULLWIDTH = {0xFF10 + i: 0x30 + i for i in range(10)} | {0xFF38: ord("X"), 0xFF58: ord("X")}


def parse_resident_id(number: str, *, today: date | None = None) -> ResidentId:
    """Validate an 18-character resident ID (check character, region, embedded birth date)."""
    num = normalize_resident_id(number)
    if len(num) == 15 and num.isdigit():
        raise InvalidIdentifier("15-digit first-generation ID number: convert it to 18 characters")
    if not _RESIDENT.match(num):
        raise InvalidIdentifier("a resident ID number has 17 digits and a check digit or X")
    if int(num[:2]) not in PROVINCES:
        raise InvalidIdentifier("the region code names no province")
    try:
        born = date(int(num[6:10]), int(num[10:12]), int(num[12:14]))
    except ValueError:
        raise InvalidIdentifier("the embedded birth date is not a date") from None
    today = today or date.today()
    if born.year < 1880 or born > today:
        raise InvalidIdentifier("the embedded birth date is out of range")
    if resident_check_char(num[:17]) != num[17]:
        raise InvalidIdentifier("the check digit does not match (a digit is wrong or two are swapped)")
    return ResidentId(num, num[:6], born, "M" if int(num[16]) % 2 else "F")


def is_valid_resident_id(number: str) -> bool:
    try:
        parse_resident_id(number)
    except InvalidIdentifier:
        return False
    return True


def upgrade_15_digit(number: str) -> str:
    """First-generation 15-digit numbers (19xx births) to the 18-character form."""
    if len(number) != 15 or not number.isdigit():
        raise InvalidIdentifier("not a 15-digit ID number")
    first17 = number[:6] + "19" + number[6:]
    return first17 + resident_check_char(first17)


# ---- other authorities ---------------------------------------------------------------------

_FORMATS: dict[IdType, re.Pattern[str]] = {
    IdType.PASSPORT: re.compile(r"^[A-Z0-9]{5,17}$"),
    IdType.HK_MACAU_PERMIT: re.compile(r"^[HM]\d{8}(\d{2})?$|^C[A-Z0-9]\d{7}$"),
    IdType.TAIWAN_PERMIT: re.compile(r"^\d{8}(\d{2})?$|^T\d{8}$"),
    IdType.FOREIGNER_RESIDENCE: re.compile(r"^[A-Z]{3}\d{12}$|^9\d{16}[\dX]$"),
}


def normalize(id_type: IdType, value: str) -> str:
    """Canonical form of a number for its authority; raises InvalidIdentifier when malformed."""
    if not id_type.is_national and id_type is not IdType.MEDICAL_INSURANCE:
        # Local numbers (cards, HIS/PACS ids) may be case-sensitive: only the blanks go.
        text = value.strip()
        if not text or len(text) > 64:
            raise InvalidIdentifier(f"{id_type.value} number must have 1 to 64 characters")
        return text
    text = normalize_resident_id(value)
    if not text:
        raise InvalidIdentifier(f"empty {id_type.value} number")
    if id_type in (IdType.RESIDENT_ID, IdType.HOUSEHOLD):
        if len(text) == 15 and text.isdigit():
            text = upgrade_15_digit(text)
        return parse_resident_id(text).number
    pattern = _FORMATS.get(id_type)
    if pattern is not None and not pattern.match(text):
        raise InvalidIdentifier(f"malformed {id_type.value} number")
    if len(text) > 64:
        raise InvalidIdentifier(f"{id_type.value} number longer than 64 characters")
    return text


def mask(value: str | None) -> str | None:
    """Shown in lists and events: first 4 and last 4 characters of long numbers, e.g. 1101**********1234."""
    if not value:
        return None
    if len(value) <= 4:
        return "*" * len(value)
    if len(value) <= 8:
        return value[:1] + "*" * (len(value) - 3) + value[-2:]
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str | None) -> str | None:
    if not value:
        return None
    return value[:3] + "****" + value[-4:] if len(value) >= 11 else mask(value)


@dataclass(frozen=True)
class Identifier:
    """One number from one authority; `value` is normalized, or raw when `valid` is False."""

    type: IdType
    value: str
    valid: bool = True

    @classmethod
    def of(cls, id_type: IdType | str, value: str, *, strict: bool = True) -> Identifier:
        """Normalize; with strict=False a malformed number is kept (marked invalid) for matching."""
        kind = id_type if isinstance(id_type, IdType) else parse_id_type(id_type)
        try:
            return cls(kind, normalize(kind, value))
        except InvalidIdentifier:
            if strict:
                raise
            return cls(kind, normalize_resident_id(value), valid=False)

    @property
    def masked(self) -> str | None:
        return mask(self.value)
