"""From a spooled job to what is kept: the composed film, a PNG preview, OCR inputs, and the film
as DICOM (Secondary Capture) carrying the identity of the study it was matched to.

The DICOM is written once the match is decided, and written again whenever the decision changes
(manual match, order cancelled, patients merged), with new Series and SOP Instance UIDs each time,
so an archive never holds two identities under one UID. An unmatched film carries none of a
patient's identity: empty Type 2 patient/study attributes and a Study Instance UID of its own.

CPU-bound (numpy, Pillow, zlib): the caller runs `render_job`, `film_dicom` and `reidentify` in a
worker thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from imaging_common.dicom.names import person_name
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from print_scp.domain.layout import parse_display_format
from print_scp.domain.pixels import p_values
from print_scp.domain.print_session import FilmJob
from print_scp.domain.render import BoxImage, FilmLayout, PresentationLut, compose, preview

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


CHARSET = "ISO_IR 192"  # UTF-8: Chinese names, labels and annotations as sent, whatever the modality used


@dataclass
class RenderedFilm:
    film: np.ndarray  # the composed sheet, 8-bit
    png: bytes
    width: int
    height: int
    ocr_images: list[tuple[int, np.ndarray]]  # (image box position, the image as printed, 8-bit)


@dataclass(frozen=True)
class FilmIdentity:
    """Who and which study a matched film belongs to, as DICOM values."""

    patient_name: str  # PN, e.g. "ZHANG^SAN=张三"
    patient_id: str
    issuer_of_patient_id: str
    birth_date: str  # YYYYMMDD or ""
    sex: str  # M, F, O or ""
    accession_number: str
    study_instance_uid: str
    study_date: str  # YYYYMMDD or ""
    study_time: str  # HHMMSS or ""
    study_description: str = ""


def identity_of(study: dict[str, Any], *, issuer: str, tz: ZoneInfo) -> FilmIdentity:
    """The identity of a study row (with its patient as PatientRef JSON): DICOM values, local dates."""
    p = study["patient"]
    name = str(p.get("name") or "")
    latin = p.get("name_latin")
    # Han characters alone in the first group, as most Chinese modalities and PACS expect, unless
    # a Latin form is known: then "ZHANG^SAN=张三" (PS3.5 6.2.1, as the worklist sends it)
    pn = person_name(latin, name) if latin and not name.isascii() else name
    birth = str(p.get("birth_date") or "").replace("-", "")
    sex = p.get("sex") if p.get("sex") in ("M", "F", "O") else ""
    when = study.get("started_at") or study.get("ordered_at") or study.get("completed_at")
    local = when.astimezone(tz) if when else None
    return FilmIdentity(
        patient_name=pn, patient_id=str(p.get("patient_id") or study["patient_id"]), issuer_of_patient_id=issuer,
        birth_date=birth[:8], sex=str(sex), accession_number=study["accession_number"],
        study_instance_uid=study["study_instance_uid"], study_date=local.strftime("%Y%m%d") if local else "",
        study_time=local.strftime("%H%M%S") if local else "", study_description=str(study.get("exam_name") or "")[:64],
    )


def _lut(spec) -> PresentationLut | None:  # type: ignore[no-untyped-def]
    if spec is None:
        return None
    return PresentationLut(spec.shape, spec.table)


def layout_of(job: FilmJob) -> FilmLayout:
    f = job.film
    return FilmLayout(
        display_format=parse_display_format(f["ImageDisplayFormat"]), film_size=f["FilmSizeID"],
        orientation=f["FilmOrientation"], magnification=f["MagnificationType"],
        border_density=f["BorderDensity"], empty_image_density=f["EmptyImageDensity"],
        min_density=int(f["MinDensity"]), max_density=int(f["MaxDensity"]), trim=f["Trim"] == "YES",
        lut=_lut(job.lut), annotations=[a for a in job.annotations if a],
    )


def render_job(job: FilmJob, *, dpi: int, preview_max: int) -> RenderedFilm:
    layout = layout_of(job)
    boxes, ocr_images = [], []
    for img in job.images:
        p = p_values(img.item, color=img.color, reverse=img.polarity == "REVERSE")
        boxes.append(BoxImage(img.position, p, img.magnification, img.requested_size_mm, _lut(img.lut),
                              crop=img.decimate_crop == "CROP"))
        gray = p if p.ndim == 2 else p.mean(axis=2)
        ocr_images.append((img.position, (gray * 255.0 + 0.5).astype(np.uint8)))
    film = compose(layout, boxes, dpi=dpi)
    small = preview(film, preview_max)
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, format="PNG", compress_level=1)  # speed over size: previews are small
    return RenderedFilm(film, buf.getvalue(), film.shape[1], film.shape[0], ocr_images)


def _apply_identity(ds: Dataset, identity: FilmIdentity | None) -> str:
    """Set (or clear) the patient and study of the film; new Series and SOP Instance UIDs. Returns the SOP UID."""
    i = identity
    ds.SpecificCharacterSet = CHARSET
    ds.PatientName = i.patient_name if i else ""
    ds.PatientID = i.patient_id if i else ""
    _optional(ds, "IssuerOfPatientID", i.issuer_of_patient_id if i else "")
    ds.PatientBirthDate = i.birth_date if i else ""
    ds.PatientSex = i.sex if i else ""
    ds.AccessionNumber = i.accession_number if i else ""
    ds.StudyInstanceUID = i.study_instance_uid if i else generate_uid()
    ds.StudyDate = i.study_date if i else ""
    ds.StudyTime = i.study_time if i else ""
    _optional(ds, "StudyDescription", i.study_description if i else "")
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return str(ds.SOPInstanceUID)


def _optional(ds: Dataset, keyword: str, value: str) -> None:
    """A Type 3 attribute: set when there is a value, absent otherwise (never left from an old identity)."""
    if value:
        setattr(ds, keyword, value)
    elif keyword in ds:
        delattr(ds, keyword)


def _encode(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def reidentify(dicom: bytes, identity: FilmIdentity | None) -> tuple[bytes, str]:
    """A stored film with its identity replaced (matched to another study, or unmatched)."""
    ds = dcmread(io.BytesIO(dicom))
    sop_uid = _apply_identity(ds, identity)
    return _encode(ds), sop_uid


def film_dicom(job: FilmJob, film: np.ndarray, identity: FilmIdentity | None) -> tuple[bytes, str]:
    """The sheet as a Secondary Capture image carrying the print session facts and its identity."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(SECONDARY_CAPTURE)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SECONDARY_CAPTURE
    sop_uid = _apply_identity(ds, identity)
    ds.Modality = "OT"
    ds.ConversionType = "WSD"  # workstation: a print job, not a scan of paper
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.SeriesNumber = ""
    ds.PatientOrientation = ""
    ds.ContentDate = job.printed_at.strftime("%Y%m%d")
    ds.ContentTime = job.printed_at.strftime("%H%M%S")
    ds.InstanceNumber = 1
    ds.SeriesDescription = "Virtual film (WS/T 597-2018)"
    comments = [f"printed by {job.calling_ae} at {job.printed_at.isoformat()}; "
                f"{job.film['ImageDisplayFormat']} {job.film['FilmSizeID']} {job.film['FilmOrientation']}"]
    # The Annotation Boxes' text as printed on the sheet (the SC IOD has no element of its own for it)
    comments += [f"annotation {n}: {text}" for n, text in enumerate(job.annotations, 1) if text]
    ds.ImageComments = "\n".join(comments)
    ds.FilmSizeID = job.film["FilmSizeID"]
    ds.FilmOrientation = job.film["FilmOrientation"]
    ds.ImageDisplayFormat = job.film["ImageDisplayFormat"]
    ds.NumberOfCopies = job.session["NumberOfCopies"]
    ds.PrintPriority = job.session["PrintPriority"]
    ds.MediumType = job.session["MediumType"]
    ds.FilmDestination = job.session["FilmDestination"]
    if job.session.get("FilmSessionLabel"):
        ds.FilmSessionLabel = job.session["FilmSessionLabel"]
    if job.session.get("OwnerID"):
        ds.OwnerID = job.session["OwnerID"]
    ds.Rows, ds.Columns = film.shape[0], film.shape[1]
    if film.ndim == 3:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(film).tobytes()
    return _encode(ds), sop_uid
