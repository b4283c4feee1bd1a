"""DICOM helpers shared by the DICOM-speaking services (worklist, print-scp).

- `charsets`: Specific Character Set (0008,0005) decoding/encoding, GB18030 and ISO_IR 192
  included, and the choice of a reply character set that can carry the data.
- `names`: person names (PN) as their three component groups, normalized for matching.
- `matching`: wildcard (`*`, `?`) to SQL LIKE by characters, DA/TM/DT range parsing,
  and combined date-time ranges (PS3.4 C.2.2.2.5).

Nothing here imports pynetdicom: these are pure functions over `str` and pydicom values.
"""

from imaging_common.dicom.charsets import (
    DEFAULT_REPERTOIRE,
    UnknownCharacterSet,
    can_encode,
    choose_reply_charset,
    decode_text,
    encode_text,
    normalize_charsets,
    python_codecs,
)
from imaging_common.dicom.datasets import dataset_charsets, text_value
from imaging_common.dicom.matching import (
    DateTimeRange,
    InvalidMatchValue,
    combined_datetime_range,
    has_wildcards,
    is_universal,
    parse_date,
    parse_date_range,
    parse_time,
    parse_time_range,
    wildcard_match,
    wildcard_to_like,
)
from imaging_common.dicom.names import PersonNameGroups, match_form, person_name, split_person_name

__all__ = [
    "DEFAULT_REPERTOIRE", "DateTimeRange", "InvalidMatchValue", "PersonNameGroups", "UnknownCharacterSet",
    "can_encode", "choose_reply_charset", "combined_datetime_range", "dataset_charsets", "decode_text",
    "encode_text", "text_value",
    "has_wildcards", "is_universal", "match_form", "normalize_charsets", "parse_date", "parse_date_range",
    "parse_time", "parse_time_range", "person_name", "python_codecs", "split_person_name", "wildcard_match",
    "wildcard_to_like",
]
