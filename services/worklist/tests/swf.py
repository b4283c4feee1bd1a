"""The broad IHE SWF (RAD-5) worklist query, and what a reply must hold for a stored step.

`swf_query()` asks for every key of Table K.6-1 a modality's SWF query carries, with the
sequences as modalities send them: items with empty UIDs, empty code items with Coding Scheme
Version, zero-length sequences and zero-length items. `held(step, row)` is what the step holds,
written out by hand (not with the SCP's own getters); `expected(query, held)` is the reply the
query must get: exactly its keys, each with the held value or empty, a sequence asked for with
a zero-length item (or none) whole (PS3.4 C.2.2.2.6). `as_tree(reply)` reads a reply the same way.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from worklist.domain.steps import StepData

Tree = dict[str, Any]  # keyword -> str, or list of Trees for a sequence

CODE_KEYS = ("CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning")


def _item(*keywords: str, **values: Any) -> Dataset:
    ds = Dataset()
    for k in keywords:
        setattr(ds, k, None)  # zero length, whatever the VR
    for k, v in values.items():
        setattr(ds, k, v)
    return ds


def swf_query(*, station: str, date: str, charset: str | None = "ISO_IR 192") -> Dataset:
    """The broad SWF query: every return key, matching on station and date."""
    q = Dataset()
    if charset:
        q.SpecificCharacterSet = charset
    sps = _item(
        "ScheduledStationName", "ScheduledProcedureStepLocation", "ScheduledProcedureStepStartTime",
        "ScheduledProcedureStepEndDate", "ScheduledProcedureStepEndTime", "Modality",
        "ScheduledPerformingPhysicianName", "ScheduledProcedureStepDescription", "PreMedication",
        "ScheduledProcedureStepID", "RequestedContrastAgent", "ScheduledProcedureStepStatus",
        "CommentsOnTheScheduledProcedureStep",
        ScheduledStationAETitle=station, ScheduledProcedureStepStartDate=date,
        ScheduledProtocolCodeSequence=[_item(*CODE_KEYS)],
        ScheduledPerformingPhysicianIdentificationSequence=[],
    )
    top = _item(
        # Requested Procedure
        "RequestedProcedureID", "RequestedProcedureDescription", "StudyInstanceUID", "RequestedProcedurePriority",
        "PatientTransportArrangements", "ReasonForTheRequestedProcedure", "RequestedProcedureComments",
        "RequestedProcedureLocation", "ConfidentialityCode", "ReportingPriority", "NamesOfIntendedRecipientsOfResults",
        # Imaging Service Request
        "AccessionNumber", "RequestingPhysician", "ReferringPhysicianName", "RequestingService",
        "ImagingServiceRequestComments", "PlacerOrderNumberImagingServiceRequest",
        "FillerOrderNumberImagingServiceRequest", "IssueDateOfImagingServiceRequest", "OrderEnteredBy",
        # Visit
        "AdmissionID", "CurrentPatientLocation", "InstitutionName", "AdmittingDiagnosesDescription",
        "RouteOfAdmissions", "VisitStatusID", "PatientInstitutionResidence",
        # Patient
        "PatientName", "PatientID", "IssuerOfPatientID", "OtherPatientIDs", "PatientBirthDate", "PatientSex",
        "PatientAge", "PatientWeight", "PatientSize", "PatientAddress", "EthnicGroup", "PatientComments",
        "ConfidentialityConstraintOnPatientDataDescription", "PatientState", "PregnancyStatus", "MedicalAlerts",
        "Allergies", "SpecialNeeds", "AdditionalPatientHistory", "LastMenstrualDate", "SmokingStatus",
        "ResponsiblePerson", "ResponsibleOrganization", "PatientBirthTime", "OtherPatientNames",
        ScheduledProcedureStepSequence=[sps],
        RequestedProcedureCodeSequence=[_item(*CODE_KEYS)],
        ReferencedStudySequence=[_item("ReferencedSOPClassUID", "ReferencedSOPInstanceUID")],
        ReferencedPatientSequence=[_item("ReferencedSOPClassUID", "ReferencedSOPInstanceUID")],
        IssuerOfAccessionNumberSequence=[Dataset()],  # a zero-length item: the whole sequence
        OtherPatientIDsSequence=[],  # a zero-length sequence: the same
        InstitutionCodeSequence=[_item(*CODE_KEYS)],
        ReasonForRequestedProcedureCodeSequence=[Dataset()],
        IssuerOfAdmissionIDSequence=[_item("LocalNamespaceEntityID")],
        ReferringPhysicianIdentificationSequence=[],
    )
    for elem in top:
        q.add(elem)
    return q


def dump(ds: Dataset, depth: int = 0) -> str:
    """`ds` as dcmdump text, which DCMTK's dump2dcm turns into the query file findscu sends."""
    pad, lines = "  " * depth, []
    for elem in ds:
        tag = f"({elem.tag.group:04x},{elem.tag.element:04x})"
        if elem.VR == "SQ":
            lines.append(f"{pad}{tag} SQ (Sequence with undefined length)")
            for item in elem.value:
                lines.append(f"{pad}  (fffe,e000) na (Item with undefined length)")
                lines.append(dump(item, depth + 2))
                lines.append(f"{pad}  (fffe,e00d) na (ItemDelimitationItem)")
            lines.append(f"{pad}(fffe,e0dd) na (SequenceDelimitationItem)")
        else:
            lines.append(f"{pad}{tag} {elem.VR} [{elem.value if elem.value is not None else ''}]")
    return "\n".join(line for line in lines if line)


def _da(value: Any) -> str:
    return value.strftime("%Y%m%d") if value else ""


def _tm(value: Any) -> str:
    return value.strftime("%H%M%S") if value else ""


def held(step: StepData, row: Any, *, scheme: str = "99IMG") -> Tree:
    """What the stored step holds, by keyword (keys it holds nothing for are absent: empty)."""
    code = [{"CodeValue": step.protocol_code, "CodingSchemeDesignator": scheme,
             "CodeMeaning": step.description}] if step.protocol_code else []
    sps: Tree = {
        "ScheduledStationAETitle": step.station_ae_title, "ScheduledStationName": step.station_name,
        "ScheduledProcedureStepLocation": step.location, "ScheduledProcedureStepStartDate": _da(step.start_at),
        "ScheduledProcedureStepStartTime": _tm(step.start_at), "ScheduledProcedureStepEndDate": _da(step.end_at),
        "ScheduledProcedureStepEndTime": _tm(step.end_at), "Modality": step.modality,
        "ScheduledPerformingPhysicianName": step.performing_physician,
        "ScheduledProcedureStepDescription": step.description, "ScheduledProcedureStepID": row["sps_id"],
        "ScheduledProcedureStepStatus": "SCHEDULED",
        "CommentsOnTheScheduledProcedureStep": step.body_part + (f" ({step.laterality})" if step.laterality else ""),
        "RequestedContrastAgent": "CONTRAST" if step.contrast else "",
        "ScheduledProtocolCodeSequence": code,
    }
    return {
        "ScheduledProcedureStepSequence": [sps],
        "RequestedProcedureID": step.requested_procedure_id,
        "RequestedProcedureDescription": step.requested_procedure_description,
        "RequestedProcedureCodeSequence": code,
        "StudyInstanceUID": row["study_instance_uid"],
        "RequestedProcedurePriority": {"routine": "ROUTINE", "urgent": "HIGH", "stat": "STAT"}[step.priority],
        "ReasonForTheRequestedProcedure": step.reason,
        "AccessionNumber": step.accession_number,
        "RequestingPhysician": step.referring_physician, "ReferringPhysicianName": step.referring_physician,
        "RequestingService": step.requesting_service,
        "AdmissionID": step.admission_id, "CurrentPatientLocation": step.current_location,
        "PatientName": step.patient_name, "PatientID": step.patient_id,
        "IssuerOfPatientID": step.issuer_of_patient_id, "PatientBirthDate": _da(step.birth_date),
        "PatientSex": step.sex, "MedicalAlerts": step.medical_alerts, "PatientState": step.medical_alerts,
        "AdditionalPatientHistory": step.history,
    }


def as_tree(ds: Dataset) -> Tree:
    """A data set as keyword -> value ("" for empty), sequences as lists of trees."""
    out: Tree = {}
    for elem in ds:
        if elem.keyword == "SpecificCharacterSet":
            continue
        key = elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"
        if elem.VR == "SQ":
            out[key] = [as_tree(item) for item in elem.value or ()]
        elif elem.value is None or elem.value == "" or elem.value == b"":
            out[key] = ""
        else:
            out[key] = str(elem.value)
    return out


def expected(query: Dataset, holds: Tree) -> Tree:
    """The reply `query` must get from a step that `holds` this."""
    out: Tree = {}
    for elem in query:
        if elem.keyword == "SpecificCharacterSet":
            continue
        if elem.VR == "SQ":
            items: list[Tree] = holds.get(elem.keyword, [])
            asked = elem.value if isinstance(elem.value, DicomSequence | list) else []
            if not asked or len(asked[0]) == 0:
                out[elem.keyword] = items  # the whole sequence
            else:
                out[elem.keyword] = [expected(asked[0], item) for item in items]
        else:
            out[elem.keyword] = holds.get(elem.keyword, "")
    return out
