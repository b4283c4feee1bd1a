"""FHIR resources as we build and answer them: validated with fhir.resources' R4B models, served as
application/fhir+json; errors as OperationOutcome, one shape for every service.

    fhir_response(Patient.model_validate(body))       # a model, dumped without nulls
    fhir_response(validated(body_dict))               # a dict checked against its R4B model
    outcome(404, "not-found", "Patient/x not found")  # an OperationOutcome with that HTTP status
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir_core.fhirabstractmodel import FHIRAbstractModel

from imaging_common.fhir.capability import BASE

FHIR_JSON = "application/fhir+json"


class FhirJSONResponse(JSONResponse):
    """A FHIR resource as application/fhir+json: the response class of every FHIR route, so that
    OpenAPI documents their answers as FHIR (the routes build their responses with fhir_response)."""

    media_type = FHIR_JSON


# OperationOutcome.issue.code (IssueType) for an HTTP status, as the FHIR REST specification pairs them.
ISSUE_CODES = {
    400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported", 406: "not-supported",
    409: "conflict", 410: "deleted", 412: "conflict", 413: "too-long", 415: "not-supported", 422: "processing",
    429: "throttled", 500: "exception", 502: "transient", 503: "transient", 504: "timeout",
}


def issue_code(status: int) -> str:
    return ISSUE_CODES.get(status, "processing" if status < 500 else "exception")


def model_of(resource_type: str) -> type[FHIRAbstractModel]:
    """The R4B model class of a resource type; ValueError for a name that is no R4B resource."""
    if not resource_type.isalpha() or not resource_type[:1].isupper():
        raise ValueError(f"{resource_type!r} is not a FHIR resource type")
    return get_fhir_model_class(resource_type)


def parse(body: Mapping[str, Any]) -> FHIRAbstractModel:
    """The resource as its R4B model: pydantic's ValidationError when it is not valid R4B."""
    kind = body.get("resourceType")
    if not isinstance(kind, str):
        raise ValueError("no resourceType")
    return model_of(kind).model_validate(dict(body))


def validated(body: dict[str, Any]) -> dict[str, Any]:
    """`body` itself once its R4B model accepts it (for resources written as dicts, e.g. to keep a
    serialiser off a hot path); raises pydantic's ValidationError otherwise."""
    parse(body)
    return body


def as_json(resource: FHIRAbstractModel | dict[str, Any]) -> dict[str, Any]:
    if isinstance(resource, FHIRAbstractModel):
        return resource.model_dump(mode="json", exclude_none=True)
    return resource


_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def base_url(request: Request) -> str:
    """The absolute FHIR base this request came through, e.g. https://ris.hospital.local/fhir/R4: behind a
    gateway that terminates TLS, the scheme and host the client used (X-Forwarded-Proto / -Host, which the
    gateway sets; forged by a client, they change only the links in its own answer)."""
    url = request.base_url
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    if proto in ("http", "https"):
        url = url.replace(scheme=proto)
    if host and _HOST.fullmatch(host):
        url = url.replace(netloc=host)
    return str(url).rstrip("/") + BASE


def searchset(request: Request, resources: Sequence[FHIRAbstractModel | dict[str, Any]]) -> dict[str, Any]:
    """A searchset Bundle of matches, validated: each entry's fullUrl is absolute, the self link is the search."""
    base = base_url(request)
    entries = []
    for resource in resources:
        body = as_json(resource)
        entry: dict[str, Any] = {"resource": body, "search": {"mode": "match"}}
        if body.get("id"):
            entry["fullUrl"] = f"{base}/{body['resourceType']}/{body['id']}"
        entries.append(entry)
    query = request.url.query
    self_url = base[:-len(BASE)] + request.url.path + (f"?{query}" if query else "")
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
              "link": [{"relation": "self", "url": self_url}], "entry": entries}
    Bundle.model_validate(bundle)
    return bundle


def fhir_response(resource: FHIRAbstractModel | dict[str, Any], status: int = 200,
                  headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(as_json(resource), status_code=status, media_type=FHIR_JSON, headers=dict(headers or {}))


def outcome_body(status: int, text: str, *, code: str | None = None,
                 details: Sequence[str] = (), title: str | None = None) -> dict[str, Any]:
    """An OperationOutcome: one error issue saying `text`, and one more per item of `details`."""
    main: dict[str, Any] = {"severity": "error", "code": code or issue_code(status), "diagnostics": text}
    if title:
        main["details"] = {"text": title}
    issues = [main] + [{"severity": "error", "code": code or issue_code(status), "diagnostics": d} for d in details]
    body = {"resourceType": "OperationOutcome", "issue": issues}
    OperationOutcome.model_validate(body)
    return body


def outcome(status: int, code: str | None, text: str, *, headers: Mapping[str, str] | None = None,
            details: Sequence[str] = ()) -> JSONResponse:
    """An OperationOutcome answered with `status` (issue code from the status when `code` is None)."""
    return JSONResponse(outcome_body(status, text, code=code, details=details), status_code=status,
                        media_type=FHIR_JSON, headers=dict(headers or {}))


def outcome_from_problem(status: int, problem: bytes) -> dict[str, Any]:
    """The OperationOutcome saying what a problem document (imaging_common.problems) said."""
    try:
        body = json.loads(problem)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    title = str(body.get("title") or "Error")
    details: list[str] = []
    for error in body.get("errors") or []:  # request validation: each offending field
        if isinstance(error, dict):
            where = ".".join(str(part) for part in error.get("loc") or ())
            details.append(f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", "")))
        else:
            details.append(str(error))
    for violation in body.get("violations") or []:  # a domain rule's list, e.g. a booking refused
        details.append(str(violation.get("message") or violation) if isinstance(violation, dict) else str(violation))
    return outcome_body(status, str(body.get("detail") or title), title=title, details=details)
