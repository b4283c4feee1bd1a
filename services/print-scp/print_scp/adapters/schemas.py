"""The print API's answers: imaging_common.json_out.Out models (documented in OpenAPI, checked by FastAPI);
times its routes format themselves (isoformat()) are `str`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from imaging_common.json_out import Out


class FilmLinks(Out):
    png: str
    dicom: str


class Film(Out):
    """A printed film (table films, FILM_COLUMNS without the storage keys) and where to fetch it."""

    id: str
    session_id: str | None
    film_box_uid: str
    print_job_uid: str
    status: str
    failure: str | None
    printed_at: datetime
    calling_ae_title: str
    copies: int
    priority: str | None
    medium_type: str | None
    destination: str | None
    film_size: str | None
    orientation: str | None
    display_format: str | None
    session_label: str | None
    owner_id: str | None
    image_count: int
    collated: bool
    sent_study_uids: list[str]
    sop_instance_uid: str | None
    width: int | None
    height: int | None
    match_status: str
    match_method: str | None
    match_confidence: float | None
    match_detail: Any
    study_instance_uid: str | None
    accession_number: str | None
    patient_id: str | None
    empi_id: str | None
    patient_name: str | None
    matched_by: str | None
    matched_at: datetime | None
    handed_over_at: datetime | None
    handed_over_by: str | None
    links: FilmLinks


class FilmList(Out):
    data: list[Film]
    count: int


class Share(Out):
    id: str
    url: str
    token: str
    expires_at: str
    check: str
    qr_png_base64: str


class KioskDevice(Out):
    id: str
    name: str
    created_at: str
    created_by: str
    revoked_at: str | None


class KioskDeviceWithKey(KioskDevice):
    key: str  # shown this once


class KioskDeviceList(Out):
    data: list[KioskDevice]
    count: int


class Slip(Out):
    id: str
    token: str
    expires_at: str
    patient_name: str
    qr_png_base64: str


class ArchiveStatus(Out):
    film_id: str
    status: str | None  # null: never queued (no archive, or not matched)
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None
    response_status: int | None


class SharedFilm(Out):
    id: str
    printed_at: str
    film_size: str | None
    display_format: str | None
    png: str


class ShareGrant(Out):
    grant: str
    expires_in: int
    accession_number: str | None
    patient_name: str
    films: list[SharedFilm]


class KioskFilm(Out):
    id: str
    copies: int
    film_size: str | None
    collected: bool
    png: str


class KioskLookup(Out):
    patient_name: str
    films: list[KioskFilm]


class CollectedFilm(Out):
    id: str
    handed_over_at: str
    handed_over_by: str | None


class Collected(Out):
    films: list[CollectedFilm]
