"""The application form's barcode: Code 128 of the accession number, as SVG (python-barcode), which the
check-in desks' and kiosks' scanners read as keystrokes into the queue terminal (kind "barcode")."""

from __future__ import annotations

import io

from barcode import Code128
from barcode.writer import SVGWriter

# Bars 0.33 mm wide (the writer's default module), 12 mm high, a quiet zone wider than ten modules either
# side: what a handheld scanner reads off a laser print at arm's length. No human-readable line: the form
# prints the number beside it in the body font.
OPTIONS = {"module_height": 12.0, "quiet_zone": 4.0, "write_text": False}


def code128_svg(text: str) -> bytes:
    buffer = io.BytesIO()
    Code128(text, writer=SVGWriter()).write(buffer, options=OPTIONS)
    return buffer.getvalue()
