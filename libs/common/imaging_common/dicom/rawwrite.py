"""Encode small datasets straight to bytes, for replies sent by the thousand (C-FIND pendings).

Building a pydicom `Dataset` element by element and letting pydicom write it costs ~0.5 ms per
reply in validation and conversion; a worklist answering 10,000 items spends seconds on it.
Here a reply is a list of `(tag, VR, value)` — value a `str`, or for SQ a list of items, each
such a list — encoded once to bytes in the negotiated transfer syntax (little endian, implicit
or explicit VR) and handed to pynetdicom as a Dataset of RawDataElements, which pydicom writes
as they are.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Union

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from imaging_common.dicom.charsets import python_codecs

Value = Union[str, None, "Sequence[Elements]"]
Element = tuple[int, str, Value]
Elements = Sequence[Element]

_LONG_EXPLICIT = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"}
_TEXT = {"PN", "LO", "SH", "LT", "ST", "UT", "UC"}  # the VRs Specific Character Set applies to
_ITEM = struct.pack("<HH", 0xFFFE, 0xE000)


def _value_bytes(vr: str, value: str | None, codec: str) -> bytes:
    if not value:
        return b""
    data = value.encode(codec if vr in _TEXT else "ascii")
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


@lru_cache(maxsize=1024)
def _prefix(tag: int, vr: str, implicit: bool) -> tuple[bytes, str]:
    """The bytes before the length, and the length's struct format (cached: few distinct keys)."""
    group_element = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return group_element, "<I"
    if vr in _LONG_EXPLICIT:
        return group_element + vr.encode() + b"\x00\x00", "<I"
    return group_element + vr.encode(), "<H"


def _header(tag: int, vr: str, length: int, implicit: bool) -> bytes:
    prefix, length_format = _prefix(tag, vr, implicit)
    return prefix + struct.pack(length_format, length)


def encode_value(vr: str, value: Value, *, codec: str, implicit: bool) -> bytes:
    """The value field of one element; a sequence's items with defined lengths."""
    if vr == "SQ":
        out = []
        for item in value or ():  # type: ignore[union-attr]
            body = encode_elements(item, codec=codec, implicit=implicit)  # type: ignore[arg-type]
            out.append(_ITEM + struct.pack("<I", len(body)) + body)
        return b"".join(out)
    return _value_bytes(vr, value, codec)  # type: ignore[arg-type]


def encode_elements(elements: Elements, *, codec: str, implicit: bool) -> bytes:
    """Elements (in any order) encoded in tag order, headers included."""
    out = []
    for tag, vr, value in sorted(elements, key=lambda e: e[0]):
        data = encode_value(vr, value, codec=codec, implicit=implicit)
        out.append(_header(tag, vr, len(data), implicit) + data)
    return b"".join(out)


def _codec_and_items(elements: Elements, charset: str | None) -> tuple[str, list[Element]]:
    codec = python_codecs(charset)[0] if charset else "ascii"
    items = list(elements)
    if charset:
        items.append((0x00080005, "CS", charset))
    return ("ascii" if codec == "iso8859" else codec), items


def encode_dataset(elements: Elements, *, charset: str | None, implicit: bool) -> bytes:
    """The whole data set as bytes (little endian), (0008,0005) included when `charset` is set."""
    codec, items = _codec_and_items(elements, charset)
    return encode_elements(items, codec=codec, implicit=implicit)


def raw_dataset(elements: Elements, *, charset: str | None, implicit: bool) -> Dataset:
    """A Dataset of RawDataElements that pydicom writes byte for byte (little endian only).

    `charset` is the Specific Character Set term (None: the default repertoire); it is added as
    (0008,0005) and used for the text VRs. Raises UnicodeEncodeError when it cannot carry a value.
    """
    codec, items = _codec_and_items(elements, charset)
    ds = Dataset()
    for tag, vr, value in items:
        data = encode_value(vr, value, codec=codec, implicit=implicit)
        ds._dict[Tag(tag)] = RawDataElement(Tag(tag), None if implicit else vr, len(data), data, 0, implicit, True)
    # pydicom writes raw elements as they are only when the dataset claims the encoding and
    # character set the writer uses; otherwise it would decode and re-encode every value.
    ds.set_original_encoding(implicit, True, ds._character_set)
    return ds
