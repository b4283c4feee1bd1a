"""DCMTK's own print client against the print SCP: a job with burned-in PID/ACC matched by OCR.

`dcmpsprt` renders the job (Stored Print + Hardcopy Grayscale objects), `dcmprscu` sends it. The
latter exits 0 even when the print failed, so its log is read for the DIMSE outcome.
"""

from __future__ import annotations

import asyncio
import glob
import re
from pathlib import Path

from imaging_testing import print_kit as tk


async def _run(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{argv[0]} exit {proc.returncode}:\n{text}"
    return text


async def dcmtk_print(workdir: Path, port: int, images: list[str], *, extra_sprt: tuple[str, ...] = (),
                      extra_prscu: tuple[str, ...] = ()) -> str:
    cfg = tk.dcmtk_print_config(workdir, port=port)
    await _run("dcmpsprt", "-c", cfg, "-p", "PLATFORM", *extra_sprt, *images)
    [stored_print] = glob.glob(str(workdir / "db" / "SP_*.dcm"))
    return await _run("dcmprscu", "-c", cfg, "-p", "PLATFORM", "-d", *extra_prscu, stored_print)


def responses(log: str) -> list[tuple[str, int]]:
    """(message type, DIMSE status) of every response in dcmprscu's debug log, in order."""
    out, current = [], None
    for line in log.splitlines():
        m = re.search(r"Message Type\s*:\s*(N-[A-Z-]+ RSP)", line)
        if m:
            current = m.group(1)
        m = re.search(r"DIMSE Status\s*:\s*0x([0-9A-Fa-f]{4})", line)
        if m and current:
            out.append((current, int(m.group(1), 16)))
            current = None
    return out


def assert_printed(log: str, prints: int = 1) -> None:
    """dcmprscu exits 0 whatever happened: the log must show every response a success and the print(s)."""
    got = responses(log)
    assert got, f"no DIMSE responses in dcmprscu's log:\n{log}"
    assert all(status == 0 for _, status in got), got
    assert sum(1 for kind, _ in got if kind == "N-ACTION RSP") == prints, got
    assert "N-EVENT-REPORT RQ" in log  # the printer status report reached the client and was answered
    # ... after the print and the film session's delete (WS/T 597 Appendix A), not between them.
    assert log.index("N-ACTION RSP") < log.index("N-DELETE RSP") < log.index("N-EVENT-REPORT RQ"), log


async def test_dcmtk_job_with_burned_in_ids_is_matched_by_ocr(print_app, tmp_path: Path) -> None:
    study = await print_app.add_study()
    img = tk.burn_text(tk.anatomy(512, 7), [f"PID: {study['patient_id']}", f"ACC: {study['accession']}"],
                       font_path=tk.FONTS[0], font_px=22)
    image = tk.modality_image_file(tmp_path / "ct.dcm", img)
    log = await dcmtk_print(tmp_path, print_app.port, [image])
    assert_printed(log)
    [film] = await print_app.wait_films("calling_ae_title = $1 AND match_method = 'ocr'", "DCMPRSCU")
    assert film["match_status"] == "matched", film["match_detail"]
    assert film["accession_number"] == study["accession"] and film["patient_id"] == study["patient_id"]


async def test_dcmtk_four_images_session_print_with_presentation_lut(print_app, tmp_path: Path) -> None:
    study = await print_app.add_study()
    images = []
    for i in range(4):
        img = tk.burn_text(tk.anatomy(512, 20 + i), [f"ID: {study['patient_id']}", f"ACC: {study['accession']}"],
                           font_path=tk.FONTS[4], font_px=18)
        images.append(tk.modality_image_file(tmp_path / f"im{i}.dcm", img))
    log = await dcmtk_print(tmp_path, print_app.port, images, extra_sprt=("--identity", "--layout", "2", "2"),
                            extra_prscu=("--session-print", "--copies", "2", "--label", "DCMTK 2x2"))
    assert_printed(log)
    assert "PresentationLUTSOPClass" in log and "IDENTITY" in log  # N-CREATE Presentation LUT went through
    [film] = await print_app.wait_films("calling_ae_title = 'DCMPRSCU' AND session_label = $1 AND copies = 2",
                                        "DCMTK 2x2")
    assert film["collated"] is True and film["image_count"] == 4
    assert film["display_format"] == "STANDARD\\2,2"
    assert film["match_status"] == "matched", film["match_detail"]
    assert film["accession_number"] == study["accession"]


async def test_dcmtk_job_with_ids_one_digit_off_goes_to_review(print_app, tmp_path: Path) -> None:
    """A film whose burned-in IDs are each one digit off a real patient's is that patient's only as a
    suggestion: it waits for a person (issue 16's near match)."""
    study = await print_app.add_study()
    pid, acc = study["patient_id"], study["accession"]
    pid, acc = pid[:-1] + ("2" if pid[-1] != "2" else "3"), acc[:-1] + ("2" if acc[-1] != "2" else "3")
    img = tk.burn_text(tk.anatomy(512, 8), [f"PID: {pid}", f"ACC: {acc}"], font_path=tk.FONTS[0], font_px=22)
    log = await dcmtk_print(tmp_path, print_app.port, [tk.modality_image_file(tmp_path / "ct.dcm", img)])
    assert_printed(log)
    [film] = await print_app.wait_films("calling_ae_title = 'DCMPRSCU' AND match_detail->>'read_patient_ids' LIKE $1",
                                        f"%{pid}%")
    assert film["match_status"] == "review" and film["patient_id"] is None, film["match_detail"]
    assert study["accession"] in film["match_detail"]
