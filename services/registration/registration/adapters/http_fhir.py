"""FHIR R4 read views (R4B models from fhir.resources): Patient (PDQm-like search) and ServiceRequest,
under the platform's FHIR base (imaging_common.fhir; the former /api/registration/fhir/... redirects).

    GET /fhir/R4/Patient/{empi_id}
    GET /fhir/R4/Patient?identifier=[system|]value & family/given/name & birthdate
    GET /fhir/R4/ServiceRequest/{order_id}
    GET /fhir/R4/ServiceRequest?identifier=<accession> | subject=Patient/<empi_id>

Identifier systems are `<IMAGING_FHIR_IDENTIFIER_SYSTEM><authority>`, e.g. urn:imaging:id:resident-id;
the EMPI id is urn:imaging:id:empi and the PACS PatientID urn:imaging:id:pacs-patient-id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from imaging_common import audit
from imaging_common.audit import client_ip
from imaging_common.auth import Principal, require_roles
from imaging_common.empi import store
from imaging_common.empi.identifiers import Identifier, mask, mask_phone
from imaging_common.empi.names import name_form, split_han_name
from imaging_common.fhir import FhirFace
from imaging_common.fhir.resources import fhir_response, outcome, searchset

from registration.adapters.deps import request_context
from registration.adapters.fhir_capability import RESOURCES
from registration.domain.orders import load_order, order_id_of, order_ids_of_patient
from registration.domain.patients import MIN_NAME_CHARACTERS, name_search_form, search_by_criteria

router = APIRouter(tags=["fhir"])
Readers = Annotated[Principal, Depends(require_roles(
    "clerk", "nurse", "technologist", "radiologist", "senior-radiologist", "clinician", "admin"))]
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"  # identifier type codes (ACSN, PLAC)
_GENDER = {"M": "male", "F": "female", "O": "other", "U": "unknown"}


MAX_RESULTS = 50  # one search never lists more of the register than this


FACE = FhirFace(router, RESOURCES)


def patient_resource(person: store.Person, system: str, *, masked: bool = False) -> Patient:
    """The Patient; `masked` (search results, which may list many people): ID numbers and phone show
    their first and last digits only and the address is left out — a single read shows them whole."""
    family = given = None
    form = name_form(person.name)
    if form and form.is_han and form.han == person.name:
        family, given = split_han_name(person.name)
    names: list[dict[str, Any]] = [{"use": "official", "text": person.name,
                                    **({"family": family, "given": [given]} if family and given else {})}]
    if person.name_latin:
        fam, _, giv = person.name_latin.partition("^")
        names.append({"use": "usual", "text": person.name_latin.replace("^", " "), "family": fam,
                      **({"given": [giv]} if giv else {})})
    identifiers = [{"use": "official", "system": f"{system}empi", "value": person.empi_id},
                   {"use": "usual", "system": f"{system}pacs-patient-id", "value": person.patient_id}]
    identifiers += [{"system": f"{system}{i['type']}", "value": mask(i["value"]) if masked else i["value"]}
                    for i in person.identifiers if i["valid"]]
    body: dict[str, Any] = {
        "resourceType": "Patient", "id": person.empi_id, "active": person.status == "active",
        "identifier": identifiers, "name": names, "gender": _GENDER.get(person.sex, "unknown"),
        "meta": {"versionId": str(person.version), "lastUpdated": person.updated_at.isoformat()},
    }
    if person.birth_date:
        body["birthDate"] = person.birth_date.isoformat()
    if person.phone:
        body["telecom"] = [{"system": "phone", "value": mask_phone(person.phone) if masked else person.phone}]
    if person.address and not masked:
        body["address"] = [{"text": person.address, **({"postalCode": person.postcode} if person.postcode else {})}]
    if person.status == "merged" and person.merged_into:
        body["link"] = [{"other": {"reference": f"Patient/{person.merged_into}"}, "type": "replaced-by"}]
    return Patient.model_validate(body)


def request_status(order: dict[str, Any]) -> str:
    """ServiceRequest.status as HL7's v2 order status maps to it (ORC-5 CA/DC -> revoked, CM -> completed,
    SC/IP -> active): revoked once cancelled or its exam discontinued, completed once its exam completed,
    else active. on-hold is never used: nothing holds an order here (the HIS's HD is not accepted)."""
    if order["status"] == "cancelled" or order.get("exam_status") == "discontinued":
        return "revoked"
    return "completed" if order.get("exam_status") == "completed" else "active"


def service_request_resource(order: dict[str, Any], system: str) -> ServiceRequest:
    special = order["special"] or {}
    notes = [label for key, label in (("critical", "危重"), ("mdr", "多重耐药菌"), ("infectious", "传染病"))
             if special.get(key)]
    body: dict[str, Any] = {
        "resourceType": "ServiceRequest", "id": order["order_id"],
        "identifier": [{"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
                        "system": f"{system}accession", "value": order["accession_number"]}],
        "status": request_status(order), "intent": "order",
        "priority": {"routine": "routine", "urgent": "urgent", "stat": "stat"}[order["priority"]],
        "code": {"coding": [{"system": f"{system}exam-item", "code": i["code"], "display": i["name"]}
                            for i in order["items"]], "text": "、".join(i["name"] for i in order["items"])},
        "subject": {"reference": f"Patient/{order['empi_id']}", "display": order["patient"]["name"]},
        "authoredOn": order["ordered_at"].isoformat(),
    }
    if order["placer_order_number"]:
        body["identifier"].append({"type": {"coding": [{"system": V2_0203, "code": "PLAC"}]},
                                   "value": order["placer_order_number"]})
    if order["ordering_doctor"]:
        body["requester"] = {"display": order["ordering_doctor"] + (
            f"（{order['ordering_department']}）" if order["ordering_department"] else "")}
    if order["clinical_diagnosis"]:
        body["reasonCode"] = [{"text": order["clinical_diagnosis"]}]
    note_text = [t for t in (order["purpose"] and f"检查目的：{order['purpose']}",
                             order["history"] and f"病史：{order['history']}",
                             notes and "特殊情况：" + "、".join(notes), special.get("notes")) if t]
    if note_text:
        body["note"] = [{"text": t} for t in note_text]
    return ServiceRequest.model_validate(body)


async def _audit(request: Request, user: Principal, entity: str, entity_id: str | None, patient_id: str | None,
                 **detail: Any) -> None:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn:
        await audit.record_read(conn, actor=user.username, entity=entity, entity_id=entity_id,
                                patient_id=patient_id, source_ip=client_ip(request), detail={"via": "fhir", **detail})


@router.get("/Patient/{empi_id}", summary="FHIR Patient read")
async def read_patient(empi_id: str, request: Request, user: Readers) -> JSONResponse:
    ctx = request_context(request)
    try:
        async with ctx.pool.acquire() as conn:
            person = await store.get_person(conn, empi_id)
    except store.EmpiError:
        return outcome(404, "not-found", f"Patient/{empi_id} not found")
    await _audit(request, user, "patient", person.empi_id, person.empi_id)
    return fhir_response(patient_resource(person, ctx.settings.fhir_identifier_system))  # type: ignore[attr-defined]


@router.get("/Patient", summary="FHIR Patient search (identifier, name, family, given, birthdate)")
async def search_patient(
    request: Request, user: Readers, identifier: str | None = None, name: str | None = None,
    family: str | None = None, given: str | None = None, birthdate: str | None = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=MAX_RESULTS)] = 20,
) -> JSONResponse:
    ctx = request_context(request)
    system_base = ctx.settings.fhir_identifier_system  # type: ignore[attr-defined]
    if not any((identifier, name, family, given)):
        return outcome(400, "required", "search needs identifier, name, family or given")
    criteria: dict[str, Any] = {}
    if identifier:
        system, _, value = identifier.rpartition("|")
        value = value.strip()
        if not value:
            return outcome(400, "required", "identifier needs a value (system|value)")
        kind = system[len(system_base):] if system.startswith(system_base) else (system or None)
        if kind == "empi":
            criteria["empi_id"] = value
        elif kind == "pacs-patient-id":
            criteria["pacs_patient_id"] = value
        else:
            if kind:
                try:
                    value = Identifier.of(kind, value, strict=False).value
                except ValueError:
                    return outcome(400, "value", f"unknown identifier system {system}")
            criteria["identifier"] = (value, kind)
    text = name or ((family or "") + (given or ""))
    if text.strip():
        form = name_search_form(text)
        if form is None:
            return outcome(400, "too-costly", f"a name search needs at least {MIN_NAME_CHARACTERS} letters or "
                            "characters of the name")
        criteria["name"] = form
    if not criteria:  # the criteria were empty once normalised (name=-, identifier=|)
        return outcome(400, "required", "search criteria are empty once normalised: give a name, an identifier")
    if birthdate:
        try:
            from datetime import date as _date
            criteria["birth_date"] = _date.fromisoformat(birthdate)
        except ValueError:
            return outcome(400, "value", "birthdate must be YYYY-MM-DD")
    async with ctx.pool.acquire() as conn:
        found = await search_by_criteria(conn, **criteria, limit=count)
        people = [await store.get_person(conn, empi_id) for empi_id in found]
    # Who was shown, one audit row each: a patient's audit trail lists every search that returned them.
    await _audit(request, user, "patient", None, None, search=True, results=len(people))
    for p in people:
        await _audit(request, user, "patient", p.empi_id, p.empi_id, search_result=True)
    return fhir_response(searchset(request, [patient_resource(p, system_base, masked=True) for p in people]))


async def _order(conn: Any, key: str) -> dict[str, Any] | None:
    order_id = await order_id_of(conn, key)
    return None if order_id is None else await load_order(conn, order_id)


@router.get("/ServiceRequest/{order_id}", summary="FHIR ServiceRequest read")
async def read_service_request(order_id: str, request: Request, user: Readers) -> JSONResponse:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn:
        order = await _order(conn, order_id)
    if order is None:
        return outcome(404, "not-found", f"ServiceRequest/{order_id} not found")
    await _audit(request, user, "order", order["order_id"], order["empi_id"])
    return fhir_response(service_request_resource(order, ctx.settings.fhir_identifier_system))  # type: ignore[attr-defined]


@router.get("/ServiceRequest", summary="FHIR ServiceRequest search (identifier = accession, subject)")
async def search_service_request(request: Request, user: Readers, identifier: str | None = None,
                                 subject: str | None = None) -> JSONResponse:
    ctx = request_context(request)
    system = ctx.settings.fhir_identifier_system  # type: ignore[attr-defined]
    async with ctx.pool.acquire() as conn:
        if identifier:
            order = await _order(conn, identifier.rpartition("|")[2])
            orders = [order] if order else []
        elif subject:
            ids = await order_ids_of_patient(conn, subject.removeprefix("Patient/"))
            orders = [o for o in [await _order(conn, order_id) for order_id in ids] if o]
        else:
            return outcome(400, "required", "search needs identifier or subject")
    await _audit(request, user, "order", None, None, search=True, results=len(orders))
    return fhir_response(searchset(request, [service_request_resource(o, system) for o in orders]))
