"""FHIR R4 read API under the platform's FHIR base `/fhir/R4` (imaging_common.fhir; the former
`/api/reporting/fhir/...` redirects there): DiagnosticReport and Observation of signed reports, built
with fhir.resources' R4B models (reporting.adapters.fhir_report).

Clinicians see what was released: the last signed version (an amendment in progress shows the
version still in force); a report never signed shows its status with no content.
"""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from imaging_common import audit
from imaging_common.auth import Principal, require_roles
from imaging_common.fhir import FhirFace
from imaging_common.fhir.resources import fhir_response, outcome, searchset

from reporting.adapters import fhir_report
from reporting.adapters.deps import request_context
from reporting.adapters.fhir_capability import RESOURCES
from reporting.adapters.fhir_report import ACCESSION_SYSTEM
from reporting.domain import reports

fhir_router = APIRouter(tags=["fhir"])
Clinical = Annotated[Principal, Depends(require_roles("clinician", "radiologist", "senior-radiologist", "admin"))]


FACE = FhirFace(fhir_router, RESOURCES)


async def _released(conn: asyncpg.Connection, report_id: str) -> dict[str, Any]:
    report = await reports.report_by_id(conn, report_id)
    version = report["signed_version"] or report["version"]
    snap = await reports.snapshot(conn, report_id, version=version)
    snap["state"] = report["state"]
    if report["signed_version"] is None:  # nothing released: say so, show no content
        snap["content"] = {"findings": "", "impression": "", "fields": {}}
    return snap


async def _audit(conn: asyncpg.Connection, user: Principal, request: Request, entity: str, entity_id: str,
                 patient_id: str | None) -> None:
    await audit.record_read(conn, actor=user.username, entity=entity, entity_id=entity_id,
                            patient_id=patient_id, source_ip=audit.client_ip(request), detail={"via": "fhir"})


@fhir_router.get("/DiagnosticReport/{report_id}", summary="FHIR DiagnosticReport of a report")
async def diagnostic_report(report_id: str, request: Request, user: Clinical) -> JSONResponse:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn:
        try:
            snap = await _released(conn, report_id)
        except reports.NotFound:
            return outcome(404, "not-found", f"DiagnosticReport/{report_id} not found")
        observations = fhir_report.build_observations(snap)
        resource = fhir_report.build_diagnostic_report(snap, observations)
        await _audit(conn, user, request, "report", report_id, snap["patient"].get("patient_id"))
    return fhir_response(resource)


@fhir_router.get("/DiagnosticReport", summary="Search: identifier=<accession> or patient=[Patient/]<patient id>")
async def search(request: Request, user: Clinical, identifier: str | None = None,
                 patient: str | None = None) -> JSONResponse:
    if not identifier and not patient:
        return outcome(400, "required", "search by identifier (accession number) or patient")
    value = identifier.split("|", 1)[-1] if identifier else None
    patient = patient.removeprefix("Patient/") if patient else None  # a reference, or the bare id
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn:
        found = []
        for report_id in await reports.search_ids(conn, accession_number=value, patient=patient):
            snap = await _released(conn, report_id)
            found.append(fhir_report.build_diagnostic_report(snap, fhir_report.build_observations(snap)))
        await _audit(conn, user, request, "report-search", value or patient or "", patient)
    return fhir_response(searchset(request, found))


@fhir_router.get("/Observation/{observation_id}", summary="FHIR Observation of one structured finding")
async def observation(observation_id: str, request: Request, user: Clinical) -> JSONResponse:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn:
        report_id = await reports.id_of_observation(conn, observation_id)
        if report_id is None:
            return outcome(404, "not-found", f"Observation/{observation_id} not found")
        snap = await _released(conn, report_id)
        found = next((o for o in fhir_report.build_observations(snap) if o.id == observation_id), None)
        if found is None:
            return outcome(404, "not-found", f"Observation/{observation_id} not found")
        await _audit(conn, user, request, "observation", observation_id, snap["patient"].get("patient_id"))
    return fhir_response(found)


__all__ = ["ACCESSION_SYSTEM", "FACE", "fhir_router"]
