"""HL7 v2.5.1 ORU^R01 for a report version, built with the small ER7 builder of imaging_common.hl7.

hl7apy builds and strictly parses an ORU at ~11-22 messages/s here, so it stays off this hot
path; the tests validate our output against hl7apy's v2.5.1 structure instead.

OBR-25 / OBX-11 follow the report: P preliminary, F final, C corrected/amended, W withdrawn,
X cancelled. Text sections travel as FT (line breaks as \\.br\\); structured fields as NM (with
OBX-6 units), CE (coded: table 0125 of v2.5.1 has no CWE) or ST. Coding systems are table 0396's:
LN (LOINC), SCT, RADLEX, and local ones as 99zzz (99IMG exam items, 99IMF template fields).
docs/hl7-interface.md is the specification; tests/conformance checks what this builds against it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from imaging_common.hl7 import Message, build_msh, build_segment
from imaging_common.hl7.charset import LABELS
from imaging_common.service import ServiceContext

from reporting.domain import deliveries
from reporting.domain.deliveries import Receiver

TZ = ZoneInfo("Asia/Shanghai")
SECTION_CODES = {  # LOINC codes of report sections
    "findings": ("59776-5", "Procedure findings", "LN"),
    "impression": ("19005-8", "Radiology Imaging study [Impression] (narrative)", "LN"),
    "recommendation": ("18783-1", "Radiology Study recommendation (narrative)", "LN"),
}
_SYSTEMS = {"RadLex": "RADLEX", "SNOMED-CT": "SCT", "LOINC": "LN"}


def hl7_ts(at: datetime | str | None) -> str:
    if at is None:
        return ""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(TZ).strftime("%Y%m%d%H%M%S%z")


def _xpn(name: str, name_type: str) -> list[str]:
    """XPN components: family^given^middle^suffix^prefix^degree^type (a Chinese name stays whole)."""
    comps = name.split("^")[:6]
    return comps + [""] * (6 - len(comps)) + [name_type]


def build_oru(snap: dict[str, Any], *, receiving_application: str = "HIS", receiving_facility: str = "HOSPITAL",
              charset: str = "utf-8", control_id: str | None = None) -> Message:
    """The ORU^R01 of one report snapshot (see domain/reports.py `snapshot`)."""
    patient, exam, content = snap["patient"], snap["exam"], snap["content"]
    status = snap["result_status"]
    segments = [build_msh(
        sending_app="IMAGING", sending_facility="RIS", receiving_app=receiving_application,
        receiving_facility=receiving_facility, message_type=["ORU", "R01", "ORU_R01"],
        control_id=control_id or uuid.uuid4().hex[:20], timestamp=hl7_ts(datetime.now(UTC)), version="2.5.1",
        charset=LABELS.get(charset, "UNICODE UTF-8"))]
    msh = segments[0]
    if len(msh.fields) > 16:  # MSH-15/16: accept ack always (the sender retries until AA), no app ack
        msh.fields[15], msh.fields[16] = "AL", "NE"
    ids = [[patient.get("patient_id") or "", "", "", "IMAGING", "MR"]]
    if patient.get("empi_id"):
        ids.append([patient["empi_id"], "", "", "EMPI", "PI"])
    names = [_xpn(patient.get("name") or "", "L")]
    if patient.get("name_latin"):
        names.append(_xpn(patient["name_latin"], "A"))  # alphabetic (pinyin) representation
    pid = build_segment("PID", "1", "", None, None, None, None, None, None)
    pid.fields[3] = "~".join("^".join(_esc(c) for c in rep) for rep in ids)
    pid.fields[5] = "~".join("^".join(_esc(c) for c in rep) for rep in names)
    birth = patient.get("birth_date")
    pid.fields[7] = _esc(str(birth).replace("-", "")) if birth else ""
    pid.fields[8] = _esc(patient.get("sex") or "U")
    segments.append(pid)
    segments.append(build_segment("PV1", "1", {"inpatient": "I", "emergency": "E"}.get(
        exam.get("patient_class") or "", "O")))
    doctor = [exam.get("ordering_doctor_id") or "", exam.get("ordering_doctor") or ""]
    segments.append(build_segment("ORC", "RE", exam.get("order_id") or "", snap["accession_number"], None,
                                  "CM", None, None, None, None, None, None, doctor))
    signer = [snap.get("signer_id") or "", snap.get("signer_name") or ""]
    obr = build_segment(
        "OBR", "1", exam.get("order_id") or "", snap["accession_number"],
        [exam.get("exam_code") or "", exam.get("exam_name") or "", "99IMG"],
        None, None, hl7_ts(exam.get("completed_at")), None, None, None, None, None, None, None, None,
        doctor, None, snap["accession_number"], None, None, None,
        hl7_ts(snap.get("signed_at") or datetime.now(UTC)), None, exam.get("modality") or "RAD", status,
    )
    obr.fields.extend([""] * (32 - len(obr.fields) + 1))
    obr.fields[32] = "&".join(_esc(x) for x in signer)  # OBR-32 principal result interpreter (NDL)
    segments.append(obr)
    n = 0
    for section, (code, text, system) in SECTION_CODES.items():
        value = content.get(section) or ""
        if not value:
            continue
        n += 1
        segments.append(build_segment("OBX", str(n), "FT", [code, text, system], None, value, None, None, None,
                                      None, None, status))
    labels = snap.get("field_labels") or {}
    for field_id, value in sorted((content.get("fields") or {}).items()):
        raw = value.get("value")
        if raw in (None, "") and not value.get("code"):
            continue
        n += 1
        ident = [field_id, labels.get(field_id, field_id), "99IMF"]
        obs: str | list[str]
        if value.get("code"):
            vtype, obs = "CE", [value["code"], value.get("display") or str(raw or ""),
                                 _SYSTEMS.get(value.get("code_system") or "", value.get("code_system") or "")]
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            vtype, obs = "NM", str(raw)
        else:
            vtype, obs = "ST", str(raw)
        abnormal = "AA" if value.get("critical") else None
        segments.append(build_segment("OBX", str(n), vtype, ident, None, obs, value.get("unit"), None, abnormal,
                                      None, None, status))
    return Message(segments)


def write(snap: dict[str, Any], receiver: Receiver) -> str:
    """The ER7 queued for one HL7 receiver: its application, facility and character set."""
    return build_oru(snap, receiving_application=receiver.receiving_application,
                     receiving_facility=receiver.receiving_facility, charset=receiver.charset).to_er7()


async def on_ready(ctx: ServiceContext[Any]) -> None:
    """Report versions queued for HL7 receivers (domain/deliveries.py) are written by `write`."""
    deliveries.use_writer("hl7", write)


def _esc(text: str) -> str:
    from imaging_common.hl7.message import Encoding

    return Encoding().escape_text(text or "")
