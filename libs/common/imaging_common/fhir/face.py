"""Mounting a service's FHIR face on its app (`create_service_app` does it when `ServiceSpec.fhir` is set).

- the service's FHIR router under `/fhir/R4`;
- `GET /fhir/R4/metadata`: the CapabilityStatement of every installed service (no token needed: it
  holds no patient data, and clients read it to learn how to authenticate);
- every error under `/fhir/R4` as an OperationOutcome (application/fhir+json): the problem documents
  the platform answers elsewhere (401/403 from the token check, 404, 405, 413, 422, 503...) are
  rewritten on their way out, an unhandled exception answers 500, an unknown type 404 not-supported;
- `/api/<prefix>/fhir/...`, where the service served FHIR before, answers 308 Permanent Redirect to
  the same path and query under `/fhir/R4` (308 keeps the method and body: a HIS POSTing there still
  reaches us once it follows redirects).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers, MutableHeaders

from imaging_common.fhir.capability import BASE, capability_statement, declared_resources
from imaging_common.fhir.resources import (
    FHIR_JSON,
    FhirJSONResponse,
    base_url,
    outcome,
    outcome_body,
    outcome_from_problem,
)
from imaging_common.problems import PROBLEM_JSON

if TYPE_CHECKING:
    from imaging_common.service import ServiceSpec

log = logging.getLogger(__name__)
_STARTED = datetime.now(UTC).replace(microsecond=0).isoformat()  # the statement's date: this software's start


def under_base(path: str) -> bool:
    return path == BASE or path.startswith(BASE + "/")


def _metadata_router() -> APIRouter:
    router = APIRouter(tags=["fhir"])

    @router.get("/metadata", summary="FHIR CapabilityStatement of the whole platform", response_class=FhirJSONResponse)
    async def metadata(request: Request) -> JSONResponse:
        statement = capability_statement(declared_resources(), base_url=base_url(request), date=_STARTED)
        return JSONResponse(statement, media_type=FHIR_JSON)

    return router


class FhirFace:
    """ASGI middleware of a service serving FHIR.

    Under /fhir/R4, a problem+json error becomes an OperationOutcome with the same status and headers
    (WWW-Authenticate, Retry-After, the correlation id); an exception nothing handled becomes a 500
    OperationOutcome (logged here, with its traceback). Under the service's former base
    `/api/<prefix>/fhir`, any method answers 308 to the same path and query under /fhir/R4 (before
    routing: it answers no data, so it needs no token, and is no route of the service's API)."""

    def __init__(self, app: Any, *, former_base: str) -> None:
        self.app = app
        self.former_base = former_base

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == self.former_base or path.startswith(self.former_base + "/"):
            raw = (scope.get("raw_path") or path.encode()).decode("latin-1").split("?", 1)[0]  # still %-encoded
            query = scope.get("query_string", b"").decode("latin-1")
            location = BASE + raw[len(self.former_base):] + (f"?{query}" if query else "")
            await Response(status_code=308, headers={"Location": location})(scope, receive, send)
            return
        if not under_base(path):
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] | None = None  # the start of a problem response, until its body is complete
        body: list[bytes] = []
        started = False

        async def rewriting(message: dict[str, Any]) -> None:
            nonlocal held, started
            if message["type"] == "http.response.start":
                if message["status"] >= 400 and Headers(raw=message["headers"]).get(
                        "content-type", "").startswith(PROBLEM_JSON):
                    held = message
                    return
                started = True
            elif message["type"] == "http.response.body" and held is not None:
                body.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                await self._send_outcome(scope, held, b"".join(body), send)
                started, held = True, None
                return
            await send(message)

        try:
            await self.app(scope, receive, rewriting)
        except Exception:
            if started:
                raise
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            await outcome(500, "exception", "an unexpected error was logged")(scope, receive, send)

    @staticmethod
    async def _send_outcome(scope: dict[str, Any], start: dict[str, Any], problem: bytes, send: Any) -> None:
        status = start["status"]
        outcome_json = outcome_from_problem(status, problem)
        kind = _unknown_type(scope["path"]) if status == 404 else None
        if kind is not None:
            outcome_json = outcome_body(404, f"{kind} is not a resource type served here; {BASE}/metadata lists "
                                        "those that are", code="not-supported")
        payload = JSONResponse(outcome_json).body
        headers = MutableHeaders(raw=list(start["headers"]))
        headers["content-type"] = FHIR_JSON
        headers["content-length"] = str(len(payload))
        await send({"type": "http.response.start", "status": status, "headers": headers.raw})
        await send({"type": "http.response.body", "body": payload})


def _unknown_type(path: str) -> str | None:
    """The first segment after the base when no installed service declares it (None for the base, metadata)."""
    first = path[len(BASE):].strip("/").split("/", 1)[0]
    if not first or first == "metadata" or first in {r.type for r in declared_resources()}:
        return None
    return first[:64]


def mount(app: FastAPI, spec: ServiceSpec) -> None:
    """Serve `spec.fhir` on `app` under /fhir/R4 (see the module's docstring)."""
    assert spec.fhir is not None
    # Routes that name no response class of their own are documented as FHIR (they answer fhir_response).
    app.include_router(spec.fhir.router, prefix=BASE, default_response_class=FhirJSONResponse)
    app.include_router(_metadata_router(), prefix=BASE)
    app.add_middleware(FhirFace, former_base=f"{spec.api_prefix}/fhir")
