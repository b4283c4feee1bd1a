"""Compose a film as the modality laid it out: grid, orientation, polarity, LUT, densities.

Optical density (OD) on film runs from Min Density to Max Density (hundredths of OD in the
print attributes). The preview shows transmitted light on a light box, so a brighter pixel is a
lower density: brightness = (D_VIEW_MAX - OD) / (D_VIEW_MAX - D_VIEW_MIN), clipped.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from print_scp.domain.layout import DisplayFormat, film_pixels

D_VIEW_MIN, D_VIEW_MAX = 0.20, 3.00  # densities shown as white and black in the preview
log = logging.getLogger(__name__)

# Annotations are Chinese names and exam titles: Noto Sans CJK (Debian fonts-noto-cjk) draws Han and Latin.
# Without it DejaVu still draws the Latin part, so a film is never refused for a missing font.
CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"  # Debian's, as the image installs it
CJK_FACE = "Noto Sans CJK SC"  # the .ttc holds JP/KR/SC/TC/HK faces; Han glyph shapes differ by region
# Pillow looks a path that is missing up by its file name in the system font folders, so CJK_FONT is also
# found where another distribution keeps it (Fedora, Arch, a ~/.fonts copy). The SC-only OpenType build
# of the same face has a file name of its own: tried next.
CJK_FONT_ELSEWHERE = ("NotoSansCJKsc-Regular.otf",)
LATIN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
ELLIPSIS = "\u2026"
_RESAMPLE = {"REPLICATE": Image.Resampling.NEAREST, "BILINEAR": Image.Resampling.BILINEAR,
             "CUBIC": Image.Resampling.BICUBIC, "NONE": None}


@dataclass
class PresentationLut:
    """Presentation LUT (PS3.3 C.11.4): a shape, or an explicit table over the P-value range."""

    shape: str | None = None  # IDENTITY or LIN OD
    table: np.ndarray | None = None  # output values normalized to 0..1

    def apply(self, p: np.ndarray) -> np.ndarray:
        if self.table is None:
            return p  # IDENTITY; LIN OD means P-values are already linear in density: same for us
        idx = np.clip((p * (len(self.table) - 1)).round().astype(np.int32), 0, len(self.table) - 1)
        return self.table[idx]


@dataclass
class BoxImage:
    position: int
    pixels: np.ndarray  # P-values 0..1, 2-D or RGB
    magnification: str | None = None
    requested_width_mm: float | None = None
    lut: PresentationLut | None = None
    crop: bool = False  # Requested Decimate/Crop Behavior CROP: the requested size kept, the centre printed


@dataclass
class FilmLayout:
    display_format: DisplayFormat
    film_size: str
    orientation: str = "PORTRAIT"
    magnification: str = "BILINEAR"
    border_density: str = "BLACK"
    empty_image_density: str = "BLACK"
    min_density: int = 20  # hundredths of OD
    max_density: int = 300
    trim: bool = False
    lut: PresentationLut | None = None
    annotations: list[str] = field(default_factory=list)


def density_od(value: str, *, min_density: int, max_density: int) -> float:
    """BLACK/WHITE or a number in hundredths of OD -> OD."""
    v = (value or "").strip().upper()
    if v == "WHITE":
        return min_density / 100
    if v == "BLACK" or not v:
        return max_density / 100
    return float(v) / 100


def brightness_of_od(od: np.ndarray | float) -> np.ndarray | float:
    return np.clip((D_VIEW_MAX - np.asarray(od, dtype=np.float32)) / (D_VIEW_MAX - D_VIEW_MIN), 0.0, 1.0)


def _fit(img: np.ndarray, box_w: int, box_h: int, magnification: str, requested_px: int | None,
         crop: bool = False) -> np.ndarray:
    h, w = img.shape[:2]
    scale = min(box_w / w, box_h / h)
    if requested_px and crop:  # CROP: the requested width, whatever the box; the centre is kept below
        scale = requested_px / w
    elif requested_px:  # Requested Image Size is the printed width; never beyond the box
        scale = min(scale, requested_px / w)
    method = _RESAMPLE.get(magnification.upper(), Image.Resampling.BILINEAR)
    if method is None:  # NONE: printed 1:1, cropped to the box
        return _centre(img, box_w, box_h) if crop else img[:box_h, :box_w]
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    if (new_w, new_h) != (w, h):
        if img.ndim == 2:
            img = np.asarray(Image.fromarray(img, mode="F").resize((new_w, new_h), method), dtype=np.float32)
        else:
            img = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c]), mode="F")
                                       .resize((new_w, new_h), method)) for c in range(3)], axis=-1).astype(np.float32)
    return _centre(img, box_w, box_h)


def _centre(img: np.ndarray, box_w: int, box_h: int) -> np.ndarray:
    """The middle `box_w` x `box_h` of an image larger than its box (rows and columns cut evenly)."""
    h, w = img.shape[:2]
    top, left = max(0, (h - box_h) // 2), max(0, (w - box_w) // 2)
    return img[top:top + box_h, left:left + box_w]


def compose(layout: FilmLayout, images: list[BoxImage], *, dpi: int) -> np.ndarray:
    """The film as 8-bit brightness, (H, W) grayscale or (H, W, 3) when any image is in color."""
    width, height = film_pixels(layout.film_size, layout.orientation, dpi)
    color = any(b.pixels.ndim == 3 for b in images)
    lo, hi = layout.min_density, layout.max_density
    border = float(brightness_of_od(density_od(layout.border_density, min_density=lo, max_density=hi)))
    empty = float(brightness_of_od(density_od(layout.empty_image_density, min_density=lo, max_density=hi)))
    film = np.full((height, width, 3) if color else (height, width), border, dtype=np.float32)
    annot_h = int(dpi * 0.35) if layout.annotations else 0
    area_h = height - annot_h
    by_pos = {b.position: b for b in images}
    d_lo, d_hi = lo / 100, hi / 100
    for box in layout.display_format.boxes():
        x0, y0 = round(box.x * width), round(box.y * area_h)
        x1, y1 = round((box.x + box.width) * width), round((box.y + box.height) * area_h)
        bw, bh = x1 - x0, y1 - y0
        film[y0:y1, x0:x1] = empty
        item = by_pos.get(box.position)
        if item is not None:
            lut = item.lut or layout.lut
            p = lut.apply(item.pixels) if lut else item.pixels
            mag = item.magnification or layout.magnification
            req_px = round(item.requested_width_mm / 25.4 * dpi) if item.requested_width_mm else None
            fitted = _fit(p, bw, bh, mag, req_px, item.crop)
            od = d_lo + (1.0 - fitted) * (d_hi - d_lo)  # P-value 1 prints at Min Density
            bright = np.asarray(brightness_of_od(od))
            if color and bright.ndim == 2:
                bright = np.repeat(bright[..., None], 3, axis=2)
            fh, fw = bright.shape[:2]
            oy, ox = y0 + (bh - fh) // 2, x0 + (bw - fw) // 2
            film[oy:oy + fh, ox:ox + fw] = bright
        if layout.trim:  # a thin frame around each box, as a trimmed sheet shows
            film[y0:y1, [x0, x1 - 1]] = 0.5
            film[[y0, y1 - 1], x0:x1] = 0.5
    out = (film * 255.0 + 0.5).astype(np.uint8)
    if annot_h:
        out = _draw_annotations(out, layout.annotations, area_h, annot_h)
    return out


@functools.cache
def _annotation_face() -> tuple[str, int] | None:
    """(path, face index) of the annotation font, looked up once; None: Pillow's built-in font."""
    # Pillow looks a missing path's file name up in the system font folders; font.path is where it found it.
    for path in (CJK_FONT, *CJK_FONT_ELSEWHERE):
        try:
            for index in range(16):  # a .ttc has a handful of faces; an index past the last raises OSError
                font = ImageFont.truetype(path, 12, index=index)
                if font.getname()[0] == CJK_FACE:
                    return str(font.path), index
        except OSError:
            continue
    try:
        latin = str(ImageFont.truetype(LATIN_FONT, 12).path)
    except OSError:
        log.warning("annotation fonts %s and %s missing: annotations in Pillow's built-in font, Latin only",
                    CJK_FONT, LATIN_FONT)
        return None
    log.warning("annotation font %s (%s, Debian fonts-noto-cjk) missing: Chinese annotations print as boxes",
                CJK_FONT, CJK_FACE)
    return latin, 0


@functools.lru_cache(maxsize=64)  # a film uses one size per (dpi, text length); few distinct sizes
def annotation_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    face = _annotation_face()
    if face is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(face[0], size, index=face[1])


# One FreeType face is shared by all renders; render_job runs in worker threads and Pillow gives no
# promise that drawing with the same face from two threads at once is safe.
_font_lock = threading.Lock()


def _line_height(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return ascent + descent
    box = font.getbbox("Ag")
    return int(box[3] - box[1]) + 2


def wrap_text(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy lines no wider than `width`: break at a space when the line has one, else between any two
    characters (Chinese has no spaces, and a long ID must not run off the sheet either)."""
    lines: list[str] = []
    line = ""
    for ch in text:
        if not line and ch == " ":
            continue  # a line never starts with the space it was broken at
        if font.getlength(line + ch) <= width or not line:
            line += ch
            continue
        cut = line.rfind(" ")
        if ch != " " and cut > 0:
            lines.append(line[:cut].rstrip())
            line = line[cut + 1:] + ch
        else:
            lines.append(line.rstrip())
            line = "" if ch == " " else ch
    if line.strip():
        lines.append(line.rstrip())
    return [ln for ln in lines if ln]


def _ellipsize(line: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    while line and font.getlength(line + ELLIPSIS) > width:
        line = line[:-1]
    return line.rstrip() + ELLIPSIS


def fit_annotation(text: str, width: int, height: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont,
                                                                 list[str]]:
    """Font and lines for `text` in a width x height strip: the largest size from half the strip height
    down to under a third at which the wrapped text fits; past that, the smallest size, cut with an ellipsis."""
    largest = max(6, height // 2)
    smallest = min(largest, max(6, int(height * 0.28)))
    for size in range(largest, smallest - 1, -1):
        font = annotation_font(size)
        lines = wrap_text(text, font, width)
        if len(lines) * _line_height(font) <= height:
            return font, lines
    font = annotation_font(smallest)
    lines = wrap_text(text, font, width)
    keep = max(1, height // _line_height(font))
    if len(lines) > keep:
        lines = lines[:keep - 1] + [_ellipsize(lines[keep - 1], font, width)]
    return font, lines


def _draw_annotations(film: np.ndarray, texts: list[str], top: int, height: int) -> np.ndarray:
    img = Image.fromarray(film)
    draw = ImageDraw.Draw(img)
    white = 255 if film.ndim == 2 else (255, 255, 255)
    draw.rectangle((0, top, film.shape[1], top + height), fill=0 if film.ndim == 2 else (0, 0, 0))
    margin = max(2, height // 5)
    with _font_lock:
        font, lines = fit_annotation("   ".join(t for t in texts if t), film.shape[1] - 2 * margin, height)
        line_h = _line_height(font)
        y = top + max(0, (height - line_h * len(lines)) // 2)
        for line in lines:
            draw.text((margin, y), line, fill=white, font=font)
            y += line_h
    return np.asarray(img)


def preview(film: np.ndarray, max_side: int) -> np.ndarray:
    """A smaller copy for the API (PNG preview), keeping the aspect ratio."""
    h, w = film.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return film
    img = Image.fromarray(film).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    return np.asarray(img)
