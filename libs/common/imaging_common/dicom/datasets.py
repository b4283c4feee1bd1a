"""Reading text out of pydicom datasets with our own charset handling.

pydicom decodes lazily and, for a few sets (ISO 2022 GB2312), leaves escape sequences in the
text or replaces what it cannot read. These helpers read the raw bytes of an element and decode
them with `charsets.decode_text`, raising for bytes that are not valid in the declared set, so a
query with a wrong declaration is refused instead of silently matching garbage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from imaging_common.dicom.charsets import decode_text, normalize_charsets


def dataset_charsets(ds: Dataset, inherited: Sequence[str] | None = None) -> list[str]:
    """The Specific Character Set in force for `ds` (a sequence item inherits its parent's)."""
    if 0x00080005 in ds:
        raw = ds.get_item(0x00080005).value
        if isinstance(raw, bytes):
            value: Any = [v.decode("ascii", "replace").strip() for v in raw.split(b"\\")]
        else:
            value = list(raw) if isinstance(raw, MultiValue | list) else raw
        return normalize_charsets(value or None)
    return list(inherited) if inherited else normalize_charsets(None)


def text_value(ds: Dataset, tag: int | BaseTag | str, charsets: Sequence[str]) -> str | None:
    """The value of a text element as one `str` (multiple values joined by `\\`); None if absent.

    Trailing padding (space, NUL) is removed. Raises UnicodeDecodeError for invalid bytes.
    """
    t = Tag(tag)
    if t not in ds:
        return None
    value = ds.get_item(t).value
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return decode_text(bytes(value), charsets).rstrip(" \x00")
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value).rstrip(" \x00")
