"""Chinese text end to end: a GB18030 and an ISO_IR 192 print client's session label and annotation
come back intact from film.dcm and show on the PNG preview."""

from __future__ import annotations

import asyncio
import io
import subprocess

import numpy as np
import pytest
from PIL import Image
from print_scp import testkit as tk
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

ANNOTATION = "1.2.840.10008.5.1.1.15"
LABEL, NOTE = "张三 胸部CT", "右肺结节随访"


def _print_with_annotation(port: int, charset: str) -> str:
    assoc = tk.print_ae((ANNOTATION,)).associate("127.0.0.1", port, ae_title="PRINT_SCP")
    assert assoc.is_established
    try:
        s, box_uid = generate_uid(), generate_uid()
        session = tk.session_ds(label=LABEL, SpecificCharacterSet=charset)
        assert assoc.send_n_create(session, tk.FILM_SESSION, s, meta_uid=tk.GRAY_META)[0].Status == 0
        st, box = assoc.send_n_create(tk.film_box_ds(s, size="8INX10IN", AnnotationDisplayFormatID="LABEL"),
                                      tk.FILM_BOX, box_uid, meta_uid=tk.GRAY_META)
        assert st.Status == 0
        text = Dataset()
        text.SpecificCharacterSet = charset
        text.AnnotationPosition = 1
        text.TextString = NOTE
        ann = box.ReferencedBasicAnnotationBoxSequence[0].ReferencedSOPInstanceUID
        assert assoc.send_n_set(text, ANNOTATION, ann, meta_uid=ANNOTATION)[0].Status == 0
        ref = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
        item = tk.to_item(tk.anatomy(256, 3), bits=12)
        assert assoc.send_n_set(tk.image_box_ds(1, item), tk.GRAY_BOX, ref, meta_uid=tk.GRAY_META)[0].Status == 0
        assert assoc.send_n_action(None, 1, tk.FILM_BOX, box_uid, meta_uid=tk.GRAY_META)[0].Status == 0
        return box_uid
    finally:
        assoc.release()


def _read_chinese(strip: np.ndarray) -> str:
    page = np.pad(255 - strip, 20, constant_values=255)  # dark text on light paper for Tesseract
    buf = io.BytesIO()
    Image.fromarray(page).save(buf, format="PNG")
    done = subprocess.run(["tesseract", "stdin", "stdout", "--psm", "7", "-l", "chi_sim"], input=buf.getvalue(),
                          capture_output=True, check=False, env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-300:]
    return "".join(done.stdout.decode().split())


@pytest.mark.parametrize("charset", ["ISO_IR 192", "GB18030"])
async def test_chinese_label_and_annotation_survive_to_film_dcm_and_png(print_app, charset: str) -> None:
    box_uid = await asyncio.to_thread(_print_with_annotation, print_app.port, charset)
    [film] = await print_app.wait_films("film_box_uid = $1", box_uid)
    assert film["session_label"] == LABEL
    headers = print_app.token("radiologist")
    dcm = await print_app.client.get(f"/api/print/films/{film['id']}/film.dcm", headers=headers)
    ds = dcmread(io.BytesIO(dcm.content))
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.FilmSessionLabel == LABEL and f"annotation 1: {NOTE}" in ds.ImageComments
    png = await print_app.client.get(f"/api/print/films/{film['id']}/image.png", headers=headers)
    preview = np.asarray(Image.open(io.BytesIO(png.content)).convert("L"))
    strip = preview[preview.shape[0] - round(preview.shape[0] / 10 * 0.35):]  # 0.35 in of the 10 in sheet
    assert NOTE in _read_chinese(strip)
