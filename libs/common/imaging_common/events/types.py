"""Every event type of the platform: one pydantic model each, carrying its type, defined once here.

Routing key = event type = `<entity>.<past-tense verb>`, the model's `type` (a ClassVar: it travels
once, in the envelope, never in the data). A producer builds the model and hands it to `publish()`;
a consumer names the model in its `HANDLERS` and its handler gets `event.data` validated by it
(`imaging_common.events.handlers`). Fields are additive: new optional fields may be added, none renamed or
removed, so older consumers keep working during a rolling upgrade.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict


class EventData(BaseModel):
    """Base of every event's data; unknown fields are kept so newer producers don't break us."""

    model_config = ConfigDict(extra="allow")
    type: ClassVar[str]  # the event type, e.g. "order.created": set by each model, never a field

    def subject_versions(self) -> list[tuple[str, int]]:
        """(subject key, version) pairs this event is a snapshot of, e.g. [("order:O1", 3)].

        A consumer applies the event only if it is newer than what it applied for at least one
        of them (see `imaging_common.events.versions`); events without versions always apply.
        """
        return []


# ---- shared parts -------------------------------------------------------------------------

Sex = Literal["M", "F", "O", "U"]


class PatientRef(BaseModel):
    """Who the event is about, as every consumer needs to show or match them."""

    model_config = ConfigDict(extra="allow")
    empi_id: str  # enterprise patient ID (EMPI), never reused
    patient_id: str  # PACS PatientID (0010,0020) used on the modality and the film
    name: str  # as registered, e.g. "张三" or "SMITH^JOHN"
    name_latin: str | None = None  # pinyin or Latin form, e.g. "ZHANG^SAN"
    birth_date: date | None = None
    sex: Sex = "U"
    phone: str | None = None
    id_number_masked: str | None = None  # e.g. "1101**********1234"; never the full number
    id_number_sha256: str | None = None  # SHA-256 hex of the upper-cased ID number: check-in by ID card
    card_number: str | None = None  # hospital (visit) card number, for check-in by card
    # The patient's record version in registration when this snapshot was taken (EMPI person
    # version). A copy is overwritten only by a snapshot at least as new; without a version the
    # snapshot only fills fields the copy does not know (see events.versions.merge_patient).
    version: int | None = None


class SpecialConditions(BaseModel):
    """Conditions shown apart at every step (smart-imaging standard 6.1.7)."""

    critical: bool = False
    mdr: bool = False  # multi-drug-resistant organism
    infectious: bool = False
    notes: str | None = None


# ---- patients (registration) ---------------------------------------------------------------


def _patient_version(patient: PatientRef) -> list[tuple[str, int]]:
    return [(f"patient:{patient.empi_id}", patient.version)] if patient.version is not None else []


class PatientRegistered(EventData):
    type: ClassVar[str] = "patient.registered"
    patient: PatientRef

    def subject_versions(self) -> list[tuple[str, int]]:
        return _patient_version(self.patient)


class PatientUpdated(EventData):
    type: ClassVar[str] = "patient.updated"
    patient: PatientRef
    changed: list[str] = []  # names of changed fields

    def subject_versions(self) -> list[tuple[str, int]]:
        return _patient_version(self.patient)


class PatientMerged(EventData):
    type: ClassVar[str] = "patient.merged"
    surviving: PatientRef  # the golden record after the merge
    merged_empi_ids: list[str]  # EMPI ids folded into the survivor
    merged_patient_ids: list[str] = []  # their PACS PatientIDs, now aliases of the survivor
    merged_versions: dict[str, int] = {}  # EMPI id -> its version after the merge

    def subject_versions(self) -> list[tuple[str, int]]:
        return _patient_version(self.surviving) + [(f"patient:{e}", v) for e, v in self.merged_versions.items()]


# ---- orders (registration) -----------------------------------------------------------------


class ExamItem(BaseModel):
    code: str  # local exam item code, e.g. "CT-CHEST-PLAIN"
    name: str  # e.g. "胸部CT平扫"
    modality: str  # DICOM modality, e.g. "CT", "MR", "DX"
    body_part: str | None = None
    laterality: Literal["L", "R", "B"] | None = None
    contrast: bool = False


class OrderCreated(EventData):
    """An electronic application form (smart-imaging standard 5.1.1) was accepted."""

    type: ClassVar[str] = "order.created"
    order_id: str
    accession_number: str  # (0008,0050), unique per order
    requested_procedure_id: str
    study_instance_uid: str  # assigned at ordering so worklist, print and reporting agree
    patient: PatientRef
    patient_class: Literal["outpatient", "inpatient", "emergency", "physical-exam"] = "outpatient"
    visit_number: str | None = None
    ward: str | None = None
    bed: str | None = None
    ordering_doctor: str | None = None
    ordering_doctor_id: str | None = None
    ordering_department: str | None = None
    clinical_diagnosis: str | None = None
    history: str | None = None
    purpose: str | None = None
    items: list[ExamItem]
    special: SpecialConditions = SpecialConditions()
    priority: Literal["routine", "urgent", "stat"] = "routine"
    ordered_at: datetime
    requested_at: datetime | None = None  # when the exam is wanted (TQ1-7), if the order says
    # Per-order version in registration: 1 when created, +1 with each change or cancel.
    version: int | None = None

    def subject_versions(self) -> list[tuple[str, int]]:
        return [(f"order:{self.order_id}", self.version)] if self.version is not None else []


class OrderChanged(OrderCreated):
    """The order as it now is (items, time, priority, department, patient...): a whole snapshot, so
    a consumer that missed or has not yet seen order.created can apply it alone."""

    type: ClassVar[str] = "order.changed"
    changed: list[str] = []  # names of changed fields, e.g. ["items", "priority"]
    reason: str | None = None


class OrderCancelled(EventData):
    type: ClassVar[str] = "order.cancelled"
    order_id: str
    accession_number: str
    reason: str | None = None
    version: int | None = None  # the order's version (see OrderCreated.version)
    # Who and what the cancelled order was about: a consumer that keeps cancelled orders as history and
    # meets the cancellation first (its order.created, older, is then stale) still knows them.
    patient: PatientRef | None = None
    items: list[ExamItem] = []

    def subject_versions(self) -> list[tuple[str, int]]:
        return [(f"order:{self.order_id}", self.version)] if self.version is not None else []


# ---- appointments (scheduling) -------------------------------------------------------------


class AppointmentInfo(BaseModel):
    appointment_id: str
    order_id: str
    accession_number: str
    patient: PatientRef
    exam_code: str
    exam_name: str
    modality: str
    room_id: str
    room_name: str
    station_ae_title: str | None = None  # the modality's AE title, for the worklist
    campus: str | None = None
    start: datetime
    end: datetime
    special: SpecialConditions = SpecialConditions()
    priority: Literal["routine", "urgent", "stat"] = "routine"
    version: int | None = None  # per-appointment version in scheduling, +1 with each change
    booked_at: datetime | None = None  # when it was first booked (the department's order -> booked time)


class _WithAppointment(EventData):
    """An appointment event carrying the whole appointment: a snapshot of its version."""

    appointment: AppointmentInfo

    def subject_versions(self) -> list[tuple[str, int]]:
        version = self.appointment.version
        return [(f"appointment:{self.appointment.appointment_id}", version)] if version is not None else []


class _AboutAppointment(EventData):
    """An appointment event naming the appointment (and its order): a snapshot of its version."""

    appointment_id: str
    order_id: str
    accession_number: str
    version: int | None = None

    def subject_versions(self) -> list[tuple[str, int]]:
        return [(f"appointment:{self.appointment_id}", self.version)] if self.version is not None else []


class AppointmentBooked(_WithAppointment):
    type: ClassVar[str] = "appointment.booked"


class AppointmentRescheduled(_WithAppointment):
    type: ClassVar[str] = "appointment.rescheduled"  # the appointment: the new time and place
    previous_start: datetime
    previous_room_id: str


class AppointmentCancelled(_AboutAppointment):
    type: ClassVar[str] = "appointment.cancelled"
    reason: str


class AppointmentNoShow(_AboutAppointment):
    type: ClassVar[str] = "appointment.noshow"
    patient: PatientRef
    reason: str | None = None
    no_show_count: int = 1  # the patient's no-shows so far, for the consequences rule


class AppointmentReminder(EventData):
    type: ClassVar[str] = "appointment.reminder"
    appointment: AppointmentInfo
    preparation: str | None = None  # e.g. "检查前禁食4小时"


# ---- exam flow (queue-calling, worklist) ---------------------------------------------------


class PatientArrived(EventData):
    """Checked in at the imaging center: the exam is "arrived" (standard 6.3 (1))."""

    type: ClassVar[str] = "patient.arrived"
    order_id: str
    accession_number: str
    patient: PatientRef
    appointment_id: str | None = None
    queue_id: str
    queue_number: str  # the ticket number shown and called, e.g. "CT012"
    room_id: str | None = None
    arrived_at: datetime


class ExamStarted(EventData):
    type: ClassVar[str] = "exam.started"
    accession_number: str
    study_instance_uid: str
    patient: PatientRef
    mpps_uid: str
    station_ae_title: str
    modality: str
    started_at: datetime


class ExamCompleted(EventData):
    type: ClassVar[str] = "exam.completed"
    accession_number: str
    study_instance_uid: str
    patient: PatientRef
    mpps_uid: str
    station_ae_title: str
    modality: str
    status: Literal["completed", "discontinued"] = "completed"
    started_at: datetime | None = None
    completed_at: datetime
    order_id: str | None = None
    exam_code: str | None = None
    exam_name: str | None = None
    body_part: str | None = None


# ---- films (print-scp) ---------------------------------------------------------------------


class FilmPrinted(EventData):
    type: ClassVar[str] = "film.printed"
    film_id: str
    calling_ae_title: str
    film_size: str | None = None
    image_count: int
    copies: int = 1
    printed_at: datetime
    study_instance_uid: str | None = None  # when the modality sent one


class FilmMatched(EventData):
    type: ClassVar[str] = "film.matched"
    film_id: str
    patient: PatientRef
    accession_number: str
    study_instance_uid: str | None = None
    method: Literal["study-uid", "ocr", "manual"]
    confidence: float = 1.0
    matched_by: str | None = None  # staff user for manual matches


class FilmUnmatched(EventData):
    """A matched film no longer belongs to its study (order cancelled, matched again by hand...):
    whoever showed it with the patient's films stops; film.matched follows if it goes elsewhere."""

    type: ClassVar[str] = "film.unmatched"
    film_id: str
    patient: PatientRef  # the patient it was attached to
    accession_number: str
    reason: str  # e.g. "order-cancelled"


# ---- reports (reporting) -------------------------------------------------------------------


class ReportSigned(EventData):
    type: ClassVar[str] = "report.signed"
    report_id: str
    version: int
    accession_number: str
    study_instance_uid: str | None = None
    patient: PatientRef
    signed_by: str
    signed_at: datetime
    content_sha256: str
    impression: str | None = None
    # For the department's statistics (dashboard, standard 8.3.2-8.3.3): the radiologist's positive call,
    # the preliminary signature, and whether the final impression kept the preliminary one.
    positive: bool | None = None
    preliminary_at: datetime | None = None
    preliminary_by: str | None = None
    preliminary_kept: bool | None = None


class ReportAmended(EventData):
    type: ClassVar[str] = "report.amended"
    report_id: str
    version: int
    previous_version: int
    accession_number: str
    patient: PatientRef
    kind: Literal["amended", "corrected"]
    reason: str
    signed_by: str
    signed_at: datetime


# ---- critical values (reporting raises; critical-values closes the loop) -------------------


class CriticalRaised(EventData):
    type: ClassVar[str] = "critical.raised"
    critical_id: str  # unique per finding; receivers de-duplicate on it
    accession_number: str
    patient: PatientRef
    finding: str  # e.g. "张力性气胸"
    item_code: str | None = None  # critical-value dictionary item, when matched
    modality: str | None = None
    report_id: str | None = None
    raised_by: str  # user id, or "ai:<model>"
    raised_at: datetime
    ordering_doctor_id: str | None = None
    ordering_department: str | None = None
    ward: str | None = None
    source: Literal["radiologist", "dictionary", "ai"] = "radiologist"


class CriticalNotified(EventData):
    type: ClassVar[str] = "critical.notified"
    critical_id: str
    accession_number: str
    channel: Literal["hl7", "fhir", "phone", "page"]
    recipient: str
    notified_at: datetime


class CriticalAcknowledged(EventData):
    type: ClassVar[str] = "critical.acknowledged"
    critical_id: str
    accession_number: str
    acknowledged_by: str
    channel: Literal["hl7", "fhir", "page", "phone", "manual"]
    action_taken: str | None = None
    acknowledged_at: datetime


class CriticalEscalated(EventData):
    type: ClassVar[str] = "critical.escalated"
    critical_id: str
    accession_number: str
    step: str  # e.g. "repeat", "backup-clinician", "phone-task", "department-head"
    recipient: str | None = None
    escalated_at: datetime


class CriticalClosed(EventData):
    type: ClassVar[str] = "critical.closed"
    critical_id: str
    accession_number: str
    closed_at: datetime
    outcome: str


# ---- devices (dashboard) -------------------------------------------------------------------


class _DeviceEvent(EventData):
    device_id: str
    kind: Literal["modality", "printer"]
    name: str
    ae_title: str
    detected_at: datetime


class DeviceDisconnected(_DeviceEvent):
    """A registered modality or printer stopped answering C-ECHO during its opening hours (9.1.2)."""

    type: ClassVar[str] = "device.disconnected"
    last_seen_at: datetime | None = None  # its last answer or activity (MPPS, film)


class DeviceReconnected(_DeviceEvent):
    type: ClassVar[str] = "device.reconnected"


EVENT_MODELS: dict[str, type[EventData]] = {
    model.type: model
    for model in (
        PatientRegistered, PatientUpdated, PatientMerged, OrderCreated, OrderChanged, OrderCancelled,
        AppointmentBooked, AppointmentRescheduled, AppointmentCancelled, AppointmentNoShow,
        AppointmentReminder, PatientArrived, ExamStarted, ExamCompleted, FilmPrinted, FilmMatched,
        FilmUnmatched,
        ReportSigned, ReportAmended, CriticalRaised, CriticalNotified, CriticalAcknowledged,
        CriticalEscalated, CriticalClosed, DeviceDisconnected, DeviceReconnected,
    )
}
"""Event type -> the model of its data. The single list of what may travel on the bus."""
