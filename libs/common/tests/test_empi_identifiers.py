"""GB 11643 resident ID validation, other authorities, masking."""

from __future__ import annotations

from datetime import date

import pytest
from imaging_common.empi.identifiers import (
    Identifier,
    IdType,
    InvalidIdentifier,
    mask,
    normalize,
    parse_id_type,
    parse_resident_id,
    resident_check_char,
    upgrade_15_digit,
)

SAMPLE = "11010519491231002X"  # the example printed in GB 11643-1999


def test_standard_example_is_valid_with_embedded_fields() -> None:
    rid = parse_resident_id(SAMPLE)
    assert rid.region == "110105"
    assert rid.birth_date == date(1949, 12, 31)
    assert rid.sex == "F"  # sequence 002: even


def test_lowercase_x_and_fullwidth_digits_normalize() -> None:
    assert parse_resident_id("１１０１０５１９４９１２３１００２x").number == SAMPLE


@pytest.mark.parametrize("bad, why", [
    ("110105194912310021", "check digit"),  # one wrong digit (the check char)
    ("110105194912310O2X", "17 digits"),
    ("990105194912310028", "region"),
    ("110105194913310020", "not a date"),
    ("110105230012310026", "out of range"),
    ("11010519491231002", "17 digits"),
])
def test_invalid_numbers_are_refused_with_a_reason_and_without_the_number(bad: str, why: str) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        parse_resident_id(bad)
    assert why in str(err.value)
    assert bad not in str(err.value)


def test_every_single_digit_error_and_adjacent_swap_is_caught() -> None:
    body = SAMPLE[:17]
    for i in range(17):
        for d in "0123456789":
            if d != body[i]:
                typo = body[:i] + d + body[i + 1:] + SAMPLE[17]
                assert resident_check_char(typo[:17]) != typo[17]
    for i in range(16):
        swapped = list(SAMPLE)
        if swapped[i] != swapped[i + 1]:
            swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
            s = "".join(swapped)
            assert not s[:17].isdigit() or resident_check_char(s[:17]) != s[17]


def test_15_digit_numbers_are_upgraded() -> None:
    assert upgrade_15_digit("110105491231002") == SAMPLE
    assert normalize(IdType.RESIDENT_ID, "110105491231002") == SAMPLE


def test_other_authorities() -> None:
    assert normalize(IdType.PASSPORT, "e 1234 5678") == "E12345678"
    assert normalize(IdType.HK_MACAU_PERMIT, "H12345678") == "H12345678"
    with pytest.raises(InvalidIdentifier):
        normalize(IdType.HK_MACAU_PERMIT, "X1234")
    assert parse_id_type("身份证") is IdType.RESIDENT_ID
    assert parse_id_type("PPN") is IdType.PASSPORT
    with pytest.raises(ValueError):
        parse_id_type("library-card")


def test_lenient_identifier_keeps_a_typo_for_matching() -> None:
    ident = Identifier.of("resident-id", "110105194912310021", strict=False)
    assert not ident.valid and ident.value == "110105194912310021"


def test_mask_never_shows_the_middle() -> None:
    assert mask(SAMPLE) == "1101**********002X"
    assert mask("H12345678") == "H123*5678"
    assert mask(None) is None
