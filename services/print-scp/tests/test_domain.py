"""Domain logic without network or database: layouts, matching, OCR preparation, rendering, spool."""

from __future__ import annotations

import numpy as np
import pytest
from imaging_testing import print_kit as tk
from print_scp.domain import spool
from print_scp.domain import statuses as st
from print_scp.domain.film_output import film_dicom, render_job
from print_scp.domain.layout import LayoutError, film_pixels, parse_display_format
from print_scp.domain.print_session import PrintAssociation
from print_scp.domain.render import BoxImage, FilmLayout, compose
from print_scp.domain.sharing import answer_hash, answer_matches, expected_answer, mask_name
from pydicom.uid import generate_uid


def test_display_formats() -> None:
    std = parse_display_format("STANDARD\\3,2")
    assert std.box_count == 6 and [b.position for b in std.boxes()] == [1, 2, 3, 4, 5, 6]
    assert std.boxes()[3].x == 0 and std.boxes()[3].y == 0.5  # second row starts at position 4
    row = parse_display_format(["ROW", "2,1"])
    assert [(b.x, b.y, b.width) for b in row.boxes()] == [(0, 0, 0.5), (0.5, 0, 0.5), (0, 0.5, 1.0)]
    col = parse_display_format("COL\\1,2")
    assert [(b.position, b.x, b.y) for b in col.boxes()] == [(1, 0, 0), (2, 0.5, 0), (3, 0.5, 0.5)]
    for bad in ("", "GRID\\2,2", "STANDARD\\2", "STANDARD\\a,b", "ROW\\0", "STANDARD\\9,9"):
        with pytest.raises(LayoutError):
            parse_display_format(bad)
    assert film_pixels("14INX17IN", "LANDSCAPE", 100) == (1700, 1400)


def test_compose_densities_polarity_and_layout() -> None:
    white = np.ones((10, 10), dtype=np.float32)
    layout = FilmLayout(parse_display_format("STANDARD\\2,1"), "8INX10IN", border_density="WHITE",
                        empty_image_density="BLACK")
    film = compose(layout, [BoxImage(1, white)], dpi=20)
    assert film.shape == (200, 160)
    assert film[100, 40] == 255  # a P-value of 1 prints at Min Density: the brightest
    assert film[100, 120] == 0  # box 2 is empty: Empty Image Density BLACK
    dim = compose(FilmLayout(parse_display_format("STANDARD\\1,1"), "8INX10IN", max_density=150), [
        BoxImage(1, np.zeros((10, 10), dtype=np.float32))], dpi=20)
    assert 100 < dim[100, 80] < 200  # a lower Max Density prints black as grey


def test_crop_keeps_the_requested_size_and_prints_the_centre() -> None:
    """Requested Decimate/Crop Behavior CROP (PS3.4 H.4.3.1.2.1.2): an image wider than its box is printed at
    its requested width and cut evenly on each side; DECIMATE (or none) shrinks the whole image into the box."""
    img = np.zeros((40, 40), dtype=np.float32)
    img[:, :10] = 1.0  # a bright band on the left edge, the rest dark
    img[18:22, 18:22] = 1.0  # a bright spot in the centre
    layout = FilmLayout(parse_display_format("STANDARD\\1,1"), "8INX10IN", border_density="WHITE")
    wide_mm = 8 * 25.4 * 2  # twice the film's width
    cropped = compose(layout, [BoxImage(1, img, requested_width_mm=wide_mm, crop=True)], dpi=20)
    shrunk = compose(layout, [BoxImage(1, img, requested_width_mm=wide_mm)], dpi=20)
    assert cropped.shape == shrunk.shape == (200, 160)
    # cropped: 40 px scaled to 320, the middle 160 x 200 printed: the left band is cut off, the spot is big
    assert cropped[100, 2] < 100 and cropped[100, 70] > 200 and cropped[100, 90] > 200
    # demagnified: the whole image, band included, spot small
    assert shrunk[100, 2] > 200 and shrunk[100, 70] < 100


def _job(items, fmt="STANDARD\\1,1", **box):  # type: ignore[no-untyped-def]
    pa = PrintAssociation(calling_ae="T", called_ae="PRINT_SCP", peer="t")
    s, b = generate_uid(), generate_uid()
    pa.create_film_session(s, tk.session_ds("1.2.3"))
    _, rsp, _ = pa.create_film_box(b, tk.film_box_ds(s, fmt, **box), color=False)
    for i, (ref, item) in enumerate(zip(rsp.ReferencedImageBoxSequence, items, strict=False)):
        pa.set_image_box(ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID, tk.image_box_ds(i + 1, item))
    [job], _, _ = pa.print_film_box(b)
    return job


def test_spool_round_trip_and_render() -> None:
    job = _job([tk.to_item(tk.anatomy(64, 1), bits=12), tk.to_item(tk.anatomy(32, 2), bits=8)], "STANDARD\\2,1",
               orientation="LANDSCAPE", size="8INX10IN")
    objects = {f"spool/images/{i}.dcm": spool.image_object_of(image) for i, image in enumerate(job.images)}
    again = spool.load(spool.manifest(job, list(objects)), objects)
    assert again.film == job.film and again.session == job.session and again.study_uids == ["1.2.3"]
    assert [i.spool_key for i in again.images] == list(objects)
    assert [i.item.PixelData for i in again.images] == [i.item.PixelData for i in job.images]
    rendered = render_job(again, dpi=50, preview_max=256)
    assert (rendered.width, rendered.height) == (500, 400)
    assert rendered.png[:4] == b"\x89PNG" and film_dicom(again, rendered.film, None)[0][128:132] == b"DICM"
    assert len(rendered.ocr_images) == 2


def test_session_print_statuses_empty_page_only_for_a_box_without_images() -> None:
    pa = PrintAssociation(calling_ae="T", called_ae="PRINT_SCP", peer="t")
    s = generate_uid()
    pa.create_film_session(s, tk.session_ds())
    _, rsp, _ = pa.create_film_box(generate_uid(), tk.film_box_ds(s, "STANDARD\\2,2"), color=False)
    ref = rsp.ReferencedImageBoxSequence[0]
    pa.set_image_box(ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID,
                     tk.image_box_ds(1, tk.to_item(tk.anatomy(16, 1))))
    jobs, status, _ = pa.print_film_session(s)  # one image of four: a partly filled sheet prints
    assert status == st.SUCCESS and len(jobs) == 1 and len(jobs[0].images) == 1
    pa.create_film_box(generate_uid(), tk.film_box_ds(s), color=False)  # a second sheet, left empty
    jobs, status, _ = pa.print_film_session(s)
    assert status == st.WARN_SESSION_EMPTY_PAGE and len(jobs) == 1


def test_error_comment_is_cut_between_words_never_inside_a_uid() -> None:
    uid = "1.2.826.0.1.3680043.8.498.12345678901234567890"
    cut = st.error_comment(f"SOP class {uid} not on this presentation context")
    assert len(cut) <= 64 and cut == "SOP class 1.2.826.0.1.3680043.8.498.12345678901234567890 not..."
    cut = st.error_comment(f"Requested Image Size 355.6 mm exceeds the box of film {uid}")
    assert cut == "Requested Image Size 355.6 mm exceeds the box of film..."
    assert st.error_comment("short\\one") == "short/one"
    assert st.error_comment("x" * 80) == "..."  # one 80-character token: nothing of it rather than a part
    assert st.PrintFailure(st.PROCESSING_FAILURE, "Pixel Data " + "9" * 70).comment == "Pixel Data..."


def test_sharing_helpers() -> None:
    assert expected_answer("phone-last4", {"phone": "+86 138-0000-1234"}) == "1234"
    assert expected_answer("id-last4", {"id_number_masked": "1101**********432X"}) == "432X"
    assert expected_answer("id-last4", {}) is None
    h = answer_hash("s1", "1234")
    assert answer_matches("s1", " 1234 ", h) and not answer_matches("s2", "1234", h)
    assert answer_matches("s1", "432x", answer_hash("s1", "432X"))
    assert mask_name("张三") == "张*" and mask_name("欧阳娜娜") == "欧**娜" and mask_name("SMITH^JOHN") == "S**** J***"
