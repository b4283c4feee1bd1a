"""MPPS N-CREATE / N-SET attribute checks (PS3.4 F.7.2, Table F.7.2-1) -> domain PerformedStep.

N-CREATE: Type 1 attributes present with a value (else 0120 / 0121), Type 2 present (0120),
status IN PROGRESS and End Date/Time empty (0106). N-SET: only attributes the table marks
settable may change (others 0106); COMPLETED needs the final-state attributes (0121).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from imaging_common.dicom import InvalidMatchValue, dataset_charsets, parse_date, parse_time, text_value
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from worklist.domain.mpps import MppsError, PerformedStep, ScheduledStepRef


class MissingAttribute(MppsError):
    kind = "missing-attribute"  # 0120


class InvalidValue(MppsError):
    kind = "invalid-attribute-value"  # 0106


class MissingValue(MppsError):
    kind = "missing-attribute-value"  # 0121


# DIMSE status for each MppsError kind.
STATUS = {
    "missing-attribute": 0x0120,
    "missing-attribute-value": 0x0121,
    "invalid-attribute-value": 0x0106,
    "duplicate-instance": 0x0111,
    "no-such-instance": 0x0112,
    "no-longer-updatable": 0x0110,
    "processing-failure": 0x0110,
}
ERROR_ID_NO_LONGER_UPDATABLE = 0xA710

CREATE_TYPE1 = ("ScheduledStepAttributesSequence", "PerformedProcedureStepID", "PerformedStationAETitle",
                "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime", "PerformedProcedureStepStatus",
                "Modality")
CREATE_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PerformedStationName",
                "PerformedLocation", "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime",
                "PerformedProcedureStepDescription", "PerformedProcedureTypeDescription", "ProcedureCodeSequence",
                "StudyID", "PerformedProtocolCodeSequence", "PerformedSeriesSequence")
ITEM_TYPE1 = ("StudyInstanceUID",)
ITEM_TYPE2 = ("AccessionNumber", "RequestedProcedureID", "ScheduledProcedureStepID")

# Attributes an N-SET may carry (Table F.7.2-1 "N-SET" column, the commonly used part of it).
SETTABLE = {
    "SpecificCharacterSet", "PerformedProcedureStepStatus", "PerformedProcedureStepEndDate",
    "PerformedProcedureStepEndTime", "PerformedProcedureStepDescription", "PerformedProcedureTypeDescription",
    "ProcedureCodeSequence", "PerformedSeriesSequence", "CommentsOnThePerformedProcedureStep",
    "PerformedProtocolCodeSequence", "PerformedProcedureStepDiscontinuationReasonCodeSequence",
    "TotalTimeOfFluoroscopy", "TotalNumberOfExposures", "ImageAndFluoroscopyAreaDoseProduct",
    "ExposureDoseSequence", "RadiationDosimeterOutputSequence", "BillingProcedureStepSequence",
    "FilmConsumptionSequence", "BillingSuppliesAndDevicesSequence", "DistanceSourceToDetector",
    "DistanceSourceToEntrance", "EntranceDose", "EntranceDoseInmGy", "ExposedArea", "CommentsOnRadiationDose",
    "AnatomicStructureSpaceOrRegionSequence", "OrganDose", "OrganExposed", "PerformedProcedureStepStartDateTime",
}


def _text(ds: Dataset, keyword: str, charsets: list[str]) -> str | None:
    try:
        return text_value(ds, Tag(keyword), charsets)
    except UnicodeDecodeError:
        raise InvalidValue(f"{keyword} is not valid text in the declared character set",
                           attributes=[keyword]) from None


def _moment(ds: Dataset, date_kw: str, time_kw: str, charsets: list[str], tz: ZoneInfo) -> datetime | None:
    d, t = _text(ds, date_kw, charsets), _text(ds, time_kw, charsets)
    if not d and not t:
        return None
    if not d or not t:
        raise MissingValue(f"{date_kw} and {time_kw} go together", attributes=[date_kw, time_kw])
    try:
        return datetime.combine(parse_date(d), parse_time(t)[0]).replace(tzinfo=tz)
    except InvalidMatchValue as exc:
        raise InvalidValue(str(exc), attributes=[date_kw, time_kw]) from None


def _json(ds: Dataset) -> dict[str, Any]:
    try:
        return ds.to_json_dict(bulk_data_threshold=1 << 20, bulk_data_element_handler=lambda _e: "")
    except Exception:  # noqa: BLE001 - keep the MPPS even if an odd attribute will not serialize
        return {}


def parse_create(ds: Dataset, tz: ZoneInfo) -> PerformedStep:
    charsets = dataset_charsets(ds)
    for kw in CREATE_TYPE1:
        if kw not in ds:
            raise MissingAttribute(f"{kw} is required (Type 1)", attributes=[kw])
        value = ds[kw].value
        if value in (None, "", b"") or (kw.endswith("Sequence") and len(value) == 0):
            raise MissingValue(f"{kw} must have a value (Type 1)", attributes=[kw])
    for kw in CREATE_TYPE2:
        if kw not in ds:
            raise MissingAttribute(f"{kw} is required (Type 2, may be empty)", attributes=[kw])
    refs = []
    for item in ds.ScheduledStepAttributesSequence:
        for kw in ITEM_TYPE1:
            if not _text(item, kw, charsets):
                raise MissingValue(f"Scheduled Step Attributes item needs {kw}", attributes=[kw])
        for kw in ITEM_TYPE2:
            if kw not in item:
                raise MissingAttribute(f"Scheduled Step Attributes item needs {kw} (Type 2)", attributes=[kw])
        refs.append(ScheduledStepRef(
            study_instance_uid=_text(item, "StudyInstanceUID", charsets) or "",
            accession_number=_text(item, "AccessionNumber", charsets) or "",
            sps_id=_text(item, "ScheduledProcedureStepID", charsets) or "",
            requested_procedure_id=_text(item, "RequestedProcedureID", charsets) or "",
        ))
    if _text(ds, "PerformedProcedureStepEndDate", charsets) or _text(ds, "PerformedProcedureStepEndTime", charsets):
        raise InvalidValue("End Date and End Time must be empty on N-CREATE",
                           attributes=["PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"])
    return PerformedStep(
        status=(_text(ds, "PerformedProcedureStepStatus", charsets) or "").upper(),
        station_ae_title=_text(ds, "PerformedStationAETitle", charsets),
        modality=_text(ds, "Modality", charsets),
        pps_id=_text(ds, "PerformedProcedureStepID", charsets),
        started_at=_moment(ds, "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime", charsets, tz),
        scheduled=refs,
        attributes=_json(ds),
    )


def parse_set(ds: Dataset, tz: ZoneInfo) -> PerformedStep:
    charsets = dataset_charsets(ds)
    for elem in ds:
        if elem.tag.element == 0x0000:
            continue
        if elem.keyword not in SETTABLE:
            name = elem.keyword or str(elem.tag)
            raise InvalidValue(f"{name} may not be changed by N-SET", attributes=[name])
    status = _text(ds, "PerformedProcedureStepStatus", charsets)
    step = PerformedStep(
        status=status.upper() if status else None,
        ended_at=_moment(ds, "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime", charsets, tz),
        attributes=_json(ds),
    )
    if step.status == "COMPLETED" and "PerformedSeriesSequence" in ds and len(ds.PerformedSeriesSequence) == 0:
        raise MissingValue("COMPLETED needs at least one Performed Series Sequence item",
                           attributes=["PerformedSeriesSequence"])
    return step


def failure_status(error: MppsError) -> Dataset:
    status = Dataset()
    status.Status = STATUS.get(error.kind, 0x0110)
    status.ErrorComment = error.comment[:64]
    if error.kind == "no-longer-updatable":
        status.ErrorID = ERROR_ID_NO_LONGER_UPDATABLE
    return status
