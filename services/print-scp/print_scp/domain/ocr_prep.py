"""Getting burned-in text ready for OCR: text dark on white, sharp edges, a size Tesseract reads well.

Modalities burn identifiers in as overlay text: white on a dark image, or black on a light one
after MONOCHROME1 or REVERSE polarity, often over anatomy. A morphological top-hat separates the
thin strokes from whatever lies behind them (see `text_masks`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

TARGET_SIDE = 1400  # Tesseract reads 10-60 px high glyphs best; modality text lands there at this size


def _rank(img: np.ndarray, size: int, reduce: np.ufunc) -> np.ndarray:
    """Separable min/max filter (square window): `size` shifted views per axis, O(size) per pixel."""
    r = size // 2
    out = img
    for axis in (0, 1):
        padded = np.pad(out, [(r, r) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        n = out.shape[axis]
        views = [padded[i:i + n] if axis == 0 else padded[:, i:i + n] for i in range(size)]
        out = reduce.reduce(views)
    return out


def _opening(img: np.ndarray, size: int) -> np.ndarray:
    return _rank(_rank(img, size, np.minimum), size, np.maximum).astype(np.float32)


def _closing(img: np.ndarray, size: int) -> np.ndarray:
    return _rank(_rank(img, size, np.maximum), size, np.minimum).astype(np.float32)


def text_masks(image: np.ndarray) -> list[np.ndarray]:
    """Binary images (0 = ink, 255 = paper) to OCR, most likely first.

    Overlay glyphs are thin strokes brighter (or darker) than whatever lies around them, so a
    morphological top-hat (the image minus its opening, or its closing minus the image) keeps
    them at full contrast over any background, anatomy included, and keeps their anti-aliased
    edges, which a global threshold cuts.
    """
    img = image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)
    size = max(5, (min(img.shape) // 100) | 1)  # wider than a stroke, narrower than a glyph
    f = img.astype(np.float32)
    bright = np.clip((f - _opening(img, size) - 50.0) / 40.0, 0.0, 1.0)
    dark = np.clip((_closing(img, size) - f - 50.0) / 40.0, 0.0, 1.0)
    order = (bright, dark) if float(img.mean()) < 128 else (dark, bright)
    # An image with no text-like strokes at all is not sent to Tesseract: nothing to read there.
    return [_scaled(m) for m in order if _without_speckle(m) is not None]


def _without_speckle(ink: np.ndarray, block: int = 8, min_ink: int = 5) -> np.ndarray | None:
    """The mask, or None when it holds nothing text-like (no dense ink, or a large bright region).

    Glyphs put several ink pixels into every block they cross; an image's background or a bright
    organ passing the threshold covers a large share of blocks instead, and costs Tesseract seconds.
    """
    h, w = ink.shape
    hb, wb = h // block, w // block
    if hb == 0 or wb == 0:
        return ink
    core = ink[:hb * block, :wb * block] >= 0.5
    dense = core.reshape(hb, block, wb, block).sum(axis=(1, 3)) >= min_ink
    if not dense.any() or dense.mean() > 0.25:  # nothing, or a large bright region rather than text
        return None
    # Only the decision uses the blocks: masking by them cut glyph edges and cost accuracy.
    return ink


def _scaled(ink: np.ndarray) -> np.ndarray:
    h, w = ink.shape
    scale = TARGET_SIDE / max(h, w)
    if not 0.75 <= scale <= 1.5:
        ink = np.asarray(Image.fromarray(ink, mode="F").resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC))
    return np.where(ink >= 0.5, 0, 255).astype(np.uint8)
