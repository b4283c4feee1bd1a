"""Modality Worklist identifiers (PS3.4 K.6.1): query Dataset -> StepQuery, step row -> reply Dataset.

The keys we know are one registry (`top_keys`): every Table K.6-1 and IHE SWF RAD-5 key, each
with what we hold for it (a getter over the step row, or nothing: returned empty) and what it
matches on; sequences with the keys of their item. A query's keys are read against it, at any
depth: a key with a value is a matching key where we match on it, every key is a return key
(IHE SWF: every requested key comes back). Sequences follow C.2.2.2.6: one item, whose keys
are matched item by item and returned alone; a zero-length item (or no item) asks for the
whole sequence. A key we neither match nor know, or a value on a key we only return, gets the
warning "optional keys not supported" (FF01) and comes back as we hold it (empty when unknown).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from imaging_common.dicom import (
    InvalidMatchValue,
    UnknownCharacterSet,
    combined_datetime_range,
    dataset_charsets,
    is_universal,
    text_value,
    wildcard_match,
)
from imaging_common.dicom.rawwrite import Element
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag

from worklist.domain.query import StepQuery
from worklist.domain.steps import PRIORITIES

SPS_SEQUENCE = Tag("ScheduledProcedureStepSequence")
SPECIFIC_CHARACTER_SET = Tag("SpecificCharacterSet")
DEFAULT_CODING_SCHEME = "99IMG"  # Settings.worklist_coding_scheme's default


class IdentifierError(ValueError):
    """The identifier cannot be a Modality Worklist query; `status` is the C-FIND failure to send."""

    def __init__(self, status: int, comment: str, offending: list[int] | None = None) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment[:64]  # ErrorComment is LO
        self.offending = offending or []


Row = Any  # an asyncpg Record (mapping of column -> value)
Getter = Callable[[Row], Any]


def _da(value: date | datetime | None) -> str:
    # f-strings, not strftime: this runs for every key of every response
    return f"{value.year:04d}{value.month:02d}{value.day:02d}" if value else ""


def _tm(value: datetime | None) -> str:
    return f"{value.hour:02d}{value.minute:02d}{value.second:02d}" if value else ""


def _sps_status(row: Row) -> str:
    if row["status"] == "in_progress":
        return "STARTED"
    if row["status"] == "scheduled":
        return "ARRIVED" if row["arrived_at"] else "SCHEDULED"
    return row["status"].upper()  # COMPLETED, DISCONTINUED, CANCELLED (only when asked for)


# ---- the keys we know ----------------------------------------------------------------------

# How a key with a value is matched (the conformance statement's "matching type" column):
# a StepQuery attribute (single value, `*`/`?` wildcards, `\\` lists), or one of these.
MATCH_START_DATE, MATCH_START_TIME = "start_date", "start_time"  # one combined range (C.2.2.2.5.1)
MATCH_CODING_SCHEME = "coding_scheme"  # our one local scheme: a step with a code matches it


@dataclass(frozen=True)
class Key:
    """One attribute of the worklist information model as we serve it."""

    keyword: str
    value: Getter | None = None  # what we hold; None: nothing, returned empty (Type 2: unknown)
    match: str | None = None  # how a value matches; None: return key only
    items: tuple[Key, ...] | None = None  # SQ: the keys of its item
    has_item: Getter | None = None  # SQ with items: whether a step holds one (None: always)
    expand: bool = True  # SQ items: returned when the whole sequence is asked for (empty item)

    @property
    def tag(self) -> BaseTag:
        return Tag(self.keyword)

    @property
    def vr(self) -> str:
        return _vr(self.tag)

    def item_keys(self) -> dict[int, Key]:
        return {int(k.tag): k for k in self.items or ()}


def _empty(*keywords: str) -> tuple[Key, ...]:
    """Keys of the model we hold nothing for: accepted, returned empty (sequences: no item)."""
    return tuple(Key(k) for k in keywords)


def _code_item(value: Getter | None, meaning: Getter | None, scheme: str) -> tuple[Key, ...]:
    """The Code Sequence Macro (PS3.3 8.8) of an item: our exam code in our local scheme."""
    return (
        Key("CodeValue", value, match="protocol_code" if value else None),
        Key("CodingSchemeDesignator", (lambda r: scheme) if value else None,
            match=MATCH_CODING_SCHEME if value else None),
        Key("CodingSchemeVersion", expand=False),  # a local scheme has no versions
        Key("CodeMeaning", meaning),
        Key("ProtocolContextSequence", expand=False),  # only in Scheduled Protocol Code Sequence items
    )


def _code_sequence(keyword: str, scheme: str) -> Key:
    return Key(keyword, items=_code_item(lambda r: r["protocol_code"], lambda r: r["description"][:64], scheme),
               has_item=lambda r: bool(r["protocol_code"]))


_REFERENCE_ITEM = _empty("ReferencedSOPClassUID", "ReferencedSOPInstanceUID")
_ANY_CODE_ITEM = _empty("CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning")
_ISSUER_ITEM = _empty("LocalNamespaceEntityID", "UniversalEntityID", "UniversalEntityIDType")  # HL7v2 HD macro
_PERSON_ITEM = (Key("PersonIdentificationCodeSequence", items=_ANY_CODE_ITEM),
                Key("InstitutionCodeSequence", items=_ANY_CODE_ITEM),
                *_empty("PersonAddress", "PersonTelephoneNumbers", "PersonTelecomInformation", "InstitutionName",
                        "InstitutionAddress"))  # Person Identification Macro (PS3.3 10.1)
_OTHER_ID_ITEM = (*_empty("PatientID", "IssuerOfPatientID", "TypeOfPatientID"),
                  Key("IssuerOfPatientIDQualifiersSequence"))


@lru_cache(maxsize=8)
def top_keys(scheme: str = DEFAULT_CODING_SCHEME) -> dict[int, Key]:
    """Every key of the model by tag (top level); `scheme` is our exam codes' designator."""
    sps = Key("ScheduledProcedureStepSequence", items=(
        Key("ScheduledStationAETitle", lambda r: r["station_ae_title"], match="station_ae_title"),
        Key("ScheduledStationName", lambda r: r["station_name"], match="station_name"),
        Key("ScheduledProcedureStepLocation", lambda r: r["location"], match="location"),
        Key("ScheduledProcedureStepStartDate", lambda r: _da(r["start_at"]), match=MATCH_START_DATE),
        Key("ScheduledProcedureStepStartTime", lambda r: _tm(r["start_at"]), match=MATCH_START_TIME),
        Key("ScheduledProcedureStepEndDate", lambda r: _da(r["end_at"])),
        Key("ScheduledProcedureStepEndTime", lambda r: _tm(r["end_at"])),
        Key("ScheduledPerformingPhysicianName", lambda r: r["performing_physician"], match="performing_physician"),
        Key("ScheduledProcedureStepDescription", lambda r: r["description"]),
        _code_sequence("ScheduledProtocolCodeSequence", scheme),
        Key("ScheduledProcedureStepID", lambda r: r["sps_id"], match="sps_id"),
        Key("ScheduledProcedureStepStatus", _sps_status, match="sps_status"),
        Key("CommentsOnTheScheduledProcedureStep",
            lambda r: r["body_part"] + (f" ({r['laterality']})" if r["laterality"] else "")),
        Key("Modality", lambda r: r["modality"], match="modality"),
        Key("RequestedContrastAgent", lambda r: "CONTRAST" if r["contrast"] else ""),
        *_empty("PreMedication", "ScheduledProcedureStepModificationDateTime", "AnatomicalOrientationType"),
        Key("ScheduledPerformingPhysicianIdentificationSequence", items=_PERSON_ITEM, expand=False),
        Key("ScheduledStationNameCodeSequence", items=_ANY_CODE_ITEM, expand=False),
        Key("ScheduledStationClassCodeSequence", items=_ANY_CODE_ITEM, expand=False),
        Key("ScheduledStationGeographicLocationCodeSequence", items=_ANY_CODE_ITEM, expand=False),
        Key("ScheduledProcessingApplicationsCodeSequence", items=_ANY_CODE_ITEM, expand=False),
        Key("ScheduledHumanPerformersSequence", expand=False),
        Key("ScheduledSpecimenSequence", expand=False),
    ))
    keys = (
        sps,
        # Requested Procedure
        Key("RequestedProcedureID", lambda r: r["requested_procedure_id"], match="requested_procedure_id"),
        Key("RequestedProcedureDescription", lambda r: r["requested_procedure_description"]),
        _code_sequence("RequestedProcedureCodeSequence", scheme),
        Key("StudyInstanceUID", lambda r: r["study_instance_uid"], match="study_instance_uid"),
        Key("ReferencedStudySequence", items=_REFERENCE_ITEM),
        Key("RequestedProcedurePriority", lambda r: PRIORITIES.get(r["priority"], "ROUTINE")),
        Key("ReasonForTheRequestedProcedure", lambda r: r["reason"]),
        Key("ReasonForRequestedProcedureCodeSequence", items=_ANY_CODE_ITEM),
        *_empty("RequestedProcedureComments", "StudyDate", "StudyTime", "StudyDescription",
                "PatientTransportArrangements", "RequestedProcedureLocation", "ConfidentialityCode",
                "ReportingPriority", "NamesOfIntendedRecipientsOfResults"),
        Key("IntendedRecipientsOfResultsIdentificationSequence", items=_PERSON_ITEM),
        # Imaging Service Request
        Key("AccessionNumber", lambda r: r["accession_number"], match="accession_number"),
        Key("IssuerOfAccessionNumberSequence", items=_ISSUER_ITEM),
        Key("RequestingPhysician", lambda r: r["referring_physician"]),
        Key("ReferringPhysicianName", lambda r: r["referring_physician"]),
        Key("RequestingService", lambda r: r["requesting_service"]),
        Key("RequestingServiceCodeSequence", items=_ANY_CODE_ITEM),
        Key("RequestingPhysicianIdentificationSequence", items=_PERSON_ITEM),
        Key("ReferringPhysicianIdentificationSequence", items=_PERSON_ITEM),
        *_empty("ReasonForTheImagingServiceRequest", "ImagingServiceRequestComments",
                "IssueDateOfImagingServiceRequest", "IssueTimeOfImagingServiceRequest",
                "PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest",
                "OrderEnteredBy", "OrderEntererLocation", "OrderCallbackPhoneNumber",
                "OrderCallbackTelecomInformation", "ReferencedRequestSequence"),
        # Visit Identification, Status, Relationship, Admission
        Key("AdmissionID", lambda r: r["admission_id"], match="admission_id"),
        Key("CurrentPatientLocation", lambda r: r["current_location"]),
        Key("ReferencedPatientSequence", items=_REFERENCE_ITEM),
        Key("InstitutionCodeSequence", items=_ANY_CODE_ITEM),
        Key("InstitutionalDepartmentTypeCodeSequence", items=_ANY_CODE_ITEM),
        Key("AdmittingDiagnosesCodeSequence", items=_ANY_CODE_ITEM),
        Key("IssuerOfAdmissionIDSequence", items=_ISSUER_ITEM),
        Key("IssuerOfServiceEpisodeIDSequence", items=_ISSUER_ITEM),
        *_empty("IssuerOfAdmissionID", "InstitutionName", "InstitutionAddress",
                "InstitutionalDepartmentName", "RouteOfAdmissions", "AdmittingDate", "AdmittingTime",
                "AdmittingDiagnosesDescription", "VisitStatusID", "PatientInstitutionResidence",
                "ScheduledPatientInstitutionResidence", "VisitComments", "ServiceEpisodeID",
                "ServiceEpisodeDescription", "ReferringPhysicianAddress",
                "ReferringPhysicianTelephoneNumbers", "ReferencedVisitSequence", "ReferencedPatientAliasSequence"),
        # Patient Identification, Demographic, Medical
        Key("PatientName", lambda r: r["patient_name"], match="patient_name"),
        Key("PatientID", lambda r: r["patient_id"], match="patient_id"),
        Key("IssuerOfPatientID", lambda r: r["issuer_of_patient_id"], match="issuer_of_patient_id"),
        Key("PatientBirthDate", lambda r: _da(r["birth_date"])),
        Key("PatientSex", lambda r: r["sex"], match="sex"),
        Key("MedicalAlerts", lambda r: r["medical_alerts"]),
        Key("PatientState", lambda r: r["medical_alerts"]),
        Key("AdditionalPatientHistory", lambda r: r["history"]),
        Key("OtherPatientIDsSequence", items=_OTHER_ID_ITEM),
        Key("PatientPrimaryLanguageCodeSequence", items=_ANY_CODE_ITEM),
        *_empty("IssuerOfPatientIDQualifiersSequence", "TypeOfPatientID", "OtherPatientIDs", "OtherPatientNames",
                "PatientBirthName", "PatientBirthTime", "PatientAge", "PatientWeight", "PatientSize",
                "PatientAddress", "PatientTelephoneNumbers", "PatientTelecomInformation", "MilitaryRank",
                "BranchOfService", "EthnicGroup", "Occupation", "PatientComments", "PatientMotherBirthName",
                "MedicalRecordLocator", "PatientReligiousPreference", "ResponsiblePerson", "ResponsiblePersonRole",
                "ResponsibleOrganization", "PatientSpeciesDescription", "PatientSpeciesCodeSequence",
                "PatientBreedDescription", "PatientBreedCodeSequence", "BreedRegistrationSequence",
                "PatientSexNeutered", "ConfidentialityConstraintOnPatientDataDescription", "PregnancyStatus",
                "Allergies", "SpecialNeeds", "LastMenstrualDate", "SmokingStatus", "PertinentDocumentsSequence",
                "ReferencedPatientPhotoSequence"),
        # Not of the model, but sent by modalities that reuse their Q/R query code: returned empty
        *_empty("QueryRetrieveLevel", "RetrieveAETitle", "InstanceAvailability", "TimezoneOffsetFromUTC"),
    )
    return {int(k.tag): k for k in keys}


# ---- reading a query -----------------------------------------------------------------------

ALL = "all"  # a sequence asked for whole (zero-length item, or no item)
Requested = tuple[BaseTag, Any]  # (tag, None | ALL | list[Requested] for a sequence's item keys)


@dataclass
class ParsedQuery:
    query: StepQuery
    charsets: list[str]
    requested: list[Requested] = field(default_factory=list)  # in query order, SPS sequence included
    coding_scheme: str = DEFAULT_CODING_SCHEME
    unsupported: list[str] = field(default_factory=list)  # keys flagged with FF01
    plan: list[Any] | None = None  # how to fill each requested key (reply_plan), made on first use
    _date: str | None = None
    _time: str | None = None


def _keyword(tag: BaseTag) -> str:
    return keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})"


def _vr(tag: BaseTag) -> str:
    if not keyword_for_tag(tag):
        return "UN"  # private or unknown: returned empty, so the VR only has to be harmless
    return dictionary_VR(tag).split(" or ")[0]


_BINARY_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "AT", "OB", "OW", "OF", "OD", "OL", "OV", "SV", "UV", "UN"}


def _element_vr(ds: Dataset, tag: BaseTag, keyword: str) -> str:
    """The element's VR; in implicit VR (no VR on the wire) or declared UN, the dictionary's."""
    try:
        vr = ds.get_item(tag).VR
    except Exception:  # noqa: BLE001 - a broken element is a malformed identifier
        raise IdentifierError(0xA900, f"unreadable element {keyword}", [int(tag)]) from None
    if vr in (None, "UN") and keyword_for_tag(tag):
        return _vr(tag)
    return vr or "UN"


def parse_identifier(ds: Dataset, *, coding_scheme: str = DEFAULT_CODING_SCHEME) -> ParsedQuery:
    """Read a Modality Worklist query; raises IdentifierError for what is not one."""
    try:
        charsets = dataset_charsets(ds)
    except UnknownCharacterSet as exc:
        raise IdentifierError(0xA900, str(exc), [int(SPECIFIC_CHARACTER_SET)]) from None
    parsed = ParsedQuery(StepQuery(), charsets, coding_scheme=coding_scheme)
    parsed.requested = _parse_keys(ds, top_keys(coding_scheme), parsed)
    try:
        parsed.query.start = combined_datetime_range(parsed._date, parsed._time)
    except InvalidMatchValue as exc:
        raise IdentifierError(0xA900, str(exc), [int(Tag("ScheduledProcedureStepStartDate")),
                                                 int(Tag("ScheduledProcedureStepStartTime"))]) from None
    return parsed


def _parse_keys(ds: Dataset, known: dict[int, Key], parsed: ParsedQuery) -> list[Requested]:
    """The keys of one level (the identifier or a sequence's item), matching values noted."""
    requested: list[Requested] = []
    for elem_tag in list(ds.keys()):
        tag = Tag(elem_tag)
        if tag == SPECIFIC_CHARACTER_SET or tag.element == 0x0000:  # group lengths carry no key
            continue
        keyword = _keyword(tag)
        key = known.get(int(tag))
        vr = _element_vr(ds, tag, keyword)
        if vr == "SQ":
            requested.append((tag, _parse_sequence(ds, tag, keyword, key, parsed)))
            continue
        requested.append((tag, None))
        if key is None:
            parsed.unsupported.append(keyword)
            continue
        if vr in _BINARY_VRS:
            raw = ds.get_item(tag).value  # raw bytes, or a value pydicom has already converted
            value: str | None = "" if raw is None or raw in (b"", "") or raw == [] else "<binary>"
        else:
            value = _text(ds, tag, keyword, parsed.charsets)
        _match(parsed, key, value)
    return requested


def _parse_sequence(ds: Dataset, tag: BaseTag, keyword: str, key: Key | None, parsed: ParsedQuery) -> Any:
    """A sequence key (C.2.2.2.6): its one item's keys, or ALL for a zero-length item or none."""
    try:
        seq = ds[tag].value
    except Exception:  # noqa: BLE001
        raise IdentifierError(0xA900, f"malformed {keyword}", [int(tag)]) from None
    if seq is None or (isinstance(seq, bytes | str) and not seq):
        seq = []
    if not isinstance(seq, DicomSequence | list):
        raise IdentifierError(0xA900, f"{keyword} is not a sequence", [int(tag)])
    if key is None:
        parsed.unsupported.append(keyword)
        return ALL  # returned empty: nothing of it is known
    if len(seq) > 1:
        raise IdentifierError(0xA900, f"{keyword} must have one item", [int(tag)])
    if len(seq) == 0 or len(seq[0]) == 0:
        return ALL
    return _parse_keys(seq[0], key.item_keys(), parsed)


def _match(parsed: ParsedQuery, key: Key, value: str | None) -> None:
    """Note a key's value for matching; a value on a key we do not match on is flagged (FF01)."""
    if key.match is None:
        if value and not is_universal(value):
            parsed.unsupported.append(key.keyword)  # a value to match on a key we only return
        return
    if key.match == MATCH_START_DATE:
        parsed._date = value
    elif key.match == MATCH_START_TIME:
        parsed._time = value
    elif key.match == MATCH_CODING_SCHEME:
        if value is not None and not is_universal(value):
            # our codes are all of one scheme: it matches every step that has a code, or none
            ok = any(wildcard_match(v.strip(" "), parsed.coding_scheme) for v in value.split("\\"))
            parsed.query.coded = ok and parsed.query.coded is not False
    else:
        q = parsed.query
        if getattr(q, key.match) is None or is_universal(getattr(q, key.match)):
            setattr(q, key.match, value)
        elif value is not None and not is_universal(value):
            q.also.append((key.match, value))  # the same column asked twice (two code sequences)


def _text(ds: Dataset, tag: BaseTag, keyword: str, charsets: list[str]) -> str | None:
    try:
        return text_value(ds, tag, charsets)
    except UnicodeDecodeError:
        raise IdentifierError(
            0xA900, f"{keyword} is not valid {'/'.join(charsets)} text", [int(tag)]) from None
    except Exception:  # noqa: BLE001 - pydicom raises assorted errors for malformed values
        raise IdentifierError(0xA900, f"malformed value of {keyword}", [int(tag)]) from None


# ---- what we return ------------------------------------------------------------------------


@dataclass(frozen=True)
class Items:
    """A sequence in a reply plan: one item (when the step holds one) filled by `plan`."""

    present: Getter | None  # None: always one item
    plan: list[PlanEntry]


PlanEntry = tuple[int, str, Any]  # (tag, VR, getter | Items | None: returned empty)


def _holds(key: Key) -> bool:
    """Whether we can hold a value for the key (for a sequence: for a key of its item)."""
    return key.value is not None or any(_holds(k) for k in key.items or ())


def _plan(requested: Any, known: dict[int, Key]) -> list[PlanEntry]:
    if requested == ALL:  # the whole sequence: every key we hold something for
        requested = [(k.tag, ALL if k.items is not None else None) for k in known.values() if k.expand and _holds(k)]
    plan: list[PlanEntry] = []
    for tag, sub in requested:
        key = known.get(int(tag))
        if key is None:
            plan.append((int(tag), _vr(tag), None))
        elif sub is not None:  # a sequence
            how = Items(key.has_item, _plan(sub, key.item_keys())) if _holds(key) else None
            plan.append((int(tag), "SQ", how))
        else:
            plan.append((int(tag), key.vr, key.value))
    return plan


def reply_plan(parsed: ParsedQuery) -> list[PlanEntry]:
    """Per requested key, how to fill it — worked out once per query, run per row."""
    return _plan(parsed.requested, top_keys(parsed.coding_scheme))


def _run_plan(plan: list[PlanEntry], row: Row) -> list[Element]:
    out: list[Element] = []
    for tag, vr, how in plan:
        if how is None:
            out.append((tag, vr, [] if vr == "SQ" else ""))
        elif isinstance(how, Items):
            out.append((tag, vr, [_run_plan(how.plan, row)] if how.present is None or how.present(row) else []))
        else:
            out.append((tag, vr, how(row)))
    return out


def reply_elements(row: Row, parsed: ParsedQuery) -> list[Element]:
    """The reply identifier for one step: exactly the requested keys, filled where we can."""
    if parsed.plan is None:
        parsed.plan = reply_plan(parsed)
    return _run_plan(parsed.plan, row)


# The columns the getters above read: a C-FIND selects only these, as a universal query
# decodes every selected column of 10,000 rows.
REPLY_COLUMNS = (
    "accession_number", "referring_physician", "patient_name", "patient_id", "issuer_of_patient_id", "birth_date",
    "sex", "study_instance_uid", "requested_procedure_id", "requested_procedure_description", "priority",
    "requesting_service", "admission_id", "current_location", "reason", "history", "medical_alerts",
    "station_ae_title", "start_at", "end_at", "modality", "performing_physician", "description", "sps_id",
    "station_name", "location", "status", "arrived_at", "contrast", "body_part", "laterality", "protocol_code",
)

_TEXT_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "UC"}


def reply_texts(elements: list[Element]) -> list[str]:
    """Every non-empty text value of a reply (to choose a character set that can carry them)."""
    out: list[str] = []
    for _, vr, value in elements:
        if vr == "SQ":
            for item in value or ():  # type: ignore[union-attr]
                out.extend(reply_texts(item))  # type: ignore[arg-type]
        elif vr in _TEXT_VRS and value:
            out.append(value)  # type: ignore[arg-type]
    return out
