"""FHIR R4 DiagnosticReport (+ one Observation per structured finding) for a report snapshot.

Built and validated with fhir.resources' R4B models (the package has no R4; R4B left DiagnosticReport
and Observation as R4 defined them, so what validates is R4 on the wire). The same id is used for
every version of a report, so an amended/corrected report replaces the earlier one at every endpoint
(PUT semantics), and a withdrawn one becomes `entered-in-error` there.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from imaging_common.service import ServiceContext

from reporting.domain import deliveries
from reporting.domain.deliveries import Receiver

SYSTEMS = {"RadLex": "http://radlex.org", "SNOMED-CT": "http://snomed.info/sct", "LOINC": "http://loinc.org"}
ACCESSION_SYSTEM = "urn:imaging:accession"
PATIENT_SYSTEM = "urn:imaging:patient-id"
EMPI_SYSTEM = "urn:imaging:empi"
FIELD_SYSTEM = "urn:imaging:report-field"
EXAM_SYSTEM = "urn:imaging:exam-code"
STAFF_SYSTEM = "urn:imaging:staff"
_ID = re.compile(r"[^A-Za-z0-9\-.]")


def _iso(at: datetime | str | None) -> str | None:
    if at is None:
        return None
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.isoformat()


def observation_id(report_id: str, field_id: str) -> str:
    return _ID.sub("-", f"{report_id}-{field_id}")[:64]


def _patient_ref(patient: dict[str, Any]) -> dict[str, Any]:
    ref: dict[str, Any] = {"display": patient.get("name") or ""}
    if patient.get("empi_id"):
        ref["reference"] = f"Patient/{_ID.sub('-', patient['empi_id'])}"
    ref["identifier"] = {"system": PATIENT_SYSTEM, "value": patient.get("patient_id") or ""}
    return ref


def build_observations(snap: dict[str, Any]) -> list[Observation]:
    return [Observation.model_validate(body) for body in observation_dicts(snap)]


def observation_dicts(snap: dict[str, Any]) -> list[dict[str, Any]]:
    status = snap["fhir_status"]
    obs_status = status if status in ("registered", "preliminary", "final", "amended", "corrected",
                                      "cancelled", "entered-in-error") else "preliminary"
    labels = snap.get("field_labels") or {}
    out: list[dict[str, Any]] = []
    for field_id, value in sorted((snap["content"].get("fields") or {}).items()):
        raw = value.get("value")
        if raw in (None, "") and not value.get("code"):
            continue
        body: dict[str, Any] = {
            "resourceType": "Observation", "id": observation_id(snap["report_id"], field_id), "status": obs_status,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "imaging"}]}],
            "code": {"coding": [{"system": FIELD_SYSTEM, "code": field_id, "display": labels.get(field_id, field_id)}],
                     "text": labels.get(field_id, field_id)},
            "subject": _patient_ref(snap["patient"]),
            "effectiveDateTime": _iso(snap["exam"].get("completed_at")) or _iso(snap.get("signed_at")),
            "derivedFrom": [{"reference": f"DiagnosticReport/{snap['report_id']}"}],
        }
        if value.get("code"):
            body["valueCodeableConcept"] = {
                "coding": [{"system": SYSTEMS.get(value.get("code_system") or "", f"urn:{value.get('code_system')}"),
                            "code": value["code"], "display": value.get("display") or str(raw or "")}],
                "text": value.get("display") or str(raw or ""),
            }
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            quantity: dict[str, Any] = {"value": raw}
            if value.get("unit"):
                quantity.update(unit=value["unit"], system="http://unitsofmeasure.org", code=value["unit"])
            body["valueQuantity"] = quantity
        elif isinstance(raw, bool):
            body["valueBoolean"] = raw
        else:
            body["valueString"] = str(raw)
        if value.get("critical"):
            body["interpretation"] = [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "AA",
                "display": "Critical abnormal"}]}]
        out.append(body)
    return out


def build_diagnostic_report(snap: dict[str, Any], observations: list[Observation]) -> DiagnosticReport:
    return DiagnosticReport.model_validate(report_dict(snap, [o.id or "" for o in observations]))


def report_dict(snap: dict[str, Any], observation_ids: list[str]) -> dict[str, Any]:
    exam, content = snap["exam"], snap["content"]
    text = "\n\n".join(f"{title}:\n{content.get(key)}" for key, title in
                       (("findings", "影像表现"), ("impression", "诊断意见"), ("recommendation", "建议"))
                       if content.get(key))
    body: dict[str, Any] = {
        "resourceType": "DiagnosticReport", "id": snap["report_id"],
        "meta": {"versionId": str(snap["version"]), "lastUpdated": _iso(datetime.now(UTC))},
        "identifier": [{"system": ACCESSION_SYSTEM, "value": snap["accession_number"]}],
        "basedOn": [{"identifier": {"system": ACCESSION_SYSTEM, "value": snap["accession_number"]},
                     "type": "ServiceRequest"}],
        "status": snap["fhir_status"],
        "category": [{"coding": [{"system": "http://loinc.org", "code": "LP29684-5", "display": "Radiology"}]}],
        "code": {"coding": [{"system": EXAM_SYSTEM, "code": exam.get("exam_code") or "unknown",
                             "display": exam.get("exam_name") or ""}], "text": exam.get("exam_name") or ""},
        "subject": _patient_ref(snap["patient"]),
        "effectiveDateTime": _iso(exam.get("completed_at")),
        "issued": _iso(snap.get("signed_at")),
        "conclusion": content.get("impression") or None,
        "presentedForm": [{"contentType": "text/plain; charset=utf-8", "language": "zh-CN",
                           "data": base64.b64encode(text.encode()).decode(), "title": exam.get("exam_name") or None}]
        if text else None,
        "result": [{"reference": f"Observation/{oid}"} for oid in observation_ids] or None,
    }
    if snap.get("signer_name"):
        body["resultsInterpreter"] = [{"display": snap["signer_name"],
                                       "identifier": {"system": STAFF_SYSTEM, "value": snap.get("signer_id") or ""}}]
    if snap.get("study_instance_uid"):
        body["extension"] = [{"url": "urn:imaging:study-instance-uid", "valueString": snap["study_instance_uid"]}]
    if snap.get("amendment_reason"):
        body.setdefault("extension", []).append({"url": "urn:imaging:amendment-reason",
                                                  "valueString": snap["amendment_reason"]})
    return {k: v for k, v in body.items() if v is not None}


def build_bundle(snap: dict[str, Any]) -> Bundle:
    """A transaction Bundle PUTting the report and its observations (one round trip, atomic)."""
    observations = build_observations(snap)
    report = build_diagnostic_report(snap, observations)
    entries = [{"resource": o, "request": {"method": "PUT", "url": f"Observation/{o.id}"}} for o in observations]
    entries.append({"resource": report, "request": {"method": "PUT", "url": f"DiagnosticReport/{report.id}"}})
    return Bundle.model_validate({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def bundle_json(snap: dict[str, Any]) -> str:
    """The transaction Bundle as JSON text, each resource validated by fhir.resources.

    Validation is what guarantees a conformant document; the text is written from the plain
    dicts because fhir.resources' own serialiser costs ~4 ms a report on the signing path.
    """
    observations = observation_dicts(snap)
    report = report_dict(snap, [o["id"] for o in observations])
    for body in observations:
        Observation.model_validate(body)
    DiagnosticReport.model_validate(report)
    entries = [{"resource": o, "request": {"method": "PUT", "url": f"Observation/{o['id']}"}} for o in observations]
    entries.append({"resource": report, "request": {"method": "PUT", "url": f"DiagnosticReport/{report['id']}"}})
    return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}, ensure_ascii=False,
                      separators=(",", ":"))


def write(snap: dict[str, Any], receiver: Receiver) -> str:
    """The transaction Bundle queued for a FHIR receiver (the same for every one of them)."""
    return bundle_json(snap)


async def on_ready(ctx: ServiceContext[Any]) -> None:
    """Report versions queued for FHIR receivers (domain/deliveries.py) are written by `write`."""
    deliveries.use_writer("fhir", write)
