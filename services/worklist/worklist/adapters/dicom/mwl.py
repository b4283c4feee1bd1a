"""Modality Worklist identifiers (PS3.4 K.6.1): query Dataset -> StepQuery, step row -> reply Dataset.

Matching keys we honour (K.6.1.2.2 and the issue's list), top level and inside the Scheduled
Procedure Step Sequence; every other key the modality sends is a return key: we fill it when we
hold the value and return it empty otherwise (IHE SWF: every requested key comes back). A key
we neither match nor know is flagged with the warning "optional keys not supported" (FF01).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from imaging_common.dicom import (
    InvalidMatchValue,
    UnknownCharacterSet,
    combined_datetime_range,
    dataset_charsets,
    is_universal,
    text_value,
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


class IdentifierError(ValueError):
    """The identifier cannot be a Modality Worklist query; `status` is the C-FIND failure to send."""

    def __init__(self, status: int, comment: str, offending: list[int] | None = None) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment[:64]  # ErrorComment is LO
        self.offending = offending or []


# ---- what we match on ----------------------------------------------------------------------

# top-level keyword -> StepQuery attribute
TOP_MATCHING = {
    "PatientName": "patient_name",
    "PatientID": "patient_id",
    "AccessionNumber": "accession_number",
    "RequestedProcedureID": "requested_procedure_id",
    "StudyInstanceUID": "study_instance_uid",
    "IssuerOfPatientID": "issuer_of_patient_id",
    "AdmissionID": "admission_id",
    "PatientSex": "sex",
}
SPS_MATCHING = {
    "ScheduledStationAETitle": "station_ae_title",
    "Modality": "modality",
    "ScheduledPerformingPhysicianName": "performing_physician",
    "ScheduledStationName": "station_name",
    "ScheduledProcedureStepLocation": "location",
    "ScheduledProcedureStepID": "sps_id",
    "ScheduledProcedureStepStatus": "sps_status",
}
SPS_DATE, SPS_TIME = "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime"


# ---- what we return ------------------------------------------------------------------------

Row = Any  # an asyncpg Record (mapping of column -> value)


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


TOP_VALUES: dict[str, Callable[[Row], Any]] = {
    "AccessionNumber": lambda r: r["accession_number"],
    "ReferringPhysicianName": lambda r: r["referring_physician"],
    "PatientName": lambda r: r["patient_name"],
    "PatientID": lambda r: r["patient_id"],
    "IssuerOfPatientID": lambda r: r["issuer_of_patient_id"],
    "PatientBirthDate": lambda r: _da(r["birth_date"]),
    "PatientSex": lambda r: r["sex"],
    "StudyInstanceUID": lambda r: r["study_instance_uid"],
    "RequestedProcedureID": lambda r: r["requested_procedure_id"],
    "RequestedProcedureDescription": lambda r: r["requested_procedure_description"],
    "RequestedProcedurePriority": lambda r: PRIORITIES.get(r["priority"], "ROUTINE"),
    "RequestingPhysician": lambda r: r["referring_physician"],
    "RequestingService": lambda r: r["requesting_service"],
    "AdmissionID": lambda r: r["admission_id"],
    "CurrentPatientLocation": lambda r: r["current_location"],
    "ReasonForTheRequestedProcedure": lambda r: r["reason"],
    "AdditionalPatientHistory": lambda r: r["history"],
    "MedicalAlerts": lambda r: r["medical_alerts"],
    "PatientState": lambda r: r["medical_alerts"],
}
SPS_VALUES: dict[str, Callable[[Row], Any]] = {
    "ScheduledStationAETitle": lambda r: r["station_ae_title"],
    "ScheduledProcedureStepStartDate": lambda r: _da(r["start_at"]),
    "ScheduledProcedureStepStartTime": lambda r: _tm(r["start_at"]),
    "ScheduledProcedureStepEndDate": lambda r: _da(r["end_at"]),
    "ScheduledProcedureStepEndTime": lambda r: _tm(r["end_at"]),
    "Modality": lambda r: r["modality"],
    "ScheduledPerformingPhysicianName": lambda r: r["performing_physician"],
    "ScheduledProcedureStepDescription": lambda r: r["description"],
    "ScheduledProcedureStepID": lambda r: r["sps_id"],
    "ScheduledStationName": lambda r: r["station_name"],
    "ScheduledProcedureStepLocation": lambda r: r["location"],
    "ScheduledProcedureStepStatus": _sps_status,
    "RequestedContrastAgent": lambda r: "CONTRAST" if r["contrast"] else "",
    "CommentsOnTheScheduledProcedureStep": lambda r: r["body_part"]
    + (f" ({r['laterality']})" if r["laterality"] else ""),
}
# The columns the values above (and the code sequences) read: a C-FIND selects only these, as a
# universal query decodes every selected column of 10,000 rows.
REPLY_COLUMNS = (
    "accession_number", "referring_physician", "patient_name", "patient_id", "issuer_of_patient_id", "birth_date",
    "sex", "study_instance_uid", "requested_procedure_id", "requested_procedure_description", "priority",
    "requesting_service", "admission_id", "current_location", "reason", "history", "medical_alerts",
    "station_ae_title", "start_at", "end_at", "modality", "performing_physician", "description", "sps_id",
    "station_name", "location", "status", "arrived_at", "contrast", "body_part", "laterality", "protocol_code",
)
# Code sequences: one item of our local exam code (CodeValue, CodingSchemeDesignator, CodeMeaning).
CODE_SEQUENCES_TOP = {"RequestedProcedureCodeSequence"}
CODE_SEQUENCES_SPS = {"ScheduledProtocolCodeSequence"}

# IHE SWF / K.6.1 keys we know but hold no value for: returned empty, without a warning.
KNOWN_EMPTY = {
    "ReferencedStudySequence", "ReferencedPatientSequence", "PatientWeight", "PatientSize", "Allergies",
    "PregnancyStatus", "SpecialNeeds", "ConfidentialityConstraintOnPatientDataDescription",
    "PatientTransportArrangements", "NamesOfIntendedRecipientsOfResults", "ImagingServiceRequestComments",
    "AdmittingDiagnosesDescription", "OtherPatientIDs", "OtherPatientIDsSequence", "EthnicGroup", "PatientComments",
    "InstitutionName", "InstitutionAddress", "StudyDate", "StudyTime", "PatientAge", "PatientAddress",
    "IssuerOfAdmissionID", "IssuerOfAdmissionIDSequence", "IssuerOfAccessionNumberSequence",
    "ReferencedRequestSequence", "PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest",
    "RouteOfAdmissions", "AdmittingDate", "AdmittingTime", "VisitStatusID", "ServiceEpisodeID",
    "PatientBirthTime", "ResponsiblePerson", "ResponsibleOrganization", "ReasonForRequestedProcedureCodeSequence",
    "RequestedProcedureLocation", "RequestedProcedureComments", "ReferringPhysicianIdentificationSequence",
    "LastMenstrualDate", "SmokingStatus", "StudyComments", "TypeOfPatientID",
    "IssuerOfPatientIDQualifiersSequence", "QueryRetrieveLevel", "RetrieveAETitle", "InstanceAvailability",
    "ScheduledSpecimenSequence", "PreMedication", "ScheduledProtocolCodeSequence",
    "ScheduledStationNameCodeSequence", "ScheduledStationClassCodeSequence",
    "ScheduledStationGeographicLocationCodeSequence", "ScheduledProcessingApplicationsCodeSequence",
    "ScheduledHumanPerformersSequence", "ProtocolContextSequence", "ScheduledProcedureStepModificationDateTime",
}


@dataclass
class ParsedQuery:
    query: StepQuery
    charsets: list[str]
    requested_top: list[BaseTag] = field(default_factory=list)  # in query order, SPS sequence included
    requested_sps: list[BaseTag] = field(default_factory=list)  # empty list + sps_full: every SPS key
    sps_full: bool = False
    has_sps: bool = False
    unsupported: list[str] = field(default_factory=list)  # keys flagged with FF01
    plan: list[Any] | None = None  # how to fill each requested key (reply_plan), made on first use


def _keyword(tag: BaseTag) -> str:
    return keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})"


def parse_identifier(ds: Dataset) -> ParsedQuery:
    """Read a Modality Worklist query; raises IdentifierError for what is not one."""
    try:
        charsets = dataset_charsets(ds)
    except UnknownCharacterSet as exc:
        raise IdentifierError(0xA900, str(exc), [int(SPECIFIC_CHARACTER_SET)]) from None
    parsed = ParsedQuery(StepQuery(), charsets)
    q = parsed.query
    for elem_tag in list(ds.keys()):
        tag = Tag(elem_tag)
        if tag == SPECIFIC_CHARACTER_SET or tag.element == 0x0000:  # group lengths carry no key
            continue
        keyword = _keyword(tag)
        parsed.requested_top.append(tag)
        if tag == SPS_SEQUENCE:
            _parse_sps(ds, parsed)
            continue
        try:
            vr = ds.get_item(tag).VR
        except Exception:  # noqa: BLE001 - a broken element is a malformed identifier
            raise IdentifierError(0xA900, f"unreadable element {keyword}", [int(tag)]) from None
        if vr == "SQ":
            if keyword not in CODE_SEQUENCES_TOP and keyword not in KNOWN_EMPTY:
                parsed.unsupported.append(keyword)
            continue
        value = _text(ds, tag, keyword, charsets)
        if keyword in TOP_MATCHING:
            setattr(q, TOP_MATCHING[keyword], value)
        elif keyword not in TOP_VALUES and keyword not in KNOWN_EMPTY:
            parsed.unsupported.append(keyword)
        elif value and not is_universal(value) and keyword not in TOP_MATCHING:
            parsed.unsupported.append(keyword)  # a value to match on a key we only return
    return parsed


def _text(ds: Dataset, tag: BaseTag, keyword: str, charsets: list[str]) -> str | None:
    try:
        return text_value(ds, tag, charsets)
    except UnicodeDecodeError:
        raise IdentifierError(
            0xA900, f"{keyword} is not valid {'/'.join(charsets)} text", [int(tag)]) from None
    except Exception:  # noqa: BLE001 - pydicom raises assorted errors for malformed values
        raise IdentifierError(0xA900, f"malformed value of {keyword}", [int(tag)]) from None


def _parse_sps(ds: Dataset, parsed: ParsedQuery) -> None:
    parsed.has_sps = True
    try:
        seq = ds[SPS_SEQUENCE].value
    except Exception:  # noqa: BLE001
        raise IdentifierError(0xA900, "malformed Scheduled Procedure Step Sequence", [int(SPS_SEQUENCE)]) from None
    if not isinstance(seq, DicomSequence | list):
        raise IdentifierError(0xA900, "Scheduled Procedure Step Sequence is not a sequence", [int(SPS_SEQUENCE)])
    if len(seq) == 0:
        parsed.sps_full = True  # an empty sequence asks for all of it (C.2.2.2.6)
        return
    if len(seq) > 1:
        raise IdentifierError(0xA900, "Scheduled Procedure Step Sequence must have one item", [int(SPS_SEQUENCE)])
    item = seq[0]
    q = parsed.query
    date_value = time_value = None
    for elem_tag in list(item.keys()):
        tag = Tag(elem_tag)
        if tag.element == 0x0000 or tag == SPECIFIC_CHARACTER_SET:
            continue
        keyword = _keyword(tag)
        parsed.requested_sps.append(tag)
        try:
            vr = item.get_item(tag).VR
        except Exception:  # noqa: BLE001
            raise IdentifierError(0xA900, f"unreadable element {keyword}", [int(tag)]) from None
        if vr == "SQ":
            if keyword not in CODE_SEQUENCES_SPS and keyword not in KNOWN_EMPTY:
                parsed.unsupported.append(keyword)
            continue
        value = _text(item, tag, keyword, parsed.charsets)
        if keyword == SPS_DATE:
            date_value = value
        elif keyword == SPS_TIME:
            time_value = value
        elif keyword in SPS_MATCHING:
            setattr(q, SPS_MATCHING[keyword], value)
        elif keyword not in SPS_VALUES and keyword not in KNOWN_EMPTY:
            parsed.unsupported.append(keyword)
        elif value and not is_universal(value):
            parsed.unsupported.append(keyword)
    try:
        q.start = combined_datetime_range(date_value, time_value)
    except InvalidMatchValue as exc:
        raise IdentifierError(0xA900, str(exc), [int(Tag(SPS_DATE)), int(Tag(SPS_TIME))]) from None


def _vr(tag: BaseTag) -> str:
    if not keyword_for_tag(tag):
        return "UN"  # private or unknown: returned empty, so the VR only has to be harmless
    vr = dictionary_VR(tag)
    return vr.split(" or ")[0]


def _code_item(row: Row, scheme: str) -> list[Element]:
    return [(0x00080100, "SH", row["protocol_code"]), (0x00080102, "SH", scheme),
            (0x00080104, "LO", row["description"][:64])]


def _code_sequence(row: Row, scheme: str) -> list[list[Element]]:
    return [_code_item(row, scheme)] if row["protocol_code"] else []


# A reply plan: per requested key, how to fill it — worked out once per query, run per row.
Getter = Callable[[Row], Any]
PlanEntry = tuple[int, str, Any]  # (tag, VR, getter | nested plan for the SPS item | "code" | None)


def _plan_entry(tag: BaseTag, values: dict[str, Getter], code_sequences: set[str]) -> PlanEntry:
    keyword = _keyword(tag)
    if keyword in code_sequences:
        return int(tag), "SQ", "code"
    if keyword in values:
        return int(tag), _vr(tag), values[keyword]
    return int(tag), _vr(tag), None


def reply_plan(parsed: ParsedQuery) -> list[PlanEntry]:
    plan: list[PlanEntry] = []
    for tag in parsed.requested_top:
        if tag == SPS_SEQUENCE:
            sps_tags = _ALL_SPS if parsed.sps_full else parsed.requested_sps
            plan.append((int(tag), "SQ", [_plan_entry(t, SPS_VALUES, CODE_SEQUENCES_SPS) for t in sps_tags]))
        else:
            plan.append(_plan_entry(tag, TOP_VALUES, CODE_SEQUENCES_TOP))
    return plan


def _run_plan(plan: list[PlanEntry], row: Row, scheme: str) -> list[Element]:
    out: list[Element] = []
    for tag, vr, how in plan:
        if how is None:
            out.append((tag, vr, [] if vr == "SQ" else ""))
        elif how == "code":
            out.append((tag, vr, _code_sequence(row, scheme)))
        elif isinstance(how, list):
            out.append((tag, vr, [_run_plan(how, row, scheme)]))
        else:
            out.append((tag, vr, how(row)))
    return out


def reply_elements(row: Row, parsed: ParsedQuery, *, coding_scheme: str) -> list[Element]:
    """The reply identifier for one step: exactly the requested keys, filled where we can."""
    if parsed.plan is None:
        parsed.plan = reply_plan(parsed)
    return _run_plan(parsed.plan, row, coding_scheme)


_ALL_SPS = [Tag(k) for k in SPS_VALUES] + [Tag("ScheduledProtocolCodeSequence")]


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
