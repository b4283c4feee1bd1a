"""Specific Character Set helpers: GB18030 and UTF-8 both ways, reply set choice, bad terms."""

from __future__ import annotations

import pytest
from imaging_common.dicom import (
    UnknownCharacterSet,
    can_encode,
    choose_reply_charset,
    decode_text,
    encode_text,
    normalize_charsets,
)

ZHANG_SAN_GB18030 = "张三".encode("gb18030")
ZHANG_SAN_UTF8 = "张三".encode()


def test_decode_gb18030_and_utf8_to_the_same_text() -> None:
    assert decode_text(ZHANG_SAN_GB18030, "GB18030") == "张三"
    assert decode_text(ZHANG_SAN_UTF8, "ISO_IR 192") == "张三"
    assert ZHANG_SAN_GB18030 != ZHANG_SAN_UTF8


def test_four_byte_gb18030_character_round_trips() -> None:
    rare = "𠀀"  # outside the BMP: four bytes in GB18030
    assert len(encode_text(rare, "GB18030")) == 4
    assert decode_text(encode_text(rare, "GB18030"), "GB18030") == rare


def test_iso2022_gb2312_with_escape_sequences() -> None:
    # PS3.5 Annex J example: the ideographic group after the G1 designation ESC $ ) A
    encoded = b"Wang^XiaoDong=\x1b$)A\xcd\xf5^\xd0\xa1\xb6\xab="
    assert decode_text(encoded, ["", "ISO 2022 IR 58"]) == "Wang^XiaoDong=王^小东="


def test_undeclared_8bit_bytes_are_read_as_gb18030() -> None:
    assert decode_text(ZHANG_SAN_GB18030, None) == "张三"


def test_wrong_declaration_is_an_error_not_garbage() -> None:
    with pytest.raises(UnicodeDecodeError):
        decode_text(b"\xff\xfe\xfd", "ISO_IR 192")


def test_misspelt_terms_are_fixed_and_unknown_ones_refused() -> None:
    assert normalize_charsets("ISO-IR 192") == ["ISO_IR 192"]
    assert normalize_charsets("gb18030") == ["GB18030"]
    assert normalize_charsets(None) == ["ISO_IR 6"]
    assert normalize_charsets(["", "ISO 2022 IR 58"]) == ["ISO_IR 6", "ISO 2022 IR 58"]
    with pytest.raises(UnknownCharacterSet):
        normalize_charsets("KLINGON")


def test_latin1_cannot_carry_chinese() -> None:
    assert can_encode(["Müller"], "ISO_IR 100")
    assert not can_encode(["张三"], "ISO_IR 100")
    with pytest.raises(UnicodeEncodeError):
        encode_text("张三", "ISO_IR 100")


@pytest.mark.parametrize(
    ("texts", "requested", "expected"),
    [
        (["SMITH^JOHN"], "GB18030", None),  # plain ASCII needs no declaration
        (["张三"], "GB18030", "GB18030"),  # the peer's own set when it can carry the data
        (["张三"], "ISO_IR 192", "ISO_IR 192"),
        (["张三"], "ISO_IR 100", "ISO_IR 192"),  # Latin-1 cannot: fall back to UTF-8
        (["张三"], None, "ISO_IR 192"),
        (["Müller"], "ISO_IR 100", "ISO_IR 100"),
        (["张三"], ["", "ISO 2022 IR 58"], "ISO_IR 192"),  # never reply with ISO 2022 switching
        (["张三"], "NONSENSE", "ISO_IR 192"),
    ],
)
def test_choose_reply_charset(texts: list[str], requested: object, expected: str | None) -> None:
    assert choose_reply_charset(texts, requested=requested) == expected  # type: ignore[arg-type]


def test_fallback_may_be_gb18030() -> None:
    assert choose_reply_charset(["张三"], requested=None, fallback="GB18030") == "GB18030"
