"""What the patient API answers (OpenAPI documents these; FastAPI checks the answers)."""

from __future__ import annotations

from datetime import datetime

from imaging_common.json_out import Out


class CodeSent(Out):
    """The same answer whether or not the phone belongs to a patient (no one learns who is registered)."""

    sent_to: str  # the number, masked
    valid_seconds: int
    retry_after_seconds: int


class SessionOpened(Out):
    access_token: str
    token_type: str
    expires_in: int


class Exam(Out):
    accession_number: str
    exam_name: str
    modality: str
    status: str  # ordered | booked | checked_in | in_exam | completed | reported | cancelled
    patient_name: str  # the patient's own name: the page is theirs
    ordered_at: datetime
    appointment_start: datetime | None
    room_name: str | None
    queue_number: str | None
    report_version: int | None
    reported_at: datetime | None


class Exams(Out):
    data: list[Exam]
    count: int


class ExamDetail(Exam):
    impression: str | None  # the signed report's impression, once reported


class ReportVerified(Out):
    report_id: str
    version: int  # the version the QR names
    current_version: int  # the newest signed version (an amendment supersedes the copy)
    current: bool
    signed_at: datetime
    content_sha256: str | None  # the signed content's hash, for the current version
