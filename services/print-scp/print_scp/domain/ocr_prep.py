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
    light_background = float(img.mean()) >= 128
    order = [dark, bright] if light_background else [bright, dark]
    return [_scaled(m) for m in order]


def _scaled(ink: np.ndarray) -> np.ndarray:
    h, w = ink.shape
    scale = TARGET_SIDE / max(h, w)
    if not 0.75 <= scale <= 1.5:
        ink = np.asarray(Image.fromarray(ink, mode="F").resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC))
    return np.where(ink >= 0.5, 0, 255).astype(np.uint8)
