"""What a modality sends to the worklist's MPPS SCP (DICOM PS3.4 F.7): the N-CREATE of a procedure step
IN PROGRESS, and the N-SET that ends it (COMPLETED or DISCONTINUED, one performed series)."""

from __future__ import annotations

from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid


def in_progress(*, charset: str, study_uid: str, accession: str, requested_procedure_id: str, step_id: str,
                patient_name: str, patient_id: str, patient_sex: str, pps_id: str, station: str,
                station_name: str, start: datetime) -> Dataset:
    """The N-CREATE attributes of a step the modality has started (every Type 1 and 2 attribute)."""
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    item = Dataset()
    item.StudyInstanceUID = study_uid
    item.AccessionNumber = accession
    item.RequestedProcedureID = requested_procedure_id
    item.ScheduledProcedureStepID = step_id
    item.ScheduledProcedureStepDescription = ""
    ds.ScheduledStepAttributesSequence = [item]
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = patient_sex
    ds.PerformedProcedureStepID = pps_id
    ds.PerformedStationAETitle = station
    ds.PerformedStationName = station_name
    ds.PerformedLocation = ""
    ds.PerformedProcedureStepStartDate = start.strftime("%Y%m%d")
    ds.PerformedProcedureStepStartTime = start.strftime("%H%M%S")
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepDescription = "胸部CT平扫"
    ds.PerformedProcedureTypeDescription = ""
    ds.ProcedureCodeSequence = []
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.Modality = "CT"
    ds.StudyID = ""
    ds.PerformedProtocolCodeSequence = []
    ds.PerformedSeriesSequence = []
    return ds


def final(status: str = "COMPLETED", end: datetime | None = None) -> Dataset:
    """The N-SET that ends a step with `status`, one performed series, and the end time when given."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    if end is not None:
        ds.PerformedProcedureStepEndDate = end.strftime("%Y%m%d")
        ds.PerformedProcedureStepEndTime = end.strftime("%H%M%S")
    series = Dataset()
    series.SeriesInstanceUID = generate_uid()
    series.PerformingPhysicianName = ""
    series.ProtocolName = "CHEST"
    series.OperatorsName = ""
    series.SeriesDescription = ""
    series.RetrieveAETitle = ""
    series.ReferencedImageSequence = []
    series.ReferencedNonImageCompositeSOPInstanceSequence = []
    ds.PerformedSeriesSequence = [series]
    return ds
