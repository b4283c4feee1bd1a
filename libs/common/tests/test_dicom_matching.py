"""Wildcards by characters, DA/TM ranges, combined date-time ranges, person-name groups."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest
from imaging_common.dicom import (
    InvalidMatchValue,
    combined_datetime_range,
    is_universal,
    match_form,
    parse_date_range,
    person_name,
    split_person_name,
    wildcard_match,
    wildcard_to_like,
)


def test_wildcards_translate_and_sql_metacharacters_are_escaped() -> None:
    assert wildcard_to_like("张*") == "张%"
    assert wildcard_to_like("?三") == "_三"
    assert wildcard_to_like("100%_A\\B*") == "100\\%\\_A\\\\B%"


def test_question_mark_is_one_character_not_one_byte() -> None:
    assert wildcard_match("张?", "张三")  # 三 is 2 bytes in GB18030, 3 in UTF-8
    assert not wildcard_match("张??", "张三")
    assert wildcard_match("?^?", "张^三")


def test_universal_values() -> None:
    assert is_universal("") and is_universal("*") and is_universal("**") and is_universal(None)
    assert not is_universal("张*")


def test_person_name_groups_and_match_form() -> None:
    groups = split_person_name("Zhang^San^^^=张^三=zhang^san")
    assert groups.alphabetic == "Zhang^San" and groups.ideographic == "张^三" and groups.phonetic == "zhang^san"
    assert match_form("Zhang^San^^") == "ZHANG^SAN"
    assert match_form("张^三") == "张^三"
    assert split_person_name("张三").alphabetic == "张三"
    assert person_name("ZHANG^SAN", "张^三") == "ZHANG^SAN=张^三"
    assert person_name("", "张^三") == "=张^三"
    assert person_name("SMITH") == "SMITH"


def test_date_ranges() -> None:
    assert parse_date_range("20240101") == (date(2024, 1, 1), date(2024, 1, 1))
    assert parse_date_range("20240101-20240131") == (date(2024, 1, 1), date(2024, 1, 31))
    assert parse_date_range("-20240131") == (None, date(2024, 1, 31))
    assert parse_date_range("20240101-") == (date(2024, 1, 1), None)
    assert parse_date_range("2024.01.05") == (date(2024, 1, 5), date(2024, 1, 5))
    for bad in ("2024-13-45", "20241345", "2024011", "-", "20240131-20240101", "1-2-3"):
        with pytest.raises(InvalidMatchValue):
            parse_date_range(bad)


def test_combined_date_time_range_is_one_range() -> None:
    r = combined_datetime_range("20240101-20240102", "2300-0100")
    assert r is not None
    assert r.start == datetime(2024, 1, 1, 23, 0) and r.end == datetime(2024, 1, 2, 1, 1)
    assert r.contains(datetime(2024, 1, 2, 0, 30))
    assert r.contains(datetime(2024, 1, 1, 23, 59))
    assert not r.contains(datetime(2024, 1, 1, 22, 59))
    assert not r.contains(datetime(2024, 1, 2, 1, 1))


def test_single_date_and_time_precision() -> None:
    day = combined_datetime_range("20240101", "")
    assert day is not None and day.start == datetime(2024, 1, 1) and day.end == datetime(2024, 1, 2)
    minute = combined_datetime_range("20240101", "0930")
    assert minute is not None and minute.start == datetime(2024, 1, 1, 9, 30)
    assert minute.end == datetime(2024, 1, 1, 9, 31)
    open_end = combined_datetime_range("20240101-", "0800-")
    assert open_end is not None and open_end.start == datetime(2024, 1, 1, 8) and open_end.end is None
    to_noon = combined_datetime_range("-20240101", "-1200")
    assert to_noon is not None and to_noon.start is None and to_noon.end == datetime(2024, 1, 1, 12, 1)


def test_time_alone_is_a_time_of_day() -> None:
    r = combined_datetime_range("", "0800-1000")
    assert r is not None and r.time_of_day == (time(8), time(10, 1))
    assert r.contains(datetime(2030, 5, 5, 10, 0, 59)) and not r.contains(datetime(2030, 5, 5, 10, 1))


def test_bad_times_and_inverted_combined_ranges_are_refused() -> None:
    for d, t in (("20240101", "2500"), ("20240101", "12345"), ("20240101", "12.5"), ("20240101", "1200-0800")):
        with pytest.raises(InvalidMatchValue):
            combined_datetime_range(d, t)
    assert combined_datetime_range("", "") is None
