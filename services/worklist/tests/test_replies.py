"""The compiled reply encoder (replies.py) gives the bytes of the generic path, row for row."""

from __future__ import annotations

from datetime import datetime
from io import BytesIO
from typing import Any

import pytest
from imaging_common.dicom import choose_reply_charset
from imaging_common.dicom.rawwrite import encode_dataset
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from worklist.adapters.dicom.mwl import REPLY_COLUMNS, parse_identifier, reply_elements, reply_texts
from worklist.adapters.dicom.replies import ReplyEncoder

from .scu import mwl_query

SCHEME, FALLBACK = "99LOCAL", "ISO_IR 192"


def _row(**over: Any) -> dict[str, Any]:
    row = {
        "accession_number": "ACC1", "referring_physician": "WANG^WU", "patient_name": "ZHANG^SAN=张^三",
        "patient_id": "PID7", "issuer_of_patient_id": "", "birth_date": datetime(1980, 2, 3), "sex": "M",
        "study_instance_uid": "1.2.3.45", "requested_procedure_id": "RP1", "requested_procedure_description": "检查",
        "priority": "routine", "requesting_service": "", "admission_id": None, "current_location": "",
        "reason": "", "history": "", "medical_alerts": "", "station_ae_title": "CT1",
        "start_at": datetime(2026, 11, 23, 9, 30), "end_at": None, "modality": "CT", "performing_physician": "",
        "description": "胸部CT平扫", "sps_id": "SPS1", "station_name": "CT-A", "location": "ROOM1",
        "status": "scheduled", "arrived_at": None, "contrast": False, "body_part": "CHEST", "laterality": "",
        "protocol_code": "CT-CHEST",
    }
    row.update(over)
    assert set(row) == set(REPLY_COLUMNS)  # what a C-FIND selects: a value read from elsewhere fails here
    return row


def _generic(row: dict[str, Any], query: Dataset, implicit: bool) -> bytes:
    parsed = parse_identifier(query, coding_scheme=SCHEME)
    elements = reply_elements(row, parsed)
    charset = choose_reply_charset(reply_texts(elements), requested=parsed.charsets, fallback=FALLBACK)
    return encode_dataset(elements, charset=charset, implicit=implicit)


def _queries() -> list[Dataset]:
    universal_sps = mwl_query(charset="GB18030")
    universal_sps.ScheduledProcedureStepSequence = []  # an empty sequence asks for every SPS key
    few = Dataset()
    few.PatientID = "PID7"
    few.AccessionNumber = ""
    few.add_new(0x00091010, "LO", "")  # a private key: returned empty
    return [mwl_query(), mwl_query(charset="ISO_IR 100", RequestedProcedureCodeSequence=[]),
            mwl_query(charset="GB18030", station="CT1"), universal_sps, few]


ROWS = [
    _row(),
    _row(patient_name="SMITH^JOHN", description="Chest PA", requested_procedure_description="CHEST"),  # ASCII only
    _row(patient_name="MÜLLER^ANNA", description="Thorax", requested_procedure_description="Röntgen"),  # Latin-1
    _row(protocol_code=None, study_instance_uid="1.2.3", status="in_progress", contrast=True, laterality="L"),
    _row(birth_date=None, start_at=None, sex=None, patient_name="", arrived_at=datetime(2026, 11, 23)),
]


@pytest.mark.parametrize("implicit", [True, False])
@pytest.mark.parametrize("query_index", range(5))
def test_the_same_bytes_as_the_generic_encoding(implicit: bool, query_index: int) -> None:
    query = _queries()[query_index]
    encoder = ReplyEncoder(parse_identifier(query, coding_scheme=SCHEME), implicit=implicit, fallback_charset=FALLBACK)
    for row in ROWS:
        assert encoder(row) == _generic(row, query, implicit), row


def test_the_bytes_read_back_as_the_reply() -> None:
    encoder = ReplyEncoder(parse_identifier(mwl_query(charset="GB18030"), coding_scheme=SCHEME), implicit=False,
                           fallback_charset=FALLBACK)
    ds = read_dataset(BytesIO(encoder(_row())), is_implicit_VR=False, is_little_endian=True)
    assert ds.SpecificCharacterSet == "GB18030" and str(ds.PatientName) == "ZHANG^SAN=张^三"
    sps = ds.ScheduledProcedureStepSequence[0]
    assert sps.ScheduledProcedureStepDescription == "胸部CT平扫" and sps.ScheduledProcedureStepStartTime == "093000"
    assert sps.ScheduledProtocolCodeSequence[0].CodeValue == "CT-CHEST"
