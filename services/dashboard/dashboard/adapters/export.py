"""Figures as a spreadsheet: CSV and XLSX (openpyxl). Text cells go through imaging_common.csvsafe, so
a department or room name starting with = + - @ is shown as text, never run as a formula."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from fastapi.responses import Response
from imaging_common.csvsafe import SafeWriter, cell
from openpyxl import Workbook

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for r in rows:
        names += [k for k in r if k not in names]
    return names


def to_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    columns, buf = columns_of(rows), io.StringIO()
    writer = SafeWriter(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(r.get(c) for c in columns)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: Excel reads the Chinese as UTF-8


def to_xlsx(rows: Sequence[dict[str, Any]], title: str) -> bytes:
    columns, book = columns_of(rows), Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(columns)
    for r in rows:
        sheet.append([cell(r.get(c)) for c in columns])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def download(rows: Sequence[dict[str, Any]], *, fmt: str, name: str) -> Response:
    if fmt == "xlsx":
        body, media, suffix = to_xlsx(rows, name.split("-")[0]), XLSX, "xlsx"
    else:
        body, media, suffix = to_csv(rows), "text/csv; charset=utf-8", "csv"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{suffix}"'})
