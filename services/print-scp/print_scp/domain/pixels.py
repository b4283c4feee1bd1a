"""Preformatted image box pixels (PS3.3 C.13.5): checked, then turned into P-values in 0..1.

Grayscale boxes carry MONOCHROME1/2 with 8 bits stored in 8 allocated, or 12 (or 16) stored in 16;
color boxes carry RGB, 8 bits, usually planar configuration 1 (PS3.3 C.13.5.1). A P-value of 1 is
the brightest the film can show (least dense), 0 the darkest. Pixels that are not square (Pixel Aspect
Ratio, WS/T 597-2018 Table 4) are resampled to square ones here, so every later step may assume them.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from print_scp.domain.statuses import INVALID_ATTRIBUTE_VALUE, MISSING_ATTRIBUTE_VALUE, PrintFailure

_REQUIRED = ("SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
             "BitsStored", "HighBit", "PixelRepresentation", "PixelData")
MAX_IMAGE_SIDE = 8192  # larger than any film scanner's output; protects memory
_IS_INTEGER = re.compile(r"\s*\+?\d{1,10}\s*")  # IS (PS3.5 6.2): at most 12 characters, here unsigned


def _tag_of(keyword: str) -> list[int]:
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    return [int(tag)] if tag is not None else []


def pixel_aspect_ratio(item: Dataset) -> tuple[int, int] | None:
    """Pixel Aspect Ratio (0028,0034) as (row spacing, column spacing), e.g. (1, 2) for pixels twice as
    wide as tall; None when absent or empty (square pixels). A value that is not two positive integers
    is refused: guessing would print anatomy stretched or squashed."""
    if "PixelAspectRatio" not in item:
        return None
    try:
        value = item["PixelAspectRatio"].value  # pydicom keeps an IS it cannot parse as str or float
    except (ValueError, TypeError):  # pydicom set to raise on invalid values
        value = "?"
    if value is None or value == "" or value == []:
        return None
    values = [value] if isinstance(value, str | int | float) else list(value)
    texts = [str(v) for v in values]
    if len(texts) != 2 or not all(_IS_INTEGER.fullmatch(t) for t in texts) or any(int(t) < 1 for t in texts):
        raise PrintFailure(INVALID_ATTRIBUTE_VALUE, f"image: PixelAspectRatio {'/'.join(texts)!r} is not two "
                           "positive integers", _tag_of("PixelAspectRatio"))
    return int(texts[0]), int(texts[1])


def square_pixels(p: np.ndarray, ratio: tuple[int, int] | None) -> np.ndarray:
    """Resample P-values of pixels `ratio` = (row spacing, column spacing) to square pixels.

    The axis with the coarser spacing is stretched, so no detail is thrown away; when that would exceed
    MAX_IMAGE_SIDE the finer axis is shrunk instead. Bilinear: the film box fit resamples again anyway.
    """
    if ratio is None or ratio[0] == ratio[1]:
        return p
    rows, cols = p.shape[:2]
    v, h = ratio
    unit = min(v, h)
    new_rows, new_cols = rows * v / unit, cols * h / unit
    shrink = min(1.0, MAX_IMAGE_SIDE / max(new_rows, new_cols))
    size = (max(1, round(new_cols * shrink)), max(1, round(new_rows * shrink)))
    if size == (cols, rows):
        return p

    def resample(plane: np.ndarray) -> np.ndarray:
        img = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
        return np.asarray(img.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)

    if p.ndim == 2:
        return resample(p)
    return np.stack([resample(p[..., c]) for c in range(p.shape[2])], axis=-1)


def check_image_item(item: Dataset, *, color: bool) -> None:
    """Refuse an image sequence item that cannot be printed as described; say which attribute."""
    for keyword in _REQUIRED:
        if keyword not in item or item[keyword].value in (None, b"", ""):
            raise PrintFailure(MISSING_ATTRIBUTE_VALUE, f"image: {keyword} missing", _tag_of(keyword))
    spp, pi = int(item.SamplesPerPixel), str(item.PhotometricInterpretation).strip()
    rows, cols = int(item.Rows), int(item.Columns)
    ba, bs, hb = int(item.BitsAllocated), int(item.BitsStored), int(item.HighBit)

    def bad(keyword: str, why: str) -> PrintFailure:
        return PrintFailure(INVALID_ATTRIBUTE_VALUE, f"image: {keyword} {why}", _tag_of(keyword))

    if color:
        if spp != 3:
            raise bad("SamplesPerPixel", "must be 3 for a color image box")
        if pi != "RGB":
            raise bad("PhotometricInterpretation", "must be RGB for a color image box")
        if ba != 8 or bs != 8:
            raise bad("BitsAllocated", "color images are 8 bit")
    else:
        if spp != 1:
            raise bad("SamplesPerPixel", "must be 1 for a grayscale image box")
        if pi not in ("MONOCHROME1", "MONOCHROME2"):
            raise bad("PhotometricInterpretation", "must be MONOCHROME1 or MONOCHROME2")
        if (ba, bs) not in ((8, 8), (16, 12), (16, 16)):
            raise bad("BitsStored", f"{bs} in {ba} allocated is not 8/8, 12/16 or 16/16")
    if hb != bs - 1:
        raise bad("HighBit", "must be Bits Stored - 1")
    if int(item.PixelRepresentation) != 0:
        raise bad("PixelRepresentation", "must be 0 (unsigned)")
    if not (1 <= rows <= MAX_IMAGE_SIDE and 1 <= cols <= MAX_IMAGE_SIDE):
        raise bad("Rows", f"{rows}x{cols} outside 1..{MAX_IMAGE_SIDE}")
    expected = rows * cols * spp * (ba // 8)
    got = len(item.PixelData)
    if got < expected or got > expected + 1:  # one pad byte keeps odd lengths even
        raise bad("PixelData", f"has {got} bytes, {rows}x{cols}x{spp}x{ba // 8} needs {expected}")
    if color and "PlanarConfiguration" in item and int(item.PlanarConfiguration) not in (0, 1):
        raise bad("PlanarConfiguration", "must be 0 or 1")
    pixel_aspect_ratio(item)


def p_values(item: Dataset, *, color: bool, reverse: bool = False) -> np.ndarray:
    """The image as float32 P-values in 0..1: (rows, cols) grayscale or (rows, cols, 3) RGB, in square
    pixels (so rows and columns differ from the item's when its Pixel Aspect Ratio is not 1:1)."""
    rows, cols = int(item.Rows), int(item.Columns)
    raw = item.PixelData
    arr: np.ndarray
    if color:
        data = np.frombuffer(raw, dtype=np.uint8, count=rows * cols * 3)
        if int(getattr(item, "PlanarConfiguration", 1)) == 1:  # RRR..GGG..BBB (the print default)
            arr = data.reshape(3, rows, cols).transpose(1, 2, 0)
        else:
            arr = data.reshape(rows, cols, 3)
        out = arr.astype(np.float32) / 255.0
    else:
        ba, bs = int(item.BitsAllocated), int(item.BitsStored)
        dtype = np.uint8 if ba == 8 else np.dtype("<u2")
        arr = np.frombuffer(raw, dtype=dtype, count=rows * cols).reshape(rows, cols)
        if ba == 16 and bs < 16:
            arr = np.bitwise_and(arr, (1 << bs) - 1)  # bits above High Bit may carry overlays; not image
        out = arr.astype(np.float32) / float((1 << bs) - 1)
        if str(item.PhotometricInterpretation).strip() == "MONOCHROME1":
            out = 1.0 - out
    if reverse:  # Polarity REVERSE (2020,0020): print the image as its negative
        out = 1.0 - out
    return square_pixels(out, pixel_aspect_ratio(item))
