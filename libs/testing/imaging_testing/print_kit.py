"""A modality for print tests and benchmarks: synthetic images with burned-in identifiers, the print
SCU's requests (pynetdicom) and DCMTK's print configuration.

Used by the print SCP's tests, the platform's journey, security tests and benches, so it lives here
rather than in print-scp's tests/. The images look like what a technologist lays out for printing:
an anatomy-like grey background and overlay text (PatientID, AccessionNumber) in a corner.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
]


def anatomy(size: int, seed: int = 0) -> np.ndarray:
    """A smooth body-like blob on black, values 0..1."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    body = np.exp(-(((x - 0.5) / 0.32) ** 2 + ((y - 0.52) / 0.4) ** 2) ** 2)
    lungs = np.exp(-(((abs(x - 0.5) - 0.14) / 0.09) ** 2 + ((y - 0.45) / 0.18) ** 2))
    img = 0.55 * body - 0.35 * lungs + 0.05 * rng.standard_normal((size, size))
    return np.clip(img, 0, 0.8).astype(np.float32)


def burn_text(img: np.ndarray, lines: list[str], *, font_path: str, font_px: int, corner: str = "tl",
              value: float = 1.0) -> np.ndarray:
    """Overlay text as a modality burns it in: full intensity `value`, in one corner."""
    size = img.shape[0]
    canvas = Image.new("L", (img.shape[1], size), 0)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.truetype(font_path, font_px)
    margin = max(4, size // 40)
    heights = [draw.textbbox((0, 0), t, font=font)[3] + font_px // 3 for t in lines]
    y = margin if corner[0] == "t" else size - margin - sum(heights)
    for text, h in zip(lines, heights, strict=True):
        w = draw.textbbox((0, 0), text, font=font)[2]
        x = margin if corner[1] == "l" else img.shape[1] - margin - w
        draw.text((x, y), text, fill=255, font=font)
        y += h
    mask = np.asarray(canvas, dtype=np.float32) / 255.0
    return img * (1 - mask) + value * mask


def to_item(img: np.ndarray, *, bits: int = 12, photometric: str = "MONOCHROME2") -> Dataset:
    """A Basic Grayscale Image Sequence item; MONOCHROME1 stores the inverse."""
    values = 1.0 - img if photometric == "MONOCHROME1" else img
    item = Dataset()
    item.SamplesPerPixel = 1
    item.PhotometricInterpretation = photometric
    item.Rows, item.Columns = img.shape
    item.PixelRepresentation = 0
    if bits == 8:
        item.BitsAllocated, item.BitsStored, item.HighBit = 8, 8, 7
        item.PixelData = (np.clip(values, 0, 1) * 255 + 0.5).astype(np.uint8).tobytes()
    else:
        item.BitsAllocated, item.BitsStored, item.HighBit = 16, bits, bits - 1
        item.PixelData = (np.clip(values, 0, 1) * ((1 << bits) - 1) + 0.5).astype("<u2").tobytes()
    return item


def color_item(img: np.ndarray) -> Dataset:
    rgb = np.stack([img, img * 0.8, img * 0.6], axis=0)  # planar configuration 1
    item = Dataset()
    item.SamplesPerPixel = 3
    item.PhotometricInterpretation = "RGB"
    item.PlanarConfiguration = 1
    item.Rows, item.Columns = img.shape
    item.BitsAllocated, item.BitsStored, item.HighBit, item.PixelRepresentation = 8, 8, 7, 0
    item.PixelData = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).tobytes()
    return item


@dataclass
class FilmSpec:
    patient_id: str
    accession: str
    size: int
    font: str
    font_px: int
    corner: str
    polarity: str  # NORMAL or REVERSE
    photometric: str
    bits: int
    layout: str  # STANDARD\1,1 ...
    labels: tuple[str, str]


def random_spec(rng: random.Random, patient_id: str, accession: str) -> FilmSpec:
    size = rng.choice([512, 768, 1024])
    return FilmSpec(
        patient_id=patient_id, accession=accession, size=size, font=rng.choice(FONTS),
        font_px=rng.choice([max(14, size // 36), max(16, size // 28), max(18, size // 22)]),
        corner=rng.choice(["tl", "tr", "bl", "br"]), polarity=rng.choice(["NORMAL", "NORMAL", "REVERSE"]),
        photometric=rng.choice(["MONOCHROME2", "MONOCHROME2", "MONOCHROME1"]), bits=rng.choice([8, 12, 12, 16]),
        layout=rng.choice(["STANDARD\\1,1", "STANDARD\\2,2", "STANDARD\\2,1", "ROW\\2,1", "COL\\1,2"]),
        labels=rng.choice([("PID:", "ACC:"), ("ID:", "Acc No:"), ("病人ID:", "检查号:"), ("Patient ID", "Accession")]),
    )


def spec_image(spec: FilmSpec, seed: int) -> np.ndarray:
    img = anatomy(spec.size, seed)
    lines = [f"{spec.labels[0]} {spec.patient_id}", f"{spec.labels[1]} {spec.accession}", "2026-11-23 CT"]
    return burn_text(img, lines, font_path=spec.font, font_px=spec.font_px, corner=spec.corner)


# ---- a print SCU speaking the WS/T 597 Appendix A flow (pynetdicom) -----------------------------

GRAY_META = "1.2.840.10008.5.1.1.9"
COLOR_META = "1.2.840.10008.5.1.1.18"
PLUT = "1.2.840.10008.5.1.1.23"
PRINTER_CLASS = "1.2.840.10008.5.1.1.16"
PRINTER_INSTANCE = "1.2.840.10008.5.1.1.17"
FILM_SESSION = "1.2.840.10008.5.1.1.1"
FILM_BOX = "1.2.840.10008.5.1.1.2"
GRAY_BOX = "1.2.840.10008.5.1.1.4"
COLOR_BOX = "1.2.840.10008.5.1.1.4.1"


def print_ae(extra_contexts: tuple[str, ...] = (), ae_title: str = "MODALITY1"):  # type: ignore[no-untyped-def]
    from pynetdicom import AE

    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = 4 * 1024 * 1024
    for uid in (GRAY_META, COLOR_META, PLUT, *extra_contexts):
        ae.add_requested_context(uid)
    ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 30
    return ae


def session_ds(study_uid: str | None = None, **attrs: object) -> Dataset:
    ds = Dataset()
    ds.NumberOfCopies = attrs.pop("copies", 1)
    ds.PrintPriority = attrs.pop("priority", "MED")
    ds.MediumType = attrs.pop("medium", "BLUE FILM")
    ds.FilmDestination = attrs.pop("destination", "PROCESSOR")
    ds.FilmSessionLabel = attrs.pop("label", "TEST")
    for k, v in attrs.items():
        setattr(ds, k, v)
    if study_uid:
        ds.StudyInstanceUID = study_uid
    return ds


def film_box_ds(session_uid: str, fmt: str = "STANDARD\\1,1", study_uid: str | None = None,
                **attrs: object) -> Dataset:
    ds = Dataset()
    ds.ImageDisplayFormat = fmt
    ds.FilmOrientation = attrs.pop("orientation", "PORTRAIT")
    ds.FilmSizeID = attrs.pop("size", "14INX17IN")
    ds.MagnificationType = attrs.pop("magnification", "BILINEAR")
    for k, v in attrs.items():
        setattr(ds, k, v)
    ref = Dataset()
    ref.ReferencedSOPClassUID = FILM_SESSION
    ref.ReferencedSOPInstanceUID = session_uid
    ds.ReferencedFilmSessionSequence = [ref]
    if study_uid:
        ds.StudyInstanceUID = study_uid
    return ds


def image_box_ds(position: int, item: Dataset, *, study_uid: str | None = None, polarity: str = "NORMAL",
                 color: bool = False) -> Dataset:
    ds = Dataset()
    ds.ImageBoxPosition = position
    ds.Polarity = polarity
    if color:
        ds.BasicColorImageSequence = [item]
    else:
        ds.BasicGrayscaleImageSequence = [item]
    if study_uid:
        ds.StudyInstanceUID = study_uid
    return ds


def status_of(result: object) -> int:
    """The Status of a pynetdicom send_n_* result (status dataset first)."""
    status = result[0] if isinstance(result, tuple) else result
    return int(getattr(status, "Status", -1))


def print_film(assoc, items: list[Dataset], *, fmt: str = "STANDARD\\1,1", study_uid: str | None = None,  # type: ignore[no-untyped-def]
               session_level: bool = False, polarity: str = "NORMAL", color: bool = False,
               session_attrs: dict | None = None, box_attrs: dict | None = None) -> dict:
    """Appendix A: N-GET printer, session, film box, image boxes, N-ACTION, N-DELETE. Returns statuses."""
    meta = COLOR_META if color else GRAY_META
    out: dict = {}
    st, printer = assoc.send_n_get([0x21100010, 0x21100030], PRINTER_CLASS, PRINTER_INSTANCE, meta_uid=meta)
    out["printer"] = (st.Status, printer)
    # pynetdicom does not hand the SCU the UID an SCP assigns, so this SCU names its instances.
    session_uid, box_uid = generate_uid(), generate_uid()
    st, _ = assoc.send_n_create(session_ds(study_uid, **(session_attrs or {})), FILM_SESSION, session_uid,
                                meta_uid=meta)
    out["session"] = st.Status
    st, box = assoc.send_n_create(film_box_ds(session_uid, fmt, study_uid, **(box_attrs or {})), FILM_BOX, box_uid,
                                  meta_uid=meta)
    out["film_box"] = st.Status
    out["film_box_rsp"] = box
    out["image_boxes"] = []
    started = time.perf_counter()
    for i, item in enumerate(items):
        ref = box.ReferencedImageBoxSequence[i]
        st, _ = assoc.send_n_set(image_box_ds(i + 1, item, study_uid=study_uid, polarity=polarity, color=color),
                                 ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID, meta_uid=meta)
        out["image_boxes"].append(st.Status)
    out["nset_seconds"] = time.perf_counter() - started
    out["nset_bytes"] = sum(len(item.PixelData) for item in items)
    if session_level:
        st, reply = assoc.send_n_action(None, 1, FILM_SESSION, session_uid, meta_uid=meta)
    else:
        st, reply = assoc.send_n_action(None, 1, FILM_BOX, box_uid, meta_uid=meta)
    out["print"] = st.Status
    out["print_reply"] = reply
    if not session_level:
        out["delete_box"] = assoc.send_n_delete(FILM_BOX, box_uid, meta_uid=meta).Status
    out["delete_session"] = assoc.send_n_delete(FILM_SESSION, session_uid, meta_uid=meta).Status
    out["session_uid"], out["box_uid"] = session_uid, box_uid
    return out


ANNOTATION_BOX = "1.2.840.10008.5.1.1.15"


def print_annotated(port: int, item: Dataset, *, label: str, text: str, charset: str,
                    film_size: str = "14INX17IN") -> str:
    """One film box with a session label and one Annotation Box text, both sent in `charset` (e.g.
    GB18030), printed over a fresh association; returns the film box UID. Asserts each status."""
    assoc = print_ae((ANNOTATION_BOX,)).associate("127.0.0.1", port, ae_title="PRINT_SCP")
    assert assoc.is_established
    try:
        s, box_uid = generate_uid(), generate_uid()
        st, echoed = assoc.send_n_create(session_ds(label=label, SpecificCharacterSet=charset), FILM_SESSION, s,
                                         meta_uid=GRAY_META)
        assert st.Status == 0 and echoed.FilmSessionLabel == label  # the response declares its character set
        st, box = assoc.send_n_create(film_box_ds(s, size=film_size, AnnotationDisplayFormatID="LABEL"), FILM_BOX,
                                      box_uid, meta_uid=GRAY_META)
        assert st.Status == 0
        annotation = Dataset()
        annotation.SpecificCharacterSet = charset
        annotation.AnnotationPosition = 1
        annotation.TextString = text
        ann = box.ReferencedBasicAnnotationBoxSequence[0].ReferencedSOPInstanceUID
        assert assoc.send_n_set(annotation, ANNOTATION_BOX, ann, meta_uid=ANNOTATION_BOX)[0].Status == 0
        ref = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
        assert assoc.send_n_set(image_box_ds(1, item), GRAY_BOX, ref, meta_uid=GRAY_META)[0].Status == 0
        assert assoc.send_n_action(None, 1, FILM_BOX, box_uid, meta_uid=GRAY_META)[0].Status == 0
        return box_uid
    finally:
        assoc.release()


# ---- DCMTK print client (dcmpsprt renders a job, dcmprscu sends it) ----------------------------

def dcmtk_print_config(workdir, *, port: int, ae_title: str = "PRINT_SCP", printer: str = "PLATFORM",  # type: ignore[no-untyped-def]
                       local: bool = False) -> str:
    """A dcmpstat.cfg (see /etc/dcmtk/dcmpstat.cfg) with one printer entry pointing at `port`.

    `local=True` makes it a LOCALPRINTER entry, which DCMTK's own print SCP (dcmprscp) serves.
    """
    from pathlib import Path

    root = Path(workdir)
    for sub in ("db", "spool", "lut", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    text = f"""[[GENERAL]]
[APPLICATION]
LogDirectory = {root}/log
LogFile = general.log
LogLevel = INFO
[PRINT]
Spooler = dcmprscu
Server = dcmprscp
Directory = {root}/spool
DetailedLog = true
Sleep = 1
DeletePrintJobs = false
[DATABASE]
Directory = {root}/db
[LUT]
Directory = {root}/lut
[NETWORK]
aetitle = DCMPRSCU
[[COMMUNICATION]]
[{printer}]
Aetitle = {ae_title}
Description = print SCP under test
Hostname = localhost
Port = {port}
Type = {"LOCALPRINTER" if local else "PRINTER"}
DisplayFormat=1,1\\1,2\\2,1\\2,2\\2,3\\3,3
FilmSizeID = 8INX10IN\\14INX17IN\\14INX14IN
MagnificationType = REPLICATE\\BILINEAR\\CUBIC\\NONE
MediumType = PAPER\\CLEAR FILM\\BLUE FILM
FilmDestination = MAGAZINE\\PROCESSOR
MaxDensity = 320
MinDensity = 20
MaxPDU = 65536
Supports12Bit = true
SupportsPresentationLUT = true
SupportsTrim = true
SupportsImageSize = true
SupportsDecimateCrop = true
ImplicitOnly = false
DisableNewVRs = false
PresentationLUTMatchRequired = false
PresentationLUTinFilmSession = false
OmitSOPClassUIDFromCreateResponse = false
BorderDensity = 150\\20\\BLACK\\WHITE
EmptyImageDensity = 20\\BLACK\\WHITE
SmoothingType = NONE
ResolutionID = STANDARD\\HIGH
"""
    cfg = root / "print.cfg"
    cfg.write_text(text)
    return str(cfg)


def modality_image_file(path, img: np.ndarray, *, patient_id: str = "ANON", bits: int = 12) -> str:  # type: ignore[no-untyped-def]
    """A Secondary Capture file of `img` (0..1), as a modality would hand it to its print client."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "ANON", patient_id, "OT"
    ds.Rows, ds.Columns = img.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelData = (np.clip(img, 0, 1) * ((1 << bits) - 1) + 0.5).astype("<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return str(path)


# A PNG signature and nothing else: enough for a film's stored image that a page shows or hides.
FILM_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def film_for_review(ctx, key: str, tag: str, candidate: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """A stored one-image film the matcher left for staff (`candidate` is one of the conflicting orders it
    could be), straight into print's store and table (`ctx`: print's ServiceContext): the review list's row."""
    await ctx.extras["print"].store.put(key, FILM_PNG, "image/png")
    async with ctx.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO films (id, film_box_uid, print_job_uid, status, printed_at, calling_ae_title, image_count,
                   png_key, match_status, match_detail, display_format)
               VALUES ($1, $2, $2, 'stored', now(), 'CT01', 1, $3, 'review', $4, 'STANDARD\\1,1')""",
            str(uuid.uuid4()), f"1.2.3.{int(tag, 16)}", key,
            json.dumps({"reason": "conflict", "candidates": [candidate]}))
