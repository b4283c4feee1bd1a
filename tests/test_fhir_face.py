"""The platform's one FHIR R4 face, through the all-in-one process: `/fhir/R4/<Type>` reaches the service
that declares the type, `/fhir/R4/metadata` lists every resource whichever service answers it, every
error under the base is an R4B OperationOutcome, and the former per-service bases answer 308."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from imaging_common.allinone import build_platform, discover_services
from imaging_common.config import CommonSettings
from imaging_common.fhir import BASE, FHIR_VERSION
from imaging_common.fhir.capability import declared_resources, installed_declarations
from imaging_testing import http_server
from imaging_testing.auth import issue_test_token
from imaging_testing.fhir import r4b

# type -> the service serving it: what the platform has to offer clinician systems and the HIS.
SERVED = {
    "Patient": "registration", "ServiceRequest": "registration",
    "Schedule": "scheduling", "Slot": "scheduling", "Appointment": "scheduling",
    "DiagnosticReport": "reporting", "Observation": "reporting",
    "Communication": "critical_values", "Task": "critical_values",
}
# One request per type that needs a token (method, path, JSON body).
CALLS = {
    "Patient": ("GET", "/Patient/NO-SUCH-PATIENT", None),
    "ServiceRequest": ("GET", "/ServiceRequest/NO-SUCH-ORDER", None),
    "Schedule": ("GET", "/Schedule/no-such-room", None),
    "Slot": ("GET", "/Slot?schedule=Schedule/no-such-room&start=2030-01-01T08:00:00%2B08:00", None),
    "Appointment": ("GET", "/Appointment/00000000-0000-0000-0000-000000000000", None),
    "DiagnosticReport": ("GET", "/DiagnosticReport/no-such-report", None),
    "Observation": ("GET", "/Observation/no-such-report-size", None),
    "Communication": ("POST", "/Communication", {"resourceType": "Communication", "status": "completed",
                                                 "inResponseTo": [{"reference": "Communication/none"}]}),
    "Task": ("PUT", "/Task/no-such-task", {"resourceType": "Task", "status": "completed", "intent": "order"}),
}
PREFIXES = {"registration": "registration", "scheduling": "scheduling", "reporting": "reporting",
            "critical_values": "critical-values"}


def token(*roles: str, username: str = "fhir-face") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_test_token(CommonSettings(), roles=list(roles), username=username)}"}


@pytest.fixture(scope="module")
async def platform_url(test_env):
    async with http_server(build_platform()) as url:
        yield url


# The route each interaction needs (method, path under the base; {} = any id).
ROUTE_OF = {"read": ("GET", "/{type}/{}"), "search-type": ("GET", "/{type}"), "create": ("POST", "/{type}"),
            "update": ("PUT", "/{type}/{}")}


def test_each_service_serves_what_it_declares(test_env) -> None:
    """The entry-point declarations (what /metadata lists) are the faces the services mount, route for route."""
    declared = dict(installed_declarations())
    assert {r.type: service for service, resources in declared.items() for r in resources} == SERVED
    for spec, create_app in discover_services():
        if spec.fhir is None:
            assert spec.name not in declared
            continue
        assert spec.fhir.resources == declared[spec.name], spec.name
        paths = create_app().openapi()["paths"]  # the routes as served (FastAPI keeps included routers lazily)
        routes = {(method.upper(), re.sub(r"\{[^}]+\}", "{}", path))
                  for path, operations in paths.items() if path.startswith(BASE) for method in operations}
        for resource in spec.fhir.resources:
            for interaction in resource.interactions:
                method, path = ROUTE_OF[interaction]
                assert (method, BASE + path.replace("{type}", resource.type)) in routes, (resource.type, interaction)
            for operation in resource.operations:
                assert ("GET", f"{BASE}/{resource.type}/${operation.name}") in routes
        assert ("GET", f"{BASE}/metadata") in routes


def test_each_type_is_declared_by_one_service_and_routed_to_it(test_env) -> None:
    assert [r.type for r in declared_resources()] == sorted(SERVED)
    platform = build_platform()
    apps = {spec.name: platform.app_for(spec.api_prefix) for spec, _ in discover_services()}
    for kind, service in SERVED.items():
        assert platform.app_for(f"{BASE}/{kind}") is apps[service], kind
        assert platform.app_for(f"{BASE}/{kind}/x/_history") is apps[service], kind
    # The rest of the base (/metadata, unknown types) goes to a service serving FHIR, never "no service".
    assert platform.app_for(f"{BASE}/metadata") in {apps[s] for s in PREFIXES}
    assert platform.app_for(f"{BASE}/PatientX") in {apps[s] for s in PREFIXES}


def _check_statement(statement: dict) -> None:
    assert statement["kind"] == "instance" and statement["fhirVersion"] == FHIR_VERSION
    assert statement["format"] == ["json"] and statement["status"] == "active"
    datetime.fromisoformat(statement["date"])
    (rest,) = statement["rest"]
    assert rest["mode"] == "server"
    listed = {r["type"]: r for r in rest["resource"]}
    assert set(listed) == set(SERVED)
    for declared in declared_resources():
        entry = listed[declared.type]
        assert [i["code"] for i in entry["interaction"]] == list(declared.interactions)
        assert [(p["name"], p["type"]) for p in entry.get("searchParam", [])] == [(p.name, p.type)
                                                                               for p in declared.search]
    assert {i["code"] for i in listed["Patient"]["interaction"]} == {"read", "search-type"}
    assert {p["name"] for p in listed["Patient"]["searchParam"]} >= {"identifier", "name", "birthdate"}
    assert [i["code"] for i in listed["Communication"]["interaction"]] == ["create"]
    assert [i["code"] for i in listed["Task"]["interaction"]] == ["update"]
    assert [o["name"] for o in listed["Appointment"]["operation"]] == ["find"]
    assert {p["name"] for p in listed["DiagnosticReport"]["searchParam"]} == {"identifier", "patient"}


async def test_metadata_lists_every_resource_without_a_token(platform_url: str) -> None:
    async with httpx.AsyncClient(base_url=platform_url) as client:
        statement = r4b(await client.get(f"{BASE}/metadata"), resource_type="CapabilityStatement")
    _check_statement(statement)
    assert statement["implementation"]["url"] == f"{platform_url}{BASE}"


@pytest.mark.parametrize("service", sorted(PREFIXES))
async def test_every_fhir_service_answers_the_same_metadata(test_env, service: str) -> None:
    """Behind the gateway /metadata reaches one service: any of them lists the whole platform."""
    (app,) = [create_app() for spec, create_app in discover_services() if spec.name == service]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ris.local") as client:
        statement = r4b(await client.get(f"{BASE}/metadata"), resource_type="CapabilityStatement")
        _check_statement(statement)
        assert statement["implementation"]["url"] == f"http://ris.local{BASE}"
        # Behind a gateway terminating TLS: the address the client used; a malformed host is not taken.
        behind = r4b(await client.get(f"{BASE}/metadata", headers={
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": "ris.hospital.local"}))
        assert behind["implementation"]["url"] == f"https://ris.hospital.local{BASE}"
        odd = r4b(await client.get(f"{BASE}/metadata", headers={"X-Forwarded-Host": "a b/<x>"}))
        assert odd["implementation"]["url"] == f"http://ris.local{BASE}"


@pytest.mark.parametrize("kind", sorted(SERVED))
async def test_errors_are_operation_outcomes(platform_url: str, kind: str) -> None:
    method, path, body = CALLS[kind]
    async with httpx.AsyncClient(base_url=platform_url) as client:
        refused = await client.request(method, BASE + path, json=body)
        assert r4b(refused, status=401)["issue"][0]["code"] == "login"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        forbidden = await client.request(method, BASE + path, json=body, headers=token("it-ops"))
        assert r4b(forbidden, status=403)["issue"][0]["code"] == "forbidden"
        # With a role that may: the thing does not exist.
        missing = await client.request(method, BASE + path, json=body,
                                       headers=token("clinician", username="fhir-face-clinician"))
        r4b(missing, status=403 if kind in ("Communication", "Task") else 404)  # no clinician system's account
        wrong_method = await client.request("DELETE", BASE + path.split("?")[0], headers=token("clinician"))
        assert r4b(wrong_method, status=405)["issue"][0]["code"] == "not-supported"


async def test_unknown_types_and_invalid_searches_are_operation_outcomes(platform_url: str) -> None:
    clinician = token("clinician")
    async with httpx.AsyncClient(base_url=platform_url) as client:
        for path in ("/Medication/1", "/PatientX", "/patient/1", "/"):
            outcome = r4b(await client.get(BASE + path, headers=clinician), status=404)
            assert outcome["issue"][0]["code"] in {"not-supported", "not-found"}, path
        outcome = r4b(await client.get(f"{BASE}/Medication", headers=clinician), status=404)
        assert outcome["issue"][0]["code"] == "not-supported" and "Medication" in outcome["issue"][0]["diagnostics"]
        for path, params in (("/Patient", {"name": "张三", "_count": "0"}),
                             ("/Slot", {"schedule": "Schedule/x", "start": "tomorrow"}),
                             ("/Appointment", {"patient": "Patient/x", "_count": "many"})):
            outcome = r4b(await client.get(BASE + path, params=params, headers=clinician), status=422)
            assert any(p in issue.get("diagnostics", "") for issue in outcome["issue"]
                       for p in params), outcome  # each offending parameter is named
        # A refused search is answered in FHIR terms too (400 invalid/required).
        r4b(await client.get(f"{BASE}/DiagnosticReport", headers=clinician), status=400)


@pytest.mark.parametrize("service", sorted(PREFIXES))
async def test_former_bases_redirect_permanently(platform_url: str, service: str) -> None:
    kind = next(k for k, s in SERVED.items() if s == service)
    method, path, body = CALLS[kind]
    old = f"/api/{PREFIXES[service]}/fhir{path}"
    async with httpx.AsyncClient(base_url=platform_url) as client:
        moved = await client.request(method, old, json=body)
        assert moved.status_code == 308 and moved.headers["location"] == BASE + path
        # A HIS that follows redirects reaches the new base with its method and body.
        followed = await client.request(method, old, json=body, headers=token("it-ops"), follow_redirects=True)
        assert followed.url.path == BASE + path.split("?")[0] and followed.request.method == method
        r4b(followed, status=403)
        assert (await client.get(f"/api/{PREFIXES[service]}/fhir")).headers["location"] == BASE


def test_the_document_lists_what_the_services_declare() -> None:
    """docs/fhir.md's table: one row per declared type, with its service, interactions and search parameters."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "fhir.md").read_text()
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `(\w+)` \| (.*)$", text, re.M)}
    assert set(rows) == set(SERVED)
    for resource in declared_resources():
        service, interactions, search = (cell.strip() for cell in rows[resource.type].split(" | ", 2))
        assert service == SERVED[resource.type].replace("_", "-"), resource.type
        assert [i.strip() for i in interactions.split(",") if not i.strip().startswith("operation")] == list(
            resource.interactions), resource.type
        documented = set(re.findall(r"`(_?[a-z][a-z-]*)`", search.split("; `GET")[0]))
        assert {p.name for p in resource.search} <= documented, (resource.type, documented)
        for operation in resource.operations:
            assert f"${operation.name}" in search and f"operation `${operation.name}`" in interactions


def test_statement_date_is_a_valid_instant() -> None:
    from imaging_common.fhir.capability import capability_statement

    statement = capability_statement(declared_resources(), base_url="https://ris.hospital.local/fhir/R4",
                                     date=datetime.now(UTC).isoformat())
    assert statement["rest"][0]["security"]["service"][0]["coding"][0]["code"] == "OAuth"
