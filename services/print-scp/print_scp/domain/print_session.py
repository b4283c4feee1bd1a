"""The print SCP's per-association state: film session, film boxes, image boxes, LUTs, jobs.

One `PrintAssociation` lives as long as one DICOM association (PS3.4 H.4: a Film Session and
everything under it belong to the association that created it). Each method is one DIMSE-N
request; it either returns the response attributes or raises `PrintFailure` with the status the
standard gives for that case. Nothing here touches the network or the database: a print
N-ACTION returns `FilmJob`s that the adapter hands on to be stored.

    N-CREATE Film Session ─► N-CREATE Film Box ─► N-SET Image Box ... ─► N-ACTION (box or session)
    N-CREATE Presentation LUT (any time, referenced from film box / image box)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from print_scp.domain import statuses as st
from print_scp.domain.layout import DEFAULT_FILM_SIZE, FILM_SIZES_MM, ORIENTATIONS, LayoutError, parse_display_format
from print_scp.domain.pixels import check_image_item
from print_scp.domain.statuses import PrintFailure

FILM_SESSION = "1.2.840.10008.5.1.1.1"
FILM_BOX = "1.2.840.10008.5.1.1.2"
GRAYSCALE_IMAGE_BOX = "1.2.840.10008.5.1.1.4"
COLOR_IMAGE_BOX = "1.2.840.10008.5.1.1.4.1"
PRINT_JOB = "1.2.840.10008.5.1.1.14"
ANNOTATION_BOX = "1.2.840.10008.5.1.1.15"
PRINTER = "1.2.840.10008.5.1.1.16"
PRINTER_INSTANCE = "1.2.840.10008.5.1.1.17"
PRESENTATION_LUT = "1.2.840.10008.5.1.1.23"
GRAYSCALE_META = "1.2.840.10008.5.1.1.9"
COLOR_META = "1.2.840.10008.5.1.1.18"
# What each Meta SOP Class brings (PS3.4 H.3.1); a lone SOP class context brings itself.
META_MEMBERS: dict[str, frozenset[str]] = {
    GRAYSCALE_META: frozenset({FILM_SESSION, FILM_BOX, GRAYSCALE_IMAGE_BOX, PRINTER}),
    COLOR_META: frozenset({FILM_SESSION, FILM_BOX, COLOR_IMAGE_BOX, PRINTER}),
}
PRINT_CLASSES = frozenset({FILM_SESSION, FILM_BOX, GRAYSCALE_IMAGE_BOX, COLOR_IMAGE_BOX, PRINT_JOB,
                           ANNOTATION_BOX, PRINTER, PRESENTATION_LUT})

PRIORITIES = ("HIGH", "MED", "LOW")
MEDIUM_TYPES = ("PAPER", "CLEAR FILM", "BLUE FILM", "MAMMO CLEAR FILM", "MAMMO BLUE FILM")
MAGNIFICATIONS = ("REPLICATE", "BILINEAR", "CUBIC", "NONE")
POLARITIES = ("NORMAL", "REVERSE")
MAX_COPIES = 99
PRINTER_DENSITY_RANGE = (10, 400)  # hundredths of OD this (virtual) printer can produce
ANNOTATION_BOXES_PER_FORMAT = 2  # annotation boxes a film box gets when it asks for any format


def classes_of_context(abstract_syntax: str) -> frozenset[str]:
    return META_MEMBERS.get(abstract_syntax, frozenset({abstract_syntax}))


def _text(ds: Dataset, keyword: str) -> str | None:
    if keyword not in ds or ds[keyword].value in (None, ""):
        return None
    value = ds[keyword].value
    return "\\".join(str(v) for v in value) if isinstance(value, list | tuple) or (
        hasattr(value, "__iter__") and not isinstance(value, str | bytes)) else str(value).strip()


def _tag(keyword: str) -> list[int]:
    from pydicom.datadict import tag_for_keyword

    t = tag_for_keyword(keyword)
    return [int(t)] if t is not None else []


def _enum(ds: Dataset, keyword: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    value = _text(ds, keyword)
    if value is None:
        return default
    value = value.upper()
    if value not in allowed:
        raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, f"{keyword} {value!r} not one of {', '.join(allowed)}",
                           _tag(keyword))
    return value


def _int(ds: Dataset, keyword: str, default: int | None, lo: int, hi: int) -> int | None:
    value = _text(ds, keyword)
    if value is None:
        return default
    try:
        number = int(float(value))
    except ValueError:
        raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, f"{keyword} {value!r} is not a number", _tag(keyword)) from None
    if not lo <= number <= hi:
        # A failure, not 0x0116 (Attribute Value Out of Range): that is a warning in PS3.7 C.4, telling the
        # SCU the instance was created or changed all the same, while nothing was.
        raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, f"{keyword} {number} outside {lo}..{hi}", _tag(keyword))
    return number


def _density(ds: Dataset, keyword: str, default: str) -> str:
    value = _text(ds, keyword)
    if value is None:
        return default
    if value.upper() in ("BLACK", "WHITE"):
        return value.upper()
    try:
        float(value)
    except ValueError:
        raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, f"{keyword} {value!r}: BLACK, WHITE or hundredths of OD",
                           _tag(keyword)) from None
    return value


def study_uids_in(ds: Dataset) -> list[str]:
    """Study Instance UIDs a request carries (WS/T 597 5.1, 5.3 tables 3 and 4), in order found."""
    found: list[str] = []
    uid = _text(ds, "StudyInstanceUID")
    if uid:
        found.append(uid)
    for item in ds.get("ReferencedStudySequence", []) or []:
        ref = _text(item, "ReferencedSOPInstanceUID")
        if ref and ref not in found:
            found.append(ref)
    return found


@dataclass
class LutSpec:
    uid: str
    shape: str | None
    table: np.ndarray | None


@dataclass
class ImageBox:
    uid: str
    sop_class: str
    position: int
    film_box_uid: str
    image: Dataset | None = None  # the preformatted image sequence item
    polarity: str = "NORMAL"
    magnification: str | None = None
    smoothing: str | None = None
    min_density: int | None = None
    max_density: int | None = None
    configuration: str | None = None
    requested_size_mm: float | None = None
    decimate_crop: str | None = None
    lut_uid: str | None = None
    study_uids: list[str] = field(default_factory=list)
    spool_key: str | None = None  # where the adapter spooled `image` as its N-SET arrived
    size: int = 0  # bytes of the N-SET data set holding `image` (the adapter's memory budget)


@dataclass
class FilmBox:
    uid: str
    session_uid: str
    attrs: dict[str, Any]
    image_box_uids: list[str]
    annotation_uids: list[str]
    lut_uid: str | None
    study_uids: list[str]
    printed: bool = False


@dataclass
class FilmSession:
    uid: str
    attrs: dict[str, Any]
    study_uids: list[str]
    created_at: datetime


@dataclass
class JobImage:
    position: int
    color: bool
    item: Dataset
    polarity: str
    magnification: str | None
    requested_size_mm: float | None
    lut: LutSpec | None
    spool_key: str | None = None  # the spooled copy of `item`, if one was written before the print
    decimate_crop: str | None = None  # CROP: printed at its requested size, cut to the box


@dataclass
class FilmJob:
    """One sheet to print: everything needed to render, store and match it, detached from the association."""

    film_id: str
    job_uid: str
    film_box_uid: str
    session_uid: str
    calling_ae: str
    called_ae: str
    peer: str
    session: dict[str, Any]  # copies, priority, medium, destination, label, owner, memory allocation
    film: dict[str, Any]  # display format, orientation, size, magnification, densities, trim, config
    images: list[JobImage]
    annotations: list[str]
    lut: LutSpec | None
    study_uids: list[str]  # film box first, then image boxes, then session
    printed_at: datetime
    collated: bool


class PrintAssociation:
    """State of one association with a print SCU."""

    def __init__(self, *, calling_ae: str, called_ae: str, peer: str, print_job_class: bool = False,
                 annotation_class: bool = False, max_jobs: int = 1000) -> None:
        self.calling_ae, self.called_ae, self.peer = calling_ae, called_ae, peer
        self.print_job_class = print_job_class  # Print Job SOP class negotiated: return its reference
        self.annotation_class = annotation_class
        self.session: FilmSession | None = None
        self.film_boxes: dict[str, FilmBox] = {}
        self.image_boxes: dict[str, ImageBox] = {}
        self.annotations: dict[str, tuple[str, int, str]] = {}  # uid -> (film box, position, text)
        self.luts: dict[str, LutSpec] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.max_jobs = max_jobs
        self.printed_films = 0

    # ---- Film Session (PS3.4 H.4.1) ----------------------------------------------------------

    def create_film_session(self, uid: str | None, ds: Dataset) -> tuple[str, Dataset, int]:
        if self.session is not None:
            raise PrintFailure(st.DUPLICATE_SOP_INSTANCE if uid == self.session.uid else st.RESOURCE_LIMITATION,
                               "a Film Session already exists on this association")
        attrs = self._session_attrs(ds, defaults=True)
        status = st.SUCCESS
        if "MemoryAllocation" in ds and ds.MemoryAllocation not in (None, ""):
            status = st.WARN_MEMORY_ALLOCATION_NOT_SUPPORTED
        uid = uid or generate_uid()
        self.session = FilmSession(uid, attrs, study_uids_in(ds), datetime.now(UTC))
        return uid, self._session_dataset(), status

    def set_film_session(self, uid: str, ds: Dataset) -> Dataset:
        session = self._session_or_fail(uid)
        unknown = [e.keyword for e in ds if e.keyword not in _SESSION_SETTABLE]
        if unknown:
            raise PrintFailure(st.NO_SUCH_ATTRIBUTE, f"Film Session has no settable {unknown[0]}", _tag(unknown[0]))
        session.attrs.update({k: v for k, v in self._session_attrs(ds, defaults=False).items() if v is not None})
        for s in study_uids_in(ds):
            if s not in session.study_uids:
                session.study_uids.append(s)
        return self._session_dataset()

    def delete_film_session(self, uid: str) -> None:
        self._session_or_fail(uid)
        for box_uid in list(self.film_boxes):
            self._drop_film_box(box_uid)
        self.session = None

    def _session_or_fail(self, uid: str) -> FilmSession:
        if self.session is None or self.session.uid != uid:
            raise PrintFailure(st.NO_SUCH_SOP_INSTANCE, f"no Film Session {uid}")
        return self.session

    def _session_attrs(self, ds: Dataset, *, defaults: bool) -> dict[str, Any]:
        d = defaults
        return {
            "NumberOfCopies": _int(ds, "NumberOfCopies", 1 if d else None, 1, MAX_COPIES),
            "PrintPriority": _enum(ds, "PrintPriority", PRIORITIES, "MED" if d else None),
            "MediumType": _enum(ds, "MediumType", MEDIUM_TYPES, "BLUE FILM" if d else None),
            "FilmDestination": self._destination(ds, "PROCESSOR" if d else None),
            "FilmSessionLabel": _text(ds, "FilmSessionLabel"),
            "MemoryAllocation": _text(ds, "MemoryAllocation"),
            "OwnerID": _text(ds, "OwnerID"),
        }

    @staticmethod
    def _destination(ds: Dataset, default: str | None) -> str | None:
        value = _text(ds, "FilmDestination")
        if value is None:
            return default
        value = value.upper()
        if value in ("MAGAZINE", "PROCESSOR") or (value.startswith("BIN_") and value[4:].isdigit()):
            return value
        raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, f"FilmDestination {value!r}", _tag("FilmDestination"))

    def _session_dataset(self) -> Dataset:
        assert self.session is not None
        ds = Dataset()
        for k, v in self.session.attrs.items():
            if v is not None and k != "MemoryAllocation":
                setattr(ds, k, v)
        return ds

    # ---- Presentation LUT (PS3.4 H.4.9) -------------------------------------------------------

    def create_presentation_lut(self, uid: str | None, ds: Dataset) -> tuple[str, Dataset]:
        shape = _text(ds, "PresentationLUTShape")
        seq = ds.get("PresentationLUTSequence")
        if shape is None and not seq:
            raise PrintFailure(st.MISSING_ATTRIBUTE, "Presentation LUT Shape or Sequence required",
                               _tag("PresentationLUTShape"))
        if shape is not None and seq:
            raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, "give Presentation LUT Shape or Sequence, not both",
                               _tag("PresentationLUTSequence"))
        table = None
        if shape is not None:
            shape = shape.upper()
            if shape not in ("IDENTITY", "LIN OD"):
                raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, f"Presentation LUT Shape {shape!r}",
                                   _tag("PresentationLUTShape"))
        else:
            table = _lut_table(seq[0])
        uid = uid or generate_uid()
        if uid in self.luts:
            raise PrintFailure(st.DUPLICATE_SOP_INSTANCE, f"Presentation LUT {uid} exists")
        self.luts[uid] = LutSpec(uid, shape, table)
        out = Dataset()
        if shape is not None:
            out.PresentationLUTShape = shape
        return uid, out

    def delete_presentation_lut(self, uid: str) -> None:
        if uid not in self.luts:
            raise PrintFailure(st.NO_SUCH_SOP_INSTANCE, f"no Presentation LUT {uid}")
        del self.luts[uid]

    def _lut_ref(self, ds: Dataset) -> str | None:
        seq = ds.get("ReferencedPresentationLUTSequence")
        if not seq:
            return None
        ref = _text(seq[0], "ReferencedSOPInstanceUID")
        if ref not in self.luts:
            raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, f"unknown Presentation LUT {ref}",
                               _tag("ReferencedPresentationLUTSequence"))
        return ref

    # ---- Film Box (PS3.4 H.4.2) ---------------------------------------------------------------

    def create_film_box(self, uid: str | None, ds: Dataset, *, color: bool) -> tuple[str, Dataset, int]:
        if self.session is None:
            raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, "no Film Session on this association",
                               _tag("ReferencedFilmSessionSequence"))
        refs = ds.get("ReferencedFilmSessionSequence")
        if refs is None:
            raise PrintFailure(st.MISSING_ATTRIBUTE, "Referenced Film Session Sequence required",
                               _tag("ReferencedFilmSessionSequence"))
        if not refs or _text(refs[0], "ReferencedSOPInstanceUID") != self.session.uid:
            raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, "Referenced Film Session is not this session",
                               _tag("ReferencedFilmSessionSequence"))
        if "ImageDisplayFormat" not in ds:
            raise PrintFailure(st.MISSING_ATTRIBUTE, "Image Display Format required", _tag("ImageDisplayFormat"))
        try:
            fmt = parse_display_format(_text(ds, "ImageDisplayFormat"))
        except LayoutError as exc:
            raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, str(exc), _tag("ImageDisplayFormat")) from None
        status = st.SUCCESS
        attrs: dict[str, Any] = {
            "ImageDisplayFormat": fmt.text,
            "FilmOrientation": _enum(ds, "FilmOrientation", ORIENTATIONS, "PORTRAIT"),
            "FilmSizeID": _enum(ds, "FilmSizeID", tuple(FILM_SIZES_MM), DEFAULT_FILM_SIZE),
            "MagnificationType": _enum(ds, "MagnificationType", MAGNIFICATIONS, "BILINEAR"),
            "SmoothingType": _text(ds, "SmoothingType"),
            "BorderDensity": _density(ds, "BorderDensity", "BLACK"),
            "EmptyImageDensity": _density(ds, "EmptyImageDensity", "BLACK"),
            "Trim": _enum(ds, "Trim", ("YES", "NO"), "NO"),
            "ConfigurationInformation": _text(ds, "ConfigurationInformation"),
            "RequestedResolutionID": _enum(ds, "RequestedResolutionID", ("STANDARD", "HIGH"), "STANDARD"),
            "AnnotationDisplayFormatID": _text(ds, "AnnotationDisplayFormatID"),
            "Illumination": _int(ds, "Illumination", None, 0, 100000),
            "ReflectedAmbientLight": _int(ds, "ReflectedAmbientLight", None, 0, 100000),
        }
        status = self._densities(ds, attrs, status)
        lut_uid = self._lut_ref(ds)
        uid = uid or generate_uid()
        if uid in self.film_boxes:
            raise PrintFailure(st.DUPLICATE_SOP_INSTANCE, f"Film Box {uid} exists")
        box_class = COLOR_IMAGE_BOX if color else GRAYSCALE_IMAGE_BOX
        image_uids: list[str] = []
        for box in fmt.boxes():
            ib_uid = generate_uid()
            self.image_boxes[ib_uid] = ImageBox(ib_uid, box_class, box.position, uid)
            image_uids.append(ib_uid)
        annotation_uids: list[str] = []
        if attrs["AnnotationDisplayFormatID"]:
            for pos in range(1, ANNOTATION_BOXES_PER_FORMAT + 1):
                a_uid = generate_uid()
                self.annotations[a_uid] = (uid, pos, "")
                annotation_uids.append(a_uid)
        self.film_boxes[uid] = FilmBox(uid, self.session.uid, attrs, image_uids, annotation_uids, lut_uid,
                                       study_uids_in(ds))
        out = Dataset()
        for k, v in attrs.items():
            if v is not None:
                setattr(out, k, v)
        out.ReferencedFilmSessionSequence = Sequence([_ref(FILM_SESSION, self.session.uid)])
        out.ReferencedImageBoxSequence = Sequence([_ref(box_class, u) for u in image_uids])
        if annotation_uids:
            out.ReferencedBasicAnnotationBoxSequence = Sequence([_ref(ANNOTATION_BOX, u) for u in annotation_uids])
        if lut_uid:
            out.ReferencedPresentationLUTSequence = Sequence([_ref(PRESENTATION_LUT, lut_uid)])
        return uid, out, status

    def _densities(self, ds: Dataset, attrs: dict[str, Any], status: int) -> int:
        lo_range, hi_range = PRINTER_DENSITY_RANGE
        lo = _int(ds, "MinDensity", attrs.get("MinDensity", 20), 0, 10000)
        hi = _int(ds, "MaxDensity", attrs.get("MaxDensity", 300), 0, 10000)
        assert lo is not None and hi is not None
        if lo >= hi:
            raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, f"Min Density {lo} not below Max Density {hi}",
                               _tag("MinDensity"))
        if lo < lo_range or hi > hi_range:  # the printer uses its own limits instead (PS3.4 H.4.2.1.2)
            lo, hi = max(lo, lo_range), min(hi, hi_range)
            status = st.WARN_DENSITY_OUT_OF_RANGE
        attrs["MinDensity"], attrs["MaxDensity"] = lo, hi
        return status

    def set_film_box(self, uid: str, ds: Dataset) -> tuple[Dataset, int]:
        box = self._film_box_or_fail(uid)
        unknown = [e.keyword for e in ds if e.keyword not in _FILM_BOX_SETTABLE]
        if unknown:
            raise PrintFailure(st.NO_SUCH_ATTRIBUTE, f"Film Box has no settable {unknown[0]}", _tag(unknown[0]))
        changes: dict[str, Any] = {
            "MagnificationType": _enum(ds, "MagnificationType", MAGNIFICATIONS, None),
            "SmoothingType": _text(ds, "SmoothingType"),
            "BorderDensity": _density(ds, "BorderDensity", box.attrs["BorderDensity"]),
            "EmptyImageDensity": _density(ds, "EmptyImageDensity", box.attrs["EmptyImageDensity"]),
            "Trim": _enum(ds, "Trim", ("YES", "NO"), None),
            "ConfigurationInformation": _text(ds, "ConfigurationInformation"),
            "Illumination": _int(ds, "Illumination", None, 0, 100000),
            "ReflectedAmbientLight": _int(ds, "ReflectedAmbientLight", None, 0, 100000),
        }
        status = self._densities(ds, changes | {"MinDensity": box.attrs["MinDensity"],
                                                "MaxDensity": box.attrs["MaxDensity"]}, st.SUCCESS)
        if "ReferencedPresentationLUTSequence" in ds:
            box.lut_uid = self._lut_ref(ds)
        box.attrs.update({k: v for k, v in changes.items() if v is not None})
        out = Dataset()
        for e in ds:
            if e.keyword in box.attrs and box.attrs[e.keyword] is not None:
                setattr(out, e.keyword, box.attrs[e.keyword])
        return out, status

    def delete_film_box(self, uid: str) -> None:
        self._film_box_or_fail(uid)
        self._drop_film_box(uid)

    def _drop_film_box(self, uid: str) -> None:
        box = self.film_boxes.pop(uid)
        for ib in box.image_box_uids:
            self.image_boxes.pop(ib, None)
        for a in box.annotation_uids:
            self.annotations.pop(a, None)

    def _film_box_or_fail(self, uid: str) -> FilmBox:
        box = self.film_boxes.get(uid)
        if box is None:
            raise PrintFailure(st.NO_SUCH_SOP_INSTANCE, f"no Film Box {uid}")
        return box

    # ---- Image Box (PS3.4 H.4.3, H.4.4) and Annotation Box (H.4.5) ---------------------------

    def set_image_box(self, sop_class: str, uid: str, ds: Dataset) -> tuple[Dataset, int]:
        box = self.image_boxes.get(uid)
        if box is None:
            raise PrintFailure(st.NO_SUCH_SOP_INSTANCE, f"no Image Box {uid}")
        if box.sop_class != sop_class:
            raise PrintFailure(st.CLASS_INSTANCE_CONFLICT, "Image Box is of the other (gray/color) class")
        color = sop_class == COLOR_IMAGE_BOX
        seq_kw = "BasicColorImageSequence" if color else "BasicGrayscaleImageSequence"
        position = _text(ds, "ImageBoxPosition")
        if position is None:
            raise PrintFailure(st.MISSING_ATTRIBUTE_VALUE, "Image Box Position required", _tag("ImageBoxPosition"))
        if int(position) != box.position:
            raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE,
                               f"Image Box Position {position} is not this box's ({box.position})",
                               _tag("ImageBoxPosition"))
        seq = ds.get(seq_kw)
        if not seq:
            other = "BasicGrayscaleImageSequence" if color else "BasicColorImageSequence"
            if other in ds:
                raise PrintFailure(st.CLASS_INSTANCE_CONFLICT, f"{other} sent to a {seq_kw[5:-8]} image box")
            raise PrintFailure(st.MISSING_ATTRIBUTE_VALUE, f"{seq_kw} required", _tag(seq_kw))
        item = seq[0]
        check_image_item(item, color=color)
        # Everything is checked before the box changes: a failure status says nothing was set.
        polarity = _enum(ds, "Polarity", POLARITIES, "NORMAL") or "NORMAL"
        magnification = _enum(ds, "MagnificationType", MAGNIFICATIONS, None)
        decimate_crop = _enum(ds, "RequestedDecimateCropBehavior", ("DECIMATE", "CROP", "FAIL"), None)
        min_density = _int(ds, "MinDensity", None, 0, 10000)
        max_density = _int(ds, "MaxDensity", None, 0, 10000)
        status = st.SUCCESS
        requested_size_mm = box.requested_size_mm
        size = _text(ds, "RequestedImageSize")
        if size is not None:
            try:
                requested_size_mm = float(size)
            except ValueError:
                raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, f"Requested Image Size {size!r}",
                                   _tag("RequestedImageSize")) from None
            film = self.film_boxes[box.film_box_uid].attrs
            limit = self._box_width_mm(film, box.position)
            if requested_size_mm > limit:
                if decimate_crop == "FAIL":
                    raise PrintFailure(st.FAIL_IMAGE_LARGER_THAN_BOX,
                                       f"Requested Image Size {size} mm exceeds the box ({limit:.0f} mm)")
                # PS3.4 H.4.3.1.2.1.2: CROP keeps the requested size and deletes rows/columns (0xB609),
                # DECIMATE (and no choice) demagnifies to fit (0xB604)
                status = st.WARN_IMAGE_CROPPED if decimate_crop == "CROP" else st.WARN_IMAGE_DEMAGNIFIED
        lut_uid = self._lut_ref(ds) if "ReferencedPresentationLUTSequence" in ds else box.lut_uid
        box.polarity, box.magnification, box.decimate_crop = polarity, magnification, decimate_crop
        box.smoothing, box.configuration = _text(ds, "SmoothingType"), _text(ds, "ConfigurationInformation")
        box.min_density, box.max_density = min_density, max_density
        box.requested_size_mm, box.lut_uid = requested_size_mm, lut_uid
        box.study_uids = study_uids_in(ds) + [u for u in study_uids_in(item) if u not in study_uids_in(ds)]
        box.image = item
        return Dataset(), status

    @staticmethod
    def _box_width_mm(film: dict[str, Any], position: int) -> float:
        fmt = parse_display_format(film["ImageDisplayFormat"])
        w, h = FILM_SIZES_MM[film["FilmSizeID"]]
        if film["FilmOrientation"] == "LANDSCAPE":
            w, h = h, w
        box = fmt.boxes()[position - 1]
        return box.width * w

    def set_annotation_box(self, uid: str, ds: Dataset) -> Dataset:
        if uid not in self.annotations:
            raise PrintFailure(st.NO_SUCH_SOP_INSTANCE, f"no Annotation Box {uid}")
        film_uid, pos, _ = self.annotations[uid]
        position = _int(ds, "AnnotationPosition", pos, 1, ANNOTATION_BOXES_PER_FORMAT)
        if position != pos:
            raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, f"Annotation Position {position} is not {pos}",
                               _tag("AnnotationPosition"))
        self.annotations[uid] = (film_uid, pos, _text(ds, "TextString") or "")
        return Dataset()

    # ---- Printing (N-ACTION, PS3.4 H.4.1.2.4 / H.4.2.2.4) ------------------------------------

    def print_film_box(self, uid: str) -> tuple[list[FilmJob], int, Dataset]:
        box = self._film_box_or_fail(uid)
        job = self._job(box, collated=False)
        if job is None:
            return [], st.WARN_EMPTY_PAGE, Dataset()
        return [job], st.SUCCESS, self._action_reply([job])

    def print_film_session(self, uid: str) -> tuple[list[FilmJob], int, Dataset]:
        self._session_or_fail(uid)
        if not self.film_boxes:
            raise PrintFailure(st.FAIL_SESSION_HAS_NO_FILM_BOX, "the Film Session has no Film Box")
        # All or nothing: a queue that fills half way would leave the first boxes marked printed with
        # jobs that are never stored, behind a C601 that says no Print Job was created.
        sheets = sum(1 for box in self.film_boxes.values() if any(
            self.image_boxes[u].image is not None for u in box.image_box_uids))
        if sheets and len(self.jobs) + sheets > self.max_jobs:
            raise PrintFailure(st.FAIL_SESSION_PRINT_QUEUE_FULL, "print queue of this association is full")
        jobs, empty = [], False
        for box in self.film_boxes.values():
            job = self._job(box, collated=True)
            if job is None:  # an empty page; a partly filled sheet prints as it is (PS3.4 H.4.1.2.4)
                empty = True
            else:
                jobs.append(job)
        status = st.WARN_SESSION_EMPTY_PAGE if empty else st.SUCCESS
        return jobs, status, self._action_reply(jobs)

    def _action_reply(self, jobs: list[FilmJob]) -> Dataset:
        out = Dataset()
        if self.print_job_class and jobs:  # only a peer that negotiated Print Job may ask about it
            out.ReferencedPrintJobSequence = Sequence([_ref(PRINT_JOB, j.job_uid) for j in jobs])
        return out

    def _job(self, box: FilmBox, *, collated: bool) -> FilmJob | None:
        assert self.session is not None
        images = []
        study_uids = list(box.study_uids)
        for ib_uid in box.image_box_uids:
            ib = self.image_boxes[ib_uid]
            if ib.image is None:
                continue
            lut = self.luts.get(ib.lut_uid) if ib.lut_uid else None
            images.append(JobImage(ib.position, ib.sop_class == COLOR_IMAGE_BOX, ib.image, ib.polarity,
                                   ib.magnification, ib.requested_size_mm, lut, ib.spool_key, ib.decimate_crop))
            study_uids += [u for u in ib.study_uids if u not in study_uids]
        if not images:
            return None
        study_uids += [u for u in self.session.study_uids if u not in study_uids]
        if len(self.jobs) >= self.max_jobs:
            raise PrintFailure(st.FAIL_SESSION_PRINT_QUEUE_FULL if collated else st.FAIL_PRINT_QUEUE_FULL,
                               "print queue of this association is full")
        job_uid = generate_uid()
        now = datetime.now(UTC)
        self.jobs[job_uid] = {"status": "PENDING", "created": now, "priority": self.session.attrs["PrintPriority"]}
        box.printed = True
        self.printed_films += 1
        annotations = [self.annotations[a][2] for a in box.annotation_uids if a in self.annotations]
        return FilmJob(
            film_id=str(uuid.uuid4()), job_uid=job_uid, film_box_uid=box.uid, session_uid=self.session.uid,
            calling_ae=self.calling_ae, called_ae=self.called_ae, peer=self.peer,
            session=dict(self.session.attrs), film=dict(box.attrs), images=images, annotations=annotations,
            lut=self.luts.get(box.lut_uid) if box.lut_uid else None, study_uids=study_uids,
            printed_at=now, collated=collated,
        )

    def mark_job(self, job_uid: str, status: str) -> None:
        if job_uid in self.jobs:
            self.jobs[job_uid]["status"] = status

    def get_print_job(self, uid: str, printer_name: str) -> Dataset:
        job = self.jobs.get(uid)
        if job is None:
            raise PrintFailure(st.NO_SUCH_SOP_INSTANCE, f"no Print Job {uid}")
        ds = Dataset()
        ds.ExecutionStatus = job["status"]
        ds.ExecutionStatusInfo = "NORMAL"
        ds.CreationDate = job["created"].strftime("%Y%m%d")
        ds.CreationTime = job["created"].strftime("%H%M%S")
        ds.PrintPriority = job["priority"]
        ds.PrinterName = printer_name
        ds.Originator = self.calling_ae
        return ds

    def unprinted_films(self) -> int:
        """Film boxes with images that were never printed: a broken session, reported on release."""
        return sum(1 for b in self.film_boxes.values() if not b.printed
                   and any(self.image_boxes[u].image is not None for u in b.image_box_uids))


_SESSION_SETTABLE = frozenset({"NumberOfCopies", "PrintPriority", "MediumType", "FilmDestination",
                               "FilmSessionLabel", "MemoryAllocation", "OwnerID", "StudyInstanceUID",
                               "ReferencedStudySequence", "SpecificCharacterSet"})
_FILM_BOX_SETTABLE = frozenset({"MagnificationType", "SmoothingType", "BorderDensity", "EmptyImageDensity",
                                "MinDensity", "MaxDensity", "Trim", "ConfigurationInformation", "Illumination",
                                "ReflectedAmbientLight", "ReferencedPresentationLUTSequence", "SpecificCharacterSet"})


def _ref(sop_class: str, uid: str) -> Dataset:
    ds = Dataset()
    ds.ReferencedSOPClassUID = sop_class
    ds.ReferencedSOPInstanceUID = uid
    return ds


def _lut_table(item: Dataset) -> np.ndarray:
    try:
        entries, _first, bits = (int(v) for v in item.LUTDescriptor)
        data = item.LUTData
    except (AttributeError, TypeError, ValueError):
        raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, "Presentation LUT Sequence needs LUT Descriptor and Data",
                           _tag("PresentationLUTSequence")) from None
    entries = entries or 65536
    values = np.asarray(data if isinstance(data, list | tuple) else [data], dtype=np.float32).ravel()
    if bits not in range(10, 17) or len(values) != entries:
        raise PrintFailure(st.INVALID_ATTRIBUTE_VALUE, f"LUT Descriptor {entries},{bits}: {len(values)} entries",
                           _tag("PresentationLUTSequence"))
    return np.clip(values / float((1 << bits) - 1), 0.0, 1.0)


def printer_attributes(*, name: str, manufacturer: str, model: str, serial: str, software: str,
                       calibrated_at: datetime, status: str = "NORMAL", status_info: str = "NORMAL") -> Dataset:
    """Printer Module (PS3.3 C.13.9): what N-GET on the well-known Printer instance answers."""
    ds = Dataset()
    ds.PrinterStatus = status
    ds.PrinterStatusInfo = status_info
    ds.PrinterName = name
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = model
    ds.DeviceSerialNumber = serial
    ds.SoftwareVersions = software
    ds.DateOfLastCalibration = calibrated_at.strftime("%Y%m%d")
    ds.TimeOfLastCalibration = calibrated_at.strftime("%H%M%S")
    return ds
