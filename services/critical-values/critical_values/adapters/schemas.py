"""The critical-value API's answers: imaging_common.json_out.Out models (documented in OpenAPI, checked by FastAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from imaging_common.json_out import Out


class CriticalValue(Out):
    """A critical value as stored (table critical_value), the patient as the order named them."""

    critical_id: str
    accession_number: str
    patient: dict[str, Any]
    patient_id: str
    finding: str
    item_code: str | None
    dictionary_version: int | None
    category: int | None
    modality: str | None
    report_id: str | None
    source: str
    raised_by: str
    raised_at: datetime
    raised_claimed_at: datetime | None
    raised_claim_invalid: str | None
    ai_model: str | None
    ai_score: float | None
    state: str
    requires_confirmation: bool
    confirmed_by: str | None
    confirmed_at: datetime | None
    notify_due_at: datetime | None
    ack_due_at: datetime | None
    recipient_id: str | None
    recipient_name: str | None
    department: str | None
    ward: str | None
    first_notified_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_claimed_at: datetime | None
    acknowledged_claim_invalid: str | None
    acknowledged_by: str | None
    ack_channel: str | None
    action_taken: str | None
    escalation_level: int
    closed_at: datetime | None
    outcome: str | None
    created_at: datetime


class CriticalValueList(Out):
    data: list[CriticalValue]
    count: int


class CriticalValueDetail(CriticalValue):
    """One value with what happened to it: its log, notifications, phone tasks and manual records."""

    timeline: list[dict[str, Any]]
    notifications: list[dict[str, Any]]
    phone_tasks: list[dict[str, Any]]
    manual_records: list[dict[str, Any]]


class Acknowledged(CriticalValue):
    already_acknowledged: bool  # the value was acknowledged before this request


class BoardItem(Out):
    """An open value on the live board (domain.board.open_items): the patient's name masked."""

    critical_id: str
    accession_number: str
    patient_name: str
    patient_id: str
    finding: str
    item_code: str | None
    category: int | None
    modality: str | None
    state: str
    raised_at: datetime
    due_at: datetime | None
    seconds_left: float
    urgency: str
    recipient: str | None
    department: str | None
    ward: str | None
    escalation_level: int
    open_phone_tasks: int
    first_notified_at: datetime | None


class Board(Out):
    now: datetime
    data: list[BoardItem]
    count: int


class StatsRow(Out):
    """One group of the quality-control statistics (domain.stats.COLUMNS)."""

    key: str
    total: int
    eligible: int
    completed_within_window: int
    rate_within_window: float | None
    delivered_within_window: int
    acknowledged: int
    median_ack_seconds: float | None
    p90_ack_seconds: float | None
    escalated_values: int
    escalation_steps: int
    documented_only: int
    open: int


class Stats(Out):
    start: datetime
    end: datetime
    group_by: str
    data: list[StatsRow]
    count: int


class PhoneTask(Out):
    """A phone call a person must make (table phone_task) with its value's accession, finding and place."""

    task_id: int
    critical_id: str
    reason: str
    call_whom: str | None
    phone: str | None
    created_at: datetime
    status: str
    outcome: str | None
    called_person: str | None
    called_at: datetime | None
    recorded_by: str | None
    recorded_at: datetime | None
    called_at_invalid: str | None
    notes: str | None
    accession_number: str
    finding: str
    patient_id: str
    department: str | None
    ward: str | None


class PhoneTasks(Out):
    data: list[PhoneTask]
    count: int


class PhoneOutcome(Out):
    task_id: int
    critical_id: str
    outcome: str
    acknowledged: bool  # the call reached someone and acknowledged the value
    called_at_invalid: str | None


class ManualRecord(Out):
    """A manual phone record (table manual_record) with the critical values of its accession."""

    record_id: int
    critical_id: str | None
    accession_number: str
    finding: str
    called_person: str
    called_at: datetime
    called_at_invalid: str | None
    caller: str
    read_back: bool
    action_taken: str | None
    notes: str | None
    entered_by: str
    entered_at: datetime
    linked_at: datetime | None
    linked_by: str | None
    candidates: list[str] | None


class ManualRecords(Out):
    data: list[ManualRecord]
    count: int


class Linked(Out):
    """A manual record and the value it is linked to (none yet when entered unlinked)."""

    record_id: int
    critical_id: str | None
    acknowledged: bool


class ManualEntered(Linked):
    called_at_invalid: str | None


class DictionaryItem(Out):
    version: int
    code: str
    name: str
    name_en: str | None
    modalities: list[str]
    category: int
    notify_minutes: float
    ack_minutes: float
    requires_senior_confirmation: bool
    active: bool


class Dictionary(Out):
    version: int
    items: list[DictionaryItem]
    count: int


class DictionaryVersion(Out):
    version: int
    published_at: datetime
    published_by: str
    note: str | None
    items: int  # how many items it holds


class DictionaryVersions(Out):
    data: list[DictionaryVersion]
    count: int


class Published(Out):
    version: int
    count: int  # items published


class Receiver(Out):
    """A clinician system (table receiver)."""

    receiver_id: str
    name: str
    department: str
    hl7_host: str | None
    hl7_port: int | None
    hl7_message_type: str
    fhir_base_url: str | None
    fhir_request: str | None
    active: bool
    ack_application: str | None
    ack_facility: str | None
    ack_hosts: list[str]
    fhir_client: str | None


class Receivers(Out):
    data: list[Receiver]
    count: int


class RosterEntry(Out):
    entry_id: int
    department: str
    duty: str
    person_id: str
    person_name: str
    phone: str | None
    starts_at: datetime
    ends_at: datetime


class RosterEntries(Out):
    data: list[RosterEntry]
    count: int


class EscalationStep(Out):
    action: str
    after_minutes: int | float  # as stored: a seeded chain may hold integers


class EscalationChain(Out):
    steps: list[EscalationStep]
