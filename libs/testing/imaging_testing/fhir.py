"""Test helpers: what a service answers or sends over FHIR must parse with the R4B models.

    body = r4b(await client.get("/fhir/R4/Patient/x", headers=h))            # 200, fhir+json, valid
    r4b(await client.get("/fhir/R4/Patient/NOPE", headers=h), status=404)   # an OperationOutcome
    r4b_resource(pushed_dict, "DiagnosticReport")                           # what a receiver got
"""

from __future__ import annotations

from typing import Any

from imaging_common.fhir.resources import FHIR_JSON, parse


def r4b_resource(body: Any, resource_type: str | None = None) -> dict[str, Any]:
    """`body` once its R4B model accepts it (a Bundle's entries too); of `resource_type` when given."""
    assert isinstance(body, dict), body
    if resource_type is not None:
        assert body.get("resourceType") == resource_type, (resource_type, body)
    parse(body)
    return body


def r4b(response: Any, status: int = 200, resource_type: str | None = None) -> dict[str, Any]:
    """The JSON of an HTTP response (httpx) of `status`, application/fhir+json, valid R4B: an
    OperationOutcome for an error status."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(FHIR_JSON), response.headers.get("content-type")
    expected = resource_type or ("OperationOutcome" if status >= 400 else None)
    return r4b_resource(response.json(), expected)
