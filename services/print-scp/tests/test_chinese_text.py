"""Chinese text end to end: a GB18030 and an ISO_IR 192 print client's session label and annotation
come back intact from film.dcm and show on the PNG preview."""

from __future__ import annotations

import asyncio
import io
import subprocess

import numpy as np
import pytest
from imaging_testing import print_kit as tk
from PIL import Image
from pydicom import dcmread

LABEL, NOTE = "张三 胸部CT", "右肺结节随访"


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
    item = tk.to_item(tk.anatomy(256, 3), bits=12)
    box_uid = await asyncio.to_thread(tk.print_annotated, print_app.port, item, label=LABEL, text=NOTE,
                                      charset=charset, film_size="8INX10IN")
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
