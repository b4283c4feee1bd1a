"""What the JSON routes answer (issue 20 item 4): OpenAPI documents these, FastAPI checks the answers.

A model names the fields clients read (columns as in migrations/0002_reports.sql); `extra="allow"` passes
on any other column of the row as it is, so a column added later still reaches clients (a response model
otherwise drops what it does not name). Times the routes format with isoformat() are `str`."""

from __future__ import annotations

from typing import Any

from imaging_common.json_out import Out
from pydantic import BaseModel, Field

# ---- exams and the worklist -----------------------------------------------------------------------


class WorklistItem(Out):
    """An exam to report with its report's state (`none`: no report yet)."""

    accession_number: str
    patient_id: str | None
    empi_id: str | None
    modality: str | None
    report_id: str | None
    report_state: str
    films: int


class Worklist(BaseModel):
    data: list[WorklistItem]
    count: int


class ExamView(Out):
    exam: dict[str, Any]
    patient: Any  # the patient as the order named them
    report: dict[str, Any] | None
    allowed_actions: list[str]
    grades: list[str]
    priors: list[dict[str, Any]]
    films: list[dict[str, Any]]
    patient_change: dict[str, Any] | None  # the order went to another patient after signing
    patient_changes: list[dict[str, Any]]


class QCResult(BaseModel):
    issues: list[dict[str, Any]]
    blocked: bool


# ---- reports -------------------------------------------------------------------------------------


class StepOut(Out):
    """What a workflow step (or an amendment request or decision) did."""

    report_id: str
    state: str
    version: int
    warnings: list[dict[str, Any]]
    critical_raised: list[str]
    deliveries: int
    content_sha256: str | None


class ReportView(Out):
    """A report (table report) with its current content, template, QC and critical findings."""

    id: str
    accession_number: str
    template_id: str | None
    state: str
    version: int
    signed_version: int | None
    positive: bool | None
    critical: bool
    amendment_count: int
    created_by: str
    created_at: str
    updated_at: str
    content: dict[str, Any]
    template: dict[str, Any]
    qc: list[dict[str, Any]]
    critical_findings: list[dict[str, Any]]


class VersionListed(Out):
    """A save (table report_version) without its content."""

    version: int
    state: str
    action: str
    saved_by: str
    saved_by_name: str | None
    saved_at: str
    note: str | None


class Versions(BaseModel):
    data: list[VersionListed]
    count: int


class VersionView(VersionListed):
    content: Any  # {findings, impression, fields}


class DiffOut(Out):
    report_id: str
    from_: int = Field(alias="from")
    to: int
    changes: Any
    by_step: list[dict[str, Any]]


class SearchHit(Out):
    report_id: str
    accession_number: str
    state: str
    field_id: str
    value_text: str | None
    value_number: float | None
    unit: str | None
    code: str | None
    code_system: str | None


class SearchHits(BaseModel):
    data: list[SearchHit]
    count: int


class Amendment(Out):
    """An amendment request and its decision (table amendment)."""

    id: int
    report_id: str
    kind: str
    reason: str
    status: str
    requested_by: str
    requested_at: str
    reviewed_by: str | None
    review_note: str | None
    previous_version: int
    new_version: int | None


class Amendments(BaseModel):
    data: list[Amendment]
    count: int


class ConsultationNote(Out):
    id: int
    report_id: str
    author: str
    note: str
    at: str


class ConsultationNotes(BaseModel):
    data: list[ConsultationNote]
    count: int


# ---- signatures and keys --------------------------------------------------------------------------


class Verification(Out):
    """The check of a report's signature; the signature's facts when it has one."""

    report_id: str
    valid: bool
    outcome: str  # valid, tampered, bad-signature, unsigned
    detail: str


class Signature(Out):
    id: int
    report_id: str
    version: int
    kind: str
    signer_id: str
    signer_name: str
    signed_at: str
    content_sha256: str
    key_id: str


class Signatures(BaseModel):
    data: list[Signature]
    count: int


class SignatureLogEntry(Out):
    id: int
    at: str
    report_id: str
    version: int | None
    actor: str
    action: str
    outcome: str
    detail: dict[str, Any]


class SignatureLog(BaseModel):
    data: list[SignatureLogEntry]
    count: int


class SigningKey(Out):
    """A user's signing key (table signing_key), without its private part."""

    key_id: str
    user_id: str
    username: str
    public_key: str
    status: str
    created_at: str
    approved_by: str | None
    approved_at: str | None
    revoked_at: str | None


class SigningKeys(BaseModel):
    data: list[SigningKey]
    count: int


class KeyStatus(BaseModel):
    key_id: str
    status: str


# ---- configuration: templates, phrases, reporters, receivers, deliveries ----------------------------


class TemplateListed(Out):
    id: str
    name: str
    modality: str | None
    body_part: str | None
    source: str


class Templates(BaseModel):
    data: list[TemplateListed]
    count: int


class TemplateView(TemplateListed):
    definition: dict[str, Any]  # sections and typed fields
    created_by: str
    created_at: str


class TemplateStored(Out):
    """A template as stored (the request's fields, or what the MRRT import made)."""

    id: str
    name: str
    modality: str | None
    body_part: str | None


class Phrase(Out):
    id: int
    owner: str | None  # none: a department phrase
    department: str | None
    modality: str | None
    section: str
    label: str
    text: str


class Phrases(BaseModel):
    data: list[Phrase]
    count: int


class Reporter(Out):
    username: str
    kind: str
    display_name: str | None


class Reporters(BaseModel):
    data: list[Reporter]
    count: int


class Receiver(Out):
    id: str
    kind: str
    name: str
    host: str | None
    port: int | None
    url: str | None
    charset: str
    receiving_application: str
    receiving_facility: str
    enabled: bool


class Receivers(BaseModel):
    data: list[Receiver]
    count: int


class Delivery(Out):
    """A delivery of a report version to a receiver (table delivery), without its payload."""

    id: int
    report_id: str
    version: int
    receiver_id: str
    result_status: str
    status: str
    attempts: int
    next_attempt_at: str
    last_error: str | None
    enqueued_at: str
    delivered_at: str | None
    ack: str | None


class Deliveries(BaseModel):
    data: list[Delivery]
    count: int
    by_status: dict[str, int]


class DeliveryStatus(BaseModel):
    id: int
    status: str


class Statistics(Out):
    since: str
    until: str
    turnaround: list[dict[str, Any]]
    positive_rate_by_modality: list[dict[str, Any]]
    positive_rate_by_doctor: list[dict[str, Any]]
    amendments: dict[str, Any]
    review_agreement_by_doctor: list[dict[str, Any]]
    amendment_requests: list[dict[str, Any]]
