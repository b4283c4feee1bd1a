"""Rendering a film for real: Chinese annotations readable on the PNG, Pixel Aspect Ratio honoured.

Jobs are built as an SCU's N-CREATE/N-SET/N-ACTION would build them (PrintAssociation), rendered with
render_job, and judged on the PNG it returns: by Tesseract's Simplified Chinese model (Debian
tesseract-ocr-chi-sim, installed by `make test`) and by measuring shapes on the composed sheet.
"""

from __future__ import annotations

import io
import logging
import subprocess

import numpy as np
import pytest
from imaging_testing import print_kit as tk
from PIL import Image
from print_scp.domain import render
from print_scp.domain.film_output import render_job
from print_scp.domain.pixels import check_image_item, p_values, pixel_aspect_ratio, square_pixels
from print_scp.domain.print_session import FilmJob, PrintAssociation
from print_scp.domain.statuses import INVALID_ATTRIBUTE_VALUE, PrintFailure
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import generate_uid

PIXEL_ASPECT_RATIO = 0x00280034
DPI = 150
FILM = "8INX10IN"  # 1200 x 1500 pixels at DPI


def _job(items: list[Dataset], annotations: tuple[str, ...] = ()) -> FilmJob:
    """One film box with its image boxes (and annotation boxes) set, printed."""
    pa = PrintAssociation(calling_ae="T", called_ae="PRINT_SCP", peer="t", annotation_class=True)
    s, b = generate_uid(), generate_uid()
    pa.create_film_session(s, tk.session_ds("1.2.3"))
    box_attrs: dict = {"size": FILM}
    if annotations:
        box_attrs["AnnotationDisplayFormatID"] = "LABEL"
    _, rsp, _ = pa.create_film_box(b, tk.film_box_ds(s, "STANDARD\\1,1", **box_attrs), color=False)
    for i, (ref, item) in enumerate(zip(rsp.ReferencedImageBoxSequence, items, strict=False)):
        pa.set_image_box(ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID, tk.image_box_ds(i + 1, item))
    for ref, text in zip(getattr(rsp, "ReferencedBasicAnnotationBoxSequence", []), annotations, strict=False):
        ann = Dataset()
        ann.AnnotationPosition = annotations.index(text) + 1
        ann.TextString = text
        pa.set_annotation_box(ref.ReferencedSOPInstanceUID, ann)
    [job], _, _ = pa.print_film_box(b)
    return job


def _film_png(job: FilmJob) -> np.ndarray:
    """The sheet as the API serves it (PNG), at full size."""
    rendered = render_job(job, dpi=DPI, preview_max=10_000)
    return np.asarray(Image.open(io.BytesIO(rendered.png)))


def _with_aspect(item: Dataset, raw: bytes) -> Dataset:
    """Pixel Aspect Ratio as it arrives off the wire: undecoded bytes, however malformed."""
    item[Tag(PIXEL_ASPECT_RATIO)] = RawDataElement(Tag(PIXEL_ASPECT_RATIO), "IS", len(raw), raw, 0, True, True)
    return item


def _strip(film: np.ndarray) -> np.ndarray:
    """The annotation strip at the bottom of the sheet (render.compose gives it 0.35 inch)."""
    return film[film.shape[0] - int(DPI * 0.35):]


def _ocr_chinese(gray: np.ndarray) -> str:
    """Text Tesseract reads in one line of light text on dark (the strip), with spaces removed."""
    page = Image.fromarray(255 - gray)  # Tesseract reads dark text on light paper best
    page = Image.fromarray(np.pad(np.asarray(page), 20, constant_values=255))
    buf = io.BytesIO()
    page.save(buf, format="PNG")
    done = subprocess.run(["tesseract", "stdin", "stdout", "--psm", "7", "-l", "chi_sim"], input=buf.getvalue(),
                          capture_output=True, check=False, env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, f"tesseract with chi_sim (Debian tesseract-ocr-chi-sim): {done.stderr[-300:]!r}"
    return "".join(done.stdout.decode("utf-8").split())


# ---- (a) Chinese annotations -------------------------------------------------------------------

def test_chinese_annotation_is_readable_on_the_film() -> None:
    film = _film_png(_job([tk.to_item(tk.anatomy(64, 1))], ("张三 胸部CT",)))
    assert film.shape == (1500, 1200)
    text = _ocr_chinese(_strip(film))
    assert "张三" in text and "胸部" in text and "CT" in text.upper(), text


def test_chinese_glyphs_are_not_the_missing_glyph_box() -> None:
    """Without OCR: each Han character draws differently, where a font lacking them draws one box for all."""
    font = render.annotation_font(26)
    masks = [np.asarray(font.getmask(ch)) for ch in "张三胸部"]
    assert all(m.any() for m in masks)
    assert len({m.tobytes() for m in masks}) == 4


def test_long_annotation_stays_on_the_sheet() -> None:
    text = "张三 胸部CT 增强 病人ID: P00012345 检查号: A2026000101 " * 4
    font, lines = render.fit_annotation(text, 1000, 52)
    assert len(lines) > 1 and all(font.getlength(line) <= 1000 for line in lines)
    assert font.size < render.annotation_font(26).size  # shrunk before it wrapped
    # Two annotation boxes of 64 characters each (Text String is LO): twice the width of the sheet
    first, second = text[:64], ("第二个注释 " + "影像科" * 30)[:64]
    film = _film_png(_job([tk.to_item(tk.anatomy(64, 1))], (first, second)))
    strip = _strip(film)
    lit_cols = np.nonzero((strip > 128).any(axis=0))[0]
    lit_rows = np.nonzero((strip > 128).any(axis=1))[0]
    assert lit_cols.size and lit_cols.max() < film.shape[1] - 5  # ends inside the margin, not cut at the edge
    assert lit_rows.max() < strip.shape[0] - 1


def test_missing_cjk_font_falls_back_to_latin_and_says_so_once(monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(render, "CJK_FONT", "/nonexistent/no-such-cjk-font.ttc")
    render._annotation_face.cache_clear()
    render.annotation_font.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=render.__name__):
            for _ in range(2):
                film = _film_png(_job([tk.to_item(tk.anatomy(64, 1))], ("CT CHEST 2026",)))
                assert (_strip(film) > 128).any()
        warnings = [r for r in caplog.records if "no-such-cjk-font" in r.getMessage()]
        assert len(warnings) == 1
        assert render.annotation_font(20).getname()[0] == "DejaVu Sans"
    finally:
        monkeypatch.undo()
        render._annotation_face.cache_clear()
        render.annotation_font.cache_clear()
    assert render.annotation_font(20).getname()[0] == "Noto Sans CJK SC"


# ---- (b) Pixel Aspect Ratio ----------------------------------------------------------------------

def _ellipse(rows: int, cols: int) -> np.ndarray:
    """A disc filling most of a rows x cols image: a circle when pixels are rows/cols times wider than tall."""
    y, x = np.mgrid[0:rows, 0:cols]
    inside = ((y + 0.5 - rows / 2) / (0.4 * rows)) ** 2 + ((x + 0.5 - cols / 2) / (0.4 * cols)) ** 2 <= 1
    return inside.astype(np.float32) * 0.9


def _blob_width_over_height(film: np.ndarray) -> float:
    lit = film > 128
    cols, rows = np.nonzero(lit.any(axis=0))[0], np.nonzero(lit.any(axis=1))[0]
    return (cols.max() - cols.min() + 1) / (rows.max() - rows.min() + 1)


@pytest.mark.parametrize(("rows", "cols", "ratio"), [(240, 120, b"1\\2"), (120, 240, b"2\\1"), (200, 150, b"3\\4")])
def test_non_square_pixels_print_a_circle_round(rows: int, cols: int, ratio: bytes) -> None:
    disc = _ellipse(rows, cols)
    film = _film_png(_job([_with_aspect(tk.to_item(disc), ratio)]))
    assert _blob_width_over_height(film) == pytest.approx(1.0, abs=0.03)
    # The same pixels without the ratio print as stored: the measure tells the two apart.
    plain = _film_png(_job([tk.to_item(disc)]))
    assert _blob_width_over_height(plain) == pytest.approx(cols / rows, abs=0.03)


def test_square_pixels_keeps_detail_color_and_memory_bound() -> None:
    gray = np.random.default_rng(1).random((100, 50), dtype=np.float32)
    assert square_pixels(gray, (1, 2)).shape == (100, 100)  # the coarse axis is stretched, nothing dropped
    assert square_pixels(gray, (3, 3)) is gray and square_pixels(gray, None) is gray
    rgb = np.stack([gray, gray * 0.5, gray * 0.25], axis=-1)
    out = square_pixels(rgb, (2, 1))
    assert out.shape == (200, 50, 3) and out.dtype == np.float32
    assert np.allclose(out[..., 1], out[..., 0] * 0.5, atol=1e-5)
    tall = square_pixels(gray, (1000, 1))  # 100 000 rows would not fit: the fine axis shrinks instead
    assert max(tall.shape) <= 8192 and tall.shape[1] >= 1
    color = tk.color_item(_ellipse(60, 30))
    assert p_values(_with_aspect(color, b"1\\2"), color=True).shape == (60, 60, 3)


# ---- (c) malformed Pixel Aspect Ratio refused at N-SET -------------------------------------------

@pytest.mark.filterwarnings("ignore:(Invalid value for VR IS|Value .* is not valid for elements with a VR of IS)")
@pytest.mark.parametrize("raw", [b"1\\0", b"0\\1", b"-1\\2", b"1.5\\2", b"a\\b", b"2 ", b"1\\2\\3", b"1\\ "])
def test_malformed_pixel_aspect_ratio_is_refused(raw: bytes) -> None:
    item = _with_aspect(tk.to_item(_ellipse(20, 10)), raw)
    with pytest.raises(PrintFailure) as failure:
        check_image_item(item, color=False)
    assert failure.value.status == INVALID_ATTRIBUTE_VALUE
    assert failure.value.offending == [PIXEL_ASPECT_RATIO]
    assert "PixelAspectRatio" in failure.value.comment and len(failure.value.comment) <= 64
    # and so the image box N-SET fails with it, leaving the box empty
    pa = PrintAssociation(calling_ae="T", called_ae="PRINT_SCP", peer="t")
    s, b = generate_uid(), generate_uid()
    pa.create_film_session(s, tk.session_ds())
    _, rsp, _ = pa.create_film_box(b, tk.film_box_ds(s), color=False)
    ref = rsp.ReferencedImageBoxSequence[0]
    with pytest.raises(PrintFailure) as at_nset:
        pa.set_image_box(ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID, tk.image_box_ds(1, item))
    assert at_nset.value.status == INVALID_ATTRIBUTE_VALUE
    assert pa.image_boxes[ref.ReferencedSOPInstanceUID].image is None


@pytest.mark.parametrize(("raw", "expected"), [(b"1\\2", (1, 2)), (b"+4\\03", (4, 3)), (b" 1\\1 ", (1, 1)),
                                               (b"", None)])
def test_wellformed_pixel_aspect_ratio_is_accepted(raw: bytes, expected: tuple[int, int] | None) -> None:
    item = _with_aspect(tk.to_item(_ellipse(20, 10)), raw)
    check_image_item(item, color=False)
    assert pixel_aspect_ratio(item) == expected
    assert pixel_aspect_ratio(tk.to_item(_ellipse(20, 10))) is None
