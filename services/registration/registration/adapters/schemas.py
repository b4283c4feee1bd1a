"""Registration's answers: imaging_common.json_out.Out models (documented in OpenAPI, checked by FastAPI);
times the code formats itself (isoformat()) are `str`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from imaging_common.json_out import Out


class PatientSummary(Out):
    """What a list shows (patients.summary): masked ID and phone."""

    empi_id: str
    patient_id: str
    name: str
    name_latin: str | None
    birth_date: date | None
    age: int | None
    sex: str
    id_type: str | None
    id_number_masked: str | None
    phone_masked: str | None
    address: str | None
    verified: bool
    status: str


class Identifier(Out):
    type: str
    value: str
    valid: bool


class PatientDetail(PatientSummary):
    """One patient opened by a clerk (patients.detail): the full record."""

    id_number: str | None
    phone: str | None
    postcode: str | None
    merged_into: str | None
    version: int
    identifiers: list[Identifier]
    created_at: datetime
    updated_at: datetime


class PatientList(Out):
    data: list[PatientSummary]
    count: int


class Registered(Out):
    outcome: str
    patient: PatientDetail
    review_ids: list[Any]
    changed: Any
    pending: dict[str, Any] | None  # a link held until the desk confirms it: {id, changes}


class PatientChanged(Out):
    patient: PatientDetail
    changed: Any


class Merged(Out):
    survivor: PatientDetail


class Unmerged(Merged):
    restored: PatientDetail


class Caller(Out):
    """The token's principal (Principal.public), with the stored account when there is one."""

    user_id: str
    username: str
    display_name: str | None
    roles: list[str]
    session_id: str | None
    issuer: str | None


class StaffAccount(Out):
    """A staff account (StaffUser.public): never the password or TOTP secret."""

    id: str
    username: str
    display_name: str | None
    roles: list[str]
    active: bool
    failed_logins: int
    locked_until: str | None
    last_login_at: str | None
    created_at: str


class Me(Caller):
    """`account` (a StaffAccount) is added when the token's user is stored; absent otherwise, never null."""


class StaffAccountList(Out):
    data: list[StaffAccount]
    count: int


class NewStaffAccount(Out):
    user: StaffAccount
    totp_secret: str
    totp_uri: str
    # `password` is added only when it was generated; absent otherwise, never null.


class Jwks(Out):
    keys: list[dict[str, Any]]


class AuditEntry(Out):
    seq: int
    occurred_at: str
    service: str
    actor: str
    action: str
    entity: str
    entity_id: str | None
    patient_id: str | None
    source_ip: str | None
    outcome: str | None
    detail: Any
    row_hash: str


class AuditList(Out):
    data: list[AuditEntry]
    count: int


class Order(Out):
    """An exam order as stored (table exam_order), with the patient as a list shows them."""

    order_id: str
    accession_number: str
    requested_procedure_id: str
    study_instance_uid: str
    empi_id: str
    source: str
    placer_order_number: str | None
    patient_class: str
    visit_number: str | None
    ward: str | None
    bed: str | None
    ordering_doctor: str | None
    ordering_doctor_id: str | None
    ordering_department: str | None
    clinical_diagnosis: str | None
    history: str | None
    purpose: str | None
    items: list[dict[str, Any]]
    special: dict[str, Any]
    priority: str
    status: str
    created_by: str
    ordered_at: datetime
    requested_at: datetime | None
    updated_at: datetime | None
    exam_status: str | None
    exam_status_at: datetime | None
    scheduled_start: datetime | None
    patient: PatientSummary


class OrderList(Out):
    data: list[Order]
    count: int


class OrderChanged(Order):
    changed: Any


class MatchCandidate(Out):
    """A person the incoming data may be (patients.match_preview), and why."""

    patient: PatientSummary
    band: str
    weight: float | None
    reason: str | None
    fields: dict[str, Any]


class MatchList(Out):
    data: list[MatchCandidate]
    count: int


class PendingChange(Out):
    """A change of who a patient is, held until the desk confirms it (store.pending_changes)."""

    id: str
    empi_id: str
    patient_id: str
    source: str
    source_key: str | None
    actor: str
    created_at: datetime
    changes: Any


class PendingChangeList(Out):
    data: list[PendingChange]
    count: int


class HistoryEntry(Out):
    """An identity decision about a person (store.history)."""

    id: int | str
    action: str
    actor: str
    at: datetime
    detail: Any


class HistoryList(Out):
    data: list[HistoryEntry]
    count: int


class Verification(Out):
    id: str
    empi_id: str
    method: str
    document_type: str | None
    document_masked: str | None
    document_matches: bool | None
    verified_by: str


class ReviewResolved(Out):
    review_id: str
    decision: str


class Review(Out):
    """Two persons that may be one (patients.open_reviews), with the matcher's explanation."""

    id: str
    weight: float
    created_at: datetime
    left: PatientSummary
    right: PatientSummary
    explanation: Any


class ReviewList(Out):
    data: list[Review]
    count: int


class ConsistencyDrift(Out):
    """One copy that differs from registration's (imaging_common.consistency.Drift)."""

    service: str
    subject: str  # the accession number, or the EMPI id of a copy of a patient only
    field: str
    registration: str | None
    service_value: str | None
    kind: str
    record: str
    empi_id: str | None


class ConsistencyReport(Out):
    """GET /admin/consistency: the drifts, counted per service, kind and field; complete unless a
    service could not be read (its error listed)."""

    drift_count: int
    drifts: list[ConsistencyDrift]
    counts: dict[str, int]
    errors: list[str]
    checked: dict[str, int]  # service -> rows compared
    checked_at: str
    settle_seconds: float
    transient: int
    complete: bool
