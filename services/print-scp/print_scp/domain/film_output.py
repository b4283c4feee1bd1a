"""From a spooled job to what is kept: the composed film as DICOM, a PNG preview, OCR inputs.

CPU-bound (numpy, Pillow, zlib): the caller runs `render_job` in a worker thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from print_scp.domain.layout import parse_display_format
from print_scp.domain.pixels import p_values
from print_scp.domain.print_session import FilmJob
from print_scp.domain.render import BoxImage, FilmLayout, PresentationLut, compose, preview

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


@dataclass
class RenderedFilm:
    dicom: bytes
    png: bytes
    width: int
    height: int
    sop_instance_uid: str
    ocr_images: list[np.ndarray]  # each printed image as it shows on film (8-bit), for burned-in text


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
        boxes.append(BoxImage(img.position, p, img.magnification, img.requested_size_mm, _lut(img.lut)))
        gray = p if p.ndim == 2 else p.mean(axis=2)
        ocr_images.append((gray * 255.0 + 0.5).astype(np.uint8))
    film = compose(layout, boxes, dpi=dpi)
    uid = generate_uid()
    dicom = film_dicom(job, film, uid)
    small = preview(film, preview_max)
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, format="PNG", compress_level=1)  # speed over size: previews are small
    return RenderedFilm(dicom, buf.getvalue(), film.shape[1], film.shape[0], uid, ocr_images)


def film_dicom(job: FilmJob, film: np.ndarray, sop_uid: str) -> bytes:
    """The sheet as a Secondary Capture image carrying the print session facts."""
    ds = Dataset()
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "OT"
    ds.ConversionType = "WSD"  # workstation: a print job, not a scan of paper
    ds.ContentDate = job.printed_at.strftime("%Y%m%d")
    ds.ContentTime = job.printed_at.strftime("%H%M%S")
    ds.StudyInstanceUID = job.study_uids[0] if job.study_uids else generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.InstanceNumber = 1
    ds.SeriesDescription = "Virtual film (WS/T 597-2018)"
    ds.ImageComments = (f"printed by {job.calling_ae} at {job.printed_at.isoformat()}; "
                        f"{job.film['ImageDisplayFormat']} {job.film['FilmSizeID']} {job.film['FilmOrientation']}")
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
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(SECONDARY_CAPTURE)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()
