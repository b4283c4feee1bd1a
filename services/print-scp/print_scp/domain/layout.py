"""Film layout: Image Display Format (2010,0010), Film Size ID (2010,0050), Film Orientation (2010,0040).

PS3.3 C.13.3 defines the display formats a film box may ask for:
  STANDARD\\C,R   C columns by R rows of equal boxes
  ROW\\a,b,...    one row per value, each row split into that many equal boxes
  COL\\a,b,...    one column per value, each column split into that many equal boxes
Image box N (Image Box Position, 1-based) runs left to right, then top to bottom (PS3.3 C.13.5).
"""

from __future__ import annotations

from dataclasses import dataclass

# Film Size ID (2010,0050) -> (width, height) in millimetres, portrait (PS3.3 C.13.8 defined terms).
FILM_SIZES_MM: dict[str, tuple[float, float]] = {
    "8INX10IN": (203.2, 254.0),
    "8_5INX11IN": (215.9, 279.4),
    "10INX12IN": (254.0, 304.8),
    "10INX14IN": (254.0, 355.6),
    "11INX14IN": (279.4, 355.6),
    "11INX17IN": (279.4, 431.8),
    "14INX14IN": (355.6, 355.6),
    "14INX17IN": (355.6, 431.8),
    "24CMX24CM": (240.0, 240.0),
    "24CMX30CM": (240.0, 300.0),
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
}
DEFAULT_FILM_SIZE = "14INX17IN"
ORIENTATIONS = ("PORTRAIT", "LANDSCAPE")
MAX_BOXES = 64  # more boxes than any modality lays out on one sheet; refuse absurd formats


class LayoutError(ValueError):
    """The requested layout is not one this printer can lay out."""


@dataclass(frozen=True)
class Box:
    """One image box as fractions of the printable film area (0..1)."""

    position: int  # Image Box Position, 1-based
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class DisplayFormat:
    kind: str  # STANDARD, ROW or COL
    values: tuple[int, ...]
    text: str  # as received, e.g. "STANDARD\\2,2"

    @property
    def box_count(self) -> int:
        if self.kind == "STANDARD":
            return self.values[0] * self.values[1]
        return sum(self.values)

    def boxes(self) -> list[Box]:
        out: list[Box] = []
        if self.kind == "STANDARD":
            cols, rows = self.values
            for r in range(rows):
                for c in range(cols):
                    out.append(Box(len(out) + 1, c / cols, r / rows, 1 / cols, 1 / rows))
        elif self.kind == "ROW":
            rows = len(self.values)
            for r, n in enumerate(self.values):
                for c in range(n):
                    out.append(Box(len(out) + 1, c / n, r / rows, 1 / n, 1 / rows))
        else:  # COL: positions still run left to right, then top to bottom
            cols = len(self.values)
            cells = [(c, r, n) for c, n in enumerate(self.values) for r in range(n)]
            cells.sort(key=lambda t: (t[1] / t[2], t[0]))
            for c, r, n in cells:
                out.append(Box(len(out) + 1, c / cols, r / n, 1 / cols, 1 / n))
        return out


def parse_display_format(value: str | list[str] | None) -> DisplayFormat:
    """Parse Image Display Format; pydicom gives a multi-valued ST as a string with backslashes."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise LayoutError("Image Display Format (2010,0010) is empty")
    text = "\\".join(value) if isinstance(value, list) else str(value)
    kind, _, rest = text.strip().partition("\\")
    kind = kind.strip().upper()
    if kind not in ("STANDARD", "ROW", "COL"):
        raise LayoutError(f"Image Display Format '{text}': only STANDARD, ROW and COL are supported")
    try:
        values = tuple(int(v) for v in rest.split(","))
    except ValueError:
        raise LayoutError(f"Image Display Format '{text}': values must be integers") from None
    if any(v < 1 for v in values):
        raise LayoutError(f"Image Display Format '{text}': values must be at least 1")
    if kind == "STANDARD" and len(values) != 2:
        raise LayoutError(f"Image Display Format '{text}': STANDARD takes columns,rows")
    fmt = DisplayFormat(kind, values, text.strip())
    if fmt.box_count > MAX_BOXES:
        raise LayoutError(f"Image Display Format '{text}': {fmt.box_count} boxes exceed {MAX_BOXES}")
    return fmt


def film_pixels(film_size_id: str, orientation: str, dpi: int) -> tuple[int, int]:
    """(width, height) in pixels of a sheet at `dpi`, orientation applied."""
    w_mm, h_mm = FILM_SIZES_MM[film_size_id]
    if orientation == "LANDSCAPE":
        w_mm, h_mm = h_mm, w_mm
    return round(w_mm / 25.4 * dpi), round(h_mm / 25.4 * dpi)
