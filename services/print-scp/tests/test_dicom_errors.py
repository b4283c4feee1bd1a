"""Bad print requests get the DIMSE status the standard gives, and never cost the association."""

from __future__ import annotations

import asyncio
import time
from io import BytesIO

import numpy as np
from imaging_testing import print_kit as tk
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom.dimse_primitives import N_SET

PRINT_JOB = "1.2.840.10008.5.1.1.14"
ANNOTATION = "1.2.840.10008.5.1.1.15"


def _assoc(port: int, extra: tuple[str, ...] = (), handlers: list | None = None):  # type: ignore[no-untyped-def]
    assoc = tk.print_ae(extra).associate("127.0.0.1", port, ae_title="PRINT_SCP", evt_handlers=handlers or [])
    assert assoc.is_established
    return assoc


def _session(assoc, meta: str = tk.GRAY_META) -> str:  # type: ignore[no-untyped-def]
    uid = generate_uid()
    st, _ = assoc.send_n_create(tk.session_ds(), tk.FILM_SESSION, uid, meta_uid=meta)
    assert st.Status == 0
    return uid


def _printer_ok(assoc) -> bool:  # type: ignore[no-untyped-def]
    st, _ = assoc.send_n_get([0x21100010, 0x21100030], tk.PRINTER_CLASS, tk.PRINTER_INSTANCE, meta_uid=tk.GRAY_META)
    return st.Status == 0


async def test_film_box_attribute_errors(print_app) -> None:
    def run() -> dict:
        assoc = _assoc(print_app.port)
        try:
            s = _session(assoc)
            out = {}
            ds = tk.film_box_ds(s)
            del ds.ImageDisplayFormat
            out["missing_format"] = assoc.send_n_create(ds, tk.FILM_BOX, generate_uid(), meta_uid=tk.GRAY_META)[0]
            out["bad_format"] = assoc.send_n_create(tk.film_box_ds(s, "STANDARD\\0,3"), tk.FILM_BOX, generate_uid(),
                                                    meta_uid=tk.GRAY_META)[0]
            out["bad_size"] = assoc.send_n_create(tk.film_box_ds(s, size="99INX99IN"), tk.FILM_BOX, generate_uid(),
                                                  meta_uid=tk.GRAY_META)[0]
            out["other_session"] = assoc.send_n_create(tk.film_box_ds(generate_uid()), tk.FILM_BOX, generate_uid(),
                                                       meta_uid=tk.GRAY_META)[0]
            out["min_over_max"] = assoc.send_n_create(tk.film_box_ds(s, MinDensity=300, MaxDensity=100), tk.FILM_BOX,
                                                      generate_uid(), meta_uid=tk.GRAY_META)[0]
            out["print_empty_session"] = assoc.send_n_action(None, 1, tk.FILM_SESSION, s, meta_uid=tk.GRAY_META)[0]
            out["density_clamped"] = assoc.send_n_create(tk.film_box_ds(s, MaxDensity=900), tk.FILM_BOX,
                                                         generate_uid(), meta_uid=tk.GRAY_META)[0]
            out["second_session"] = assoc.send_n_create(tk.session_ds(), tk.FILM_SESSION, generate_uid(),
                                                        meta_uid=tk.GRAY_META)[0]
            out["session_on_lut_context"] = assoc.send_n_create(tk.session_ds(), tk.FILM_SESSION, generate_uid(),
                                                                meta_uid=tk.PLUT)[0]
            out["delete_unknown_box"] = assoc.send_n_delete(tk.FILM_BOX, generate_uid(), meta_uid=tk.GRAY_META)
            out["still_alive"] = _printer_ok(assoc)
            return out
        finally:
            assoc.release()

    out = await asyncio.to_thread(run)
    assert out["missing_format"].Status == 0x0120
    assert out["bad_format"].Status == 0x0106
    assert "at least 1" in out["bad_format"].ErrorComment and "STANDARD/0,3" in out["bad_format"].ErrorComment
    assert out["bad_size"].Status == 0x0106
    assert out["other_session"].Status == 0x0106
    assert out["min_over_max"].Status == 0x0106
    assert out["density_clamped"].Status == 0xB605  # warning: the printer's own maximum is used
    assert out["second_session"].Status == 0x0213
    assert out["session_on_lut_context"].Status == 0x0118
    assert out["print_empty_session"].Status == 0xC600
    assert out["delete_unknown_box"].Status == 0x0112
    assert out["still_alive"]


async def test_image_box_errors_and_malformed_dataset(print_app) -> None:
    item = tk.to_item(tk.anatomy(64, 2), bits=12)

    def run() -> dict:
        assoc = _assoc(print_app.port)
        try:
            s = _session(assoc)
            box_uid = generate_uid()
            st, box = assoc.send_n_create(tk.film_box_ds(s, "STANDARD\\1,2"), tk.FILM_BOX, box_uid,
                                          meta_uid=tk.GRAY_META)
            refs = [r.ReferencedSOPInstanceUID for r in box.ReferencedImageBoxSequence]
            out: dict = {"refs": len(refs), "ref_class": box.ReferencedImageBoxSequence[0].ReferencedSOPClassUID}

            def nset(ds: Dataset, uid: str, cls: str = tk.GRAY_BOX) -> int:
                return assoc.send_n_set(ds, cls, uid, meta_uid=tk.GRAY_META)[0].Status

            out["wrong_position"] = nset(tk.image_box_ds(2, item), refs[0])
            out["no_such_box"] = nset(tk.image_box_ds(3, item), generate_uid())  # a 3rd image on a 2-box film
            short = tk.to_item(tk.anatomy(64, 2), bits=12)
            short.PixelData = short.PixelData[:-100]
            out["short_pixels"] = nset(tk.image_box_ds(1, short), refs[0])
            bad_pi = tk.to_item(tk.anatomy(64, 2), bits=12)
            bad_pi.PhotometricInterpretation = "YBR_FULL"
            out["bad_photometric"] = nset(tk.image_box_ds(1, bad_pi), refs[0])
            no_rows = tk.to_item(tk.anatomy(64, 2), bits=12)
            del no_rows.Rows
            out["missing_rows"] = nset(tk.image_box_ds(1, no_rows), refs[0])
            out["color_on_gray"] = nset(tk.image_box_ds(1, tk.color_item(tk.anatomy(64, 2)), color=True), refs[0])
            out["bad_polarity"] = nset(tk.image_box_ds(1, item, polarity="SIDEWAYS"), refs[0])
            # Malformed bytes as the modification list: the SCP must answer, not drop the association.
            req = N_SET()
            req.MessageID = 77
            req.RequestedSOPClassUID = tk.GRAY_BOX
            req.RequestedSOPInstanceUID = refs[0]
            req.ModificationList = BytesIO(b"\x20\x20\x10\x00\xff\xff\xff\x7fgarbage")
            cx = next(c for c in assoc.accepted_contexts if c.abstract_syntax == tk.GRAY_META)
            assoc._reactor_checkpoint.clear()  # as pynetdicom's send_*() do: keep the reactor off our reply
            while not assoc._is_paused:
                time.sleep(0.001)
            assoc.dimse.send_msg(req, cx.context_id)
            _, rsp = assoc.dimse.get_msg(block=True)
            assoc._reactor_checkpoint.set()
            out["malformed"] = rsp.Status
            out["good_after"] = nset(tk.image_box_ds(1, item), refs[0])
            out["wrong_action"] = assoc.send_n_action(None, 7, tk.FILM_BOX, box_uid, meta_uid=tk.GRAY_META)[0].Status
            out["still_alive"] = _printer_ok(assoc)
            return out
        finally:
            assoc.release()

    out = await asyncio.to_thread(run)
    assert out["refs"] == 2 and out["ref_class"] == tk.GRAY_BOX
    assert out["wrong_position"] == 0x0106
    assert out["no_such_box"] == 0x0112
    assert out["short_pixels"] == 0x0106
    assert out["bad_photometric"] == 0x0106
    assert out["missing_rows"] == 0x0121
    assert out["color_on_gray"] == 0x0119
    assert out["bad_polarity"] == 0x0106
    assert out["malformed"] == 0x0106
    assert out["good_after"] == 0
    assert out["wrong_action"] == 0x0123
    assert out["still_alive"]


async def test_broken_session_prints_nothing_and_the_next_association_works(print_app) -> None:
    item = tk.to_item(tk.anatomy(64, 3), bits=8)
    before = print_app.runtime.scp.broken_sessions
    label = f"BROKEN-{generate_uid()[-12:]}"

    def broken() -> None:
        assoc = _assoc(print_app.port)
        s = generate_uid()
        assoc.send_n_create(tk.session_ds(label=label), tk.FILM_SESSION, s, meta_uid=tk.GRAY_META)
        st, box = assoc.send_n_create(tk.film_box_ds(s), tk.FILM_BOX, generate_uid(), meta_uid=tk.GRAY_META)
        ref = box.ReferencedImageBoxSequence[0]
        assoc.send_n_set(tk.image_box_ds(1, item), tk.GRAY_BOX, ref.ReferencedSOPInstanceUID, meta_uid=tk.GRAY_META)
        assoc.abort()  # the modality crashed before printing

    await asyncio.to_thread(broken)
    for _ in range(100):
        if print_app.runtime.scp.broken_sessions > before:
            break
        await asyncio.sleep(0.02)
    assert print_app.runtime.scp.broken_sessions == before + 1
    async with print_app.ctx.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM films WHERE session_label = $1", label) == 0

    def next_one() -> dict:
        assoc = _assoc(print_app.port)
        try:
            return tk.print_film(assoc, [item], session_attrs={"label": label + "-2"})
        finally:
            assoc.release()

    out = await asyncio.to_thread(next_one)
    assert out["print"] == 0
    await print_app.wait_films("session_label = $1", label + "-2")


async def test_printer_event_report_print_job_and_annotation_boxes(print_app) -> None:
    study = await print_app.add_study()
    reports: list[int] = []

    def on_report(event):  # type: ignore[no-untyped-def]
        reports.append(event.request.EventTypeID)
        return 0x0000, None

    item = tk.to_item(tk.anatomy(96, 4), bits=12)

    def run() -> dict:
        assoc = _assoc(print_app.port, (PRINT_JOB, ANNOTATION), [(evt.EVT_N_EVENT_REPORT, on_report)])
        try:
            s = generate_uid()
            assoc.send_n_create(tk.session_ds(), tk.FILM_SESSION, s, meta_uid=tk.GRAY_META)
            box_uid = generate_uid()
            st, box = assoc.send_n_create(tk.film_box_ds(s, AnnotationDisplayFormatID="LABEL"), tk.FILM_BOX, box_uid,
                                          meta_uid=tk.GRAY_META)
            out: dict = {"annotations": len(box.get("ReferencedBasicAnnotationBoxSequence", []))}
            ann = box.ReferencedBasicAnnotationBoxSequence[0]
            text = Dataset()
            text.AnnotationPosition = 1
            text.TextString = f"PID {study['patient_id']} ACC {study['accession']}"
            out["annotation"] = assoc.send_n_set(text, ANNOTATION, ann.ReferencedSOPInstanceUID,
                                                 meta_uid=ANNOTATION)[0].Status
            ref = box.ReferencedImageBoxSequence[0]
            assoc.send_n_set(tk.image_box_ds(1, item), tk.GRAY_BOX, ref.ReferencedSOPInstanceUID, meta_uid=tk.GRAY_META)
            st, reply = assoc.send_n_action(None, 1, tk.FILM_BOX, box_uid, meta_uid=tk.GRAY_META)
            out["print"] = st.Status
            job_uid = reply.ReferencedPrintJobSequence[0].ReferencedSOPInstanceUID
            st, job = assoc.send_n_get([], PRINT_JOB, job_uid, meta_uid=PRINT_JOB)
            out["job"] = (st.Status, job.ExecutionStatus)
            out["unknown_job"] = assoc.send_n_get([], PRINT_JOB, generate_uid(), meta_uid=PRINT_JOB)[0].Status
            out["box_uid"] = box_uid
            out["reports_before_deletes"] = list(reports)
            assoc.send_n_delete(tk.FILM_BOX, box_uid, meta_uid=tk.GRAY_META)
            assoc.send_n_delete(tk.FILM_SESSION, s, meta_uid=tk.GRAY_META)
            time.sleep(0.2)  # the report follows the session's N-DELETE-RSP
            return out
        finally:
            assoc.release()

    out = await asyncio.to_thread(run)
    assert out["annotations"] == 2 and out["annotation"] == 0 and out["print"] == 0
    assert out["job"] == (0, "DONE") and out["unknown_job"] == 0x0112
    # WS/T 597 Appendix A: the printer's report comes after the print and its deletes, before A-RELEASE.
    assert out["reports_before_deletes"] == [] and reports == [1]  # NORMAL
    [film] = await print_app.wait_films("film_box_uid = $1", out["box_uid"])
    # No UID was sent: the annotation text carried the identifiers, no OCR guess needed.
    assert film["match_status"] == "matched" and film["match_method"] == "ocr"
    assert film["accession_number"] == study["accession"]


async def test_color_film(print_app) -> None:
    study = await print_app.add_study()

    def run() -> dict:
        assoc = _assoc(print_app.port)
        try:
            return tk.print_film(assoc, [tk.color_item(tk.anatomy(128, 5))] * 2, fmt="COL\\1,1", color=True,
                                 study_uid=study["study_uid"])
        finally:
            assoc.release()

    out = await asyncio.to_thread(run)
    assert out["print"] == 0 and out["image_boxes"] == [0, 0]
    assert out["film_box_rsp"].ReferencedImageBoxSequence[0].ReferencedSOPClassUID == tk.COLOR_BOX
    [film] = await print_app.wait_films("film_box_uid = $1", out["box_uid"])
    data = await print_app.runtime.store.get(film["dicom_key"])
    from io import BytesIO as B

    from pydicom import dcmread

    ds = dcmread(B(data))
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    assert np.asarray(ds.pixel_array).shape == (film["height"], film["width"], 3)


async def test_empty_page_warnings_only_for_a_film_box_without_images(print_app) -> None:
    """PS3.4 H.4.1.2.4 / H.4.2.2.4: B602 / B603 mean an empty page; a partly filled sheet prints (Success)."""
    item = tk.to_item(tk.anatomy(64, 6), bits=12)

    def run() -> dict:
        assoc = _assoc(print_app.port)
        try:
            s = _session(assoc)
            out: dict = {}

            def box(fmt: str) -> tuple[str, Dataset]:
                uid = generate_uid()
                st, rsp = assoc.send_n_create(tk.film_box_ds(s, fmt), tk.FILM_BOX, uid, meta_uid=tk.GRAY_META)
                assert st.Status == 0
                return uid, rsp

            partly, rsp = box("STANDARD\\2,2")
            ref = rsp.ReferencedImageBoxSequence[0]
            assoc.send_n_set(tk.image_box_ds(1, item), tk.GRAY_BOX, ref.ReferencedSOPInstanceUID, meta_uid=tk.GRAY_META)
            out["session_partly_filled"] = assoc.send_n_action(None, 1, tk.FILM_SESSION, s,
                                                               meta_uid=tk.GRAY_META)[0].Status
            out["box_partly_filled"] = assoc.send_n_action(None, 1, tk.FILM_BOX, partly,
                                                           meta_uid=tk.GRAY_META)[0].Status
            empty, _ = box("STANDARD\\1,1")
            out["box_empty"] = assoc.send_n_action(None, 1, tk.FILM_BOX, empty, meta_uid=tk.GRAY_META)[0].Status
            out["session_with_empty_box"] = assoc.send_n_action(None, 1, tk.FILM_SESSION, s,
                                                                meta_uid=tk.GRAY_META)[0].Status
            out["partly"] = partly
            return out
        finally:
            assoc.release()

    out = await asyncio.to_thread(run)
    assert out["session_partly_filled"] == 0x0000
    assert out["box_partly_filled"] == 0x0000
    assert out["box_empty"] == 0xB603
    assert out["session_with_empty_box"] == 0xB602  # the partly filled sheet is printed all the same
    films = await print_app.wait_films("film_box_uid = $1", out["partly"], count=3)
    assert [f["image_count"] for f in films] == [1, 1, 1]


async def test_error_comments_end_between_words_never_inside_a_number_or_uid(print_app) -> None:
    """Error Comment (LO) holds 64 characters: a longer one ends with "..." where a word ends."""
    lut_uid = "1.2.826.0.1.3680043.8.498." + "1" * 38  # 64 characters, a UID as long as UIDs get
    rows, cols = 1000, 5000
    long_pixels = tk.to_item(np.zeros((rows, cols), dtype=np.float32), bits=12)
    long_pixels.PixelData = long_pixels.PixelData + b"\0" * 100  # 10000100 bytes where 10000000 belong

    def run() -> dict:
        assoc = _assoc(print_app.port)
        try:
            s = _session(assoc)
            ref = Dataset()
            ref.ReferencedSOPClassUID = tk.PLUT
            ref.ReferencedSOPInstanceUID = lut_uid
            ds = tk.film_box_ds(s)
            ds.ReferencedPresentationLUTSequence = [ref]
            out = {"unknown_lut": assoc.send_n_create(ds, tk.FILM_BOX, generate_uid(), meta_uid=tk.GRAY_META)[0]}
            box_uid = generate_uid()
            _, box = assoc.send_n_create(tk.film_box_ds(s), tk.FILM_BOX, box_uid, meta_uid=tk.GRAY_META)
            ib = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
            out["long_pixels"] = assoc.send_n_set(tk.image_box_ds(1, long_pixels), tk.GRAY_BOX, ib,
                                                  meta_uid=tk.GRAY_META)[0]
            return out
        finally:
            assoc.release()

    out = await asyncio.to_thread(run)
    assert out["unknown_lut"].Status == 0x0106
    assert out["unknown_lut"].ErrorComment == "unknown Presentation LUT..."  # not half the UID
    assert out["long_pixels"].Status == 0x0106
    comment = out["long_pixels"].ErrorComment
    assert comment == "image: PixelData has 10000100 bytes, 1000x5000x1x2 needs..."  # not "needs 1000000"
    assert len(comment) <= 64
