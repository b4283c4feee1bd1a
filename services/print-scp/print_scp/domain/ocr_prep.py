"""Getting burned-in text ready for OCR: text dark on white, sharp edges, a size Tesseract reads well.

Modalities burn identifiers in as overlay text at (or near) the extreme of the grey scale: white
on a dark image, or black on a light one after MONOCHROME1 or REVERSE polarity. Thresholding at
that extreme removes the anatomy behind the text.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

TARGET_SIDE = 1400  # Tesseract reads 10-60 px high glyphs best; modality text lands there at this size


def text_masks(image: np.ndarray) -> list[np.ndarray]:
    """Binary images (0 = ink, 255 = paper) to OCR, most likely first: bright text, then dark text."""
    img = image.astype(np.float32)
    hi = float(np.percentile(img, 99.8))
    lo = float(np.percentile(img, 0.2))
    # Soft masks at the source resolution (a ramp over the text's anti-aliased edge), then resized:
    # resampling the grey image first would smear anatomy into the text's range.
    t_hi = max(hi - 24.0, 150.0)
    t_lo = min(lo + 24.0, 105.0)
    bright = np.clip((img - (t_hi - 24.0)) / 24.0, 0.0, 1.0)
    dark = np.clip(((t_lo + 24.0) - img) / 24.0, 0.0, 1.0)
    # The extreme holding the text first; the other one second: it shows the same text inverted
    # (white on the black background), which Tesseract sometimes reads better. A mask with no
    # text-like ink at all is skipped: noise there costs Tesseract seconds for nothing.
    order = (bright, dark) if float(img.mean()) < 128 else (dark, bright)
    masks = [_scaled(order[0])] if _without_speckle(order[0]) is not None else []
    return masks + [_scaled(order[1])]


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
