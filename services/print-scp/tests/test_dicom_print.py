"""The print SCP over real DICOM: a pynetdicom SCU doing the WS/T 597 Appendix A flow and its errors."""

from __future__ import annotations

import asyncio

from imaging_testing import print_kit as tk


def _associate(port: int, extra: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    assoc = tk.print_ae(extra).associate("127.0.0.1", port, ae_title="PRINT_SCP")
    assert assoc.is_established
    return assoc


async def test_appendix_a_flow_with_study_uid_matches_the_study(print_app) -> None:
    study = await print_app.add_study()
    img = tk.anatomy(256, 1)

    def run() -> dict:
        assoc = _associate(print_app.port)
        try:
            return tk.print_film(assoc, [tk.to_item(img, bits=12)], study_uid=study["study_uid"])
        finally:
            assoc.release()

    out = await asyncio.to_thread(run)
    assert out["printer"][0] == 0 and out["printer"][1].PrinterStatus == "NORMAL"
    assert (out["session"], out["film_box"], out["image_boxes"], out["print"]) == (0, 0, [0], 0)
    assert out["delete_box"] == 0 and out["delete_session"] == 0
    [film] = await print_app.wait_films("film_box_uid = $1", out["box_uid"])
    assert film["status"] == "stored" and film["match_status"] == "matched"
    assert film["match_method"] == "study-uid"
    assert film["patient_id"] == study["patient_id"] and film["accession_number"] == study["accession"]
    assert film["display_format"] == "STANDARD\\1,1" and film["film_size"] == "14INX17IN"
    assert film["calling_ae_title"] == "MODALITY1" and film["copies"] == 1


async def test_2x2_film_session_level_print_several_films(print_app) -> None:
    study = await print_app.add_study()
    items = [tk.to_item(tk.anatomy(128, i), bits=b, photometric=p)
             for i, (b, p) in enumerate([(8, "MONOCHROME2"), (12, "MONOCHROME1"), (16, "MONOCHROME2"),
                                         (12, "MONOCHROME2")])]

    def run() -> list[dict]:
        assoc = _associate(print_app.port)
        try:
            a = tk.print_film(assoc, items, fmt="STANDARD\\2,2", study_uid=study["study_uid"], session_level=True)
            b = tk.print_film(assoc, items[:3], fmt="ROW\\2,1", study_uid=study["study_uid"],
                              box_attrs={"orientation": "LANDSCAPE", "size": "8INX10IN"})
            return [a, b]
        finally:
            assoc.release()

    a, b = await asyncio.to_thread(run)
    assert a["print"] == 0 and a["image_boxes"] == [0, 0, 0, 0]
    assert b["print"] == 0
    films = await print_app.wait_films("film_box_uid = ANY($1::text[])", [a["box_uid"], b["box_uid"]], count=2)
    by_box = {f["film_box_uid"]: f for f in films}
    assert by_box[a["box_uid"]]["collated"] is True and by_box[a["box_uid"]]["image_count"] == 4
    assert by_box[b["box_uid"]]["orientation"] == "LANDSCAPE"
    assert by_box[b["box_uid"]]["width"] > by_box[b["box_uid"]]["height"]
    assert all(f["match_status"] == "matched" for f in films)
