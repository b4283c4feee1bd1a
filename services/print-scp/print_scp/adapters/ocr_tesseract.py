"""OCR with Tesseract (Debian `tesseract-ocr`), one subprocess per image: blocking, run in a thread."""

from __future__ import annotations

import io
import subprocess

import numpy as np
from PIL import Image

from print_scp.domain.ocr_prep import text_masks

# Tesseract languages the film OCR reads with: what it looks for on a film is a patient ID and an accession
# number, Latin letters and digits (the image installs exactly these, tesseract-ocr-<lang>: deploy/docker).
LANGUAGES = "eng"


class OcrUnavailable(RuntimeError):
    """Tesseract is missing or failed: the film goes to review rather than guessing."""


def _tesseract(binary: str, image: np.ndarray, timeout: float) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    try:
        # psm 11: sparse text in no particular order, as overlays sit in the image corners. (A character
        # whitelist was tried: it stops "7" being read as "/7" but costs a quarter of the films: OCR bench.)
        done = subprocess.run([binary, "stdin", "stdout", "--psm", "11", "-l", LANGUAGES], input=buf.getvalue(),
                              capture_output=True, timeout=timeout, check=False,
                              env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OcrUnavailable(f"tesseract: {exc}") from exc
    if done.returncode != 0:
        raise OcrUnavailable(f"tesseract exit {done.returncode}: {done.stderr.decode(errors='replace')[:200]}")
    return done.stdout.decode("utf-8", errors="replace")


def read_text(images: list[np.ndarray], *, binary: str = "/usr/bin/tesseract", timeout: float = 20.0,
              enough: callable | None = None) -> str:  # type: ignore[valid-type]
    """Text of all images; a mask's text is added until `enough(text)` says the identifiers are in."""
    texts: list[str] = []
    for image in images:
        for mask in text_masks(image):
            texts.append(_tesseract(binary, mask, timeout))
            if enough is not None and enough("\n".join(texts)):
                return "\n".join(texts)
    return "\n".join(texts)
