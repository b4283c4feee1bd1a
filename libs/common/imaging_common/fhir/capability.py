"""What a service says it serves over FHIR, and the platform's CapabilityStatement built from it.

A service declares what it serves in a small module of its own, `<package>/adapters/fhir_capability.py`,
named in its pyproject as an entry point of the `imaging.fhir` group (beside its `imaging.services` one):

    RESOURCES = (
        ResourceCapability("Patient", ("read", "search-type"), search=(
            SearchParam("identifier", "token", "system|value; systems urn:imaging:id:<authority>"),)),
    )

and its FHIR adapter serves them: `FACE = FhirFace(router, RESOURCES)`, given to `ServiceSpec(fhir=FACE)`.

The library names no service: `installed_declarations()` finds the declarations the way the all-in-one
process finds the services (entry points), so the statement lists every installed service's resources
whichever service answers `/fhir/R4/metadata` - and loading them imports only those small modules, not
every service's app.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import entry_points, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import APIRouter

BASE = "/fhir/R4"  # the one FHIR base of a deployment, the same in one process and behind the gateway
# R4 (4.0.1): the base says R4 and clients check it. Resources are validated with fhir.resources' R4B
# models (the package has no R4), which left every resource we serve unchanged from R4.
FHIR_VERSION = "4.0.1"

# CapabilityStatement.rest.resource.interaction.code and SearchParamType (required bindings).
INTERACTIONS = frozenset({"read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                          "create", "search-type"})
SEARCH_TYPES = frozenset({"number", "date", "string", "token", "reference", "composite", "quantity", "uri",
                          "special"})


@dataclass(frozen=True)
class SearchParam:
    name: str  # as in the query string: "identifier", "based-on" (result parameters such as _count are not listed)
    type: str  # a SearchParamType: token, string, date, reference, number...
    documentation: str = ""

    def __post_init__(self) -> None:
        if self.type not in SEARCH_TYPES:
            raise ValueError(f"search parameter {self.name}: {self.type!r} is not a FHIR search parameter type")


@dataclass(frozen=True)
class Operation:
    name: str  # without the "$": "find"
    definition: str  # canonical URL of the OperationDefinition it follows (ours when none is published)
    documentation: str = ""


@dataclass(frozen=True)
class ResourceCapability:
    type: str  # "Patient"
    interactions: tuple[str, ...]  # "read", "search-type", "create", "update"...
    search: tuple[SearchParam, ...] = ()
    operations: tuple[Operation, ...] = ()
    documentation: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.interactions) - INTERACTIONS
        if unknown:
            raise ValueError(f"{self.type}: {sorted(unknown)} are not FHIR RESTful interactions")
        if self.search and "search-type" not in self.interactions:
            raise ValueError(f"{self.type}: search parameters without the search-type interaction")


@dataclass(frozen=True)
class FhirFace:
    """One service's FHIR resources: the router serving them (paths relative to the base, e.g.
    "/Patient/{id}") and what the CapabilityStatement says about them."""

    router: APIRouter
    resources: tuple[ResourceCapability, ...]

    @property
    def resource_types(self) -> tuple[str, ...]:
        return tuple(r.type for r in self.resources)


ENTRY_POINTS = "imaging.fhir"


def installed_declarations() -> list[tuple[str, tuple[ResourceCapability, ...]]]:
    """(service name, the resources it declares) of every installed service serving FHIR, in a stable order."""
    return [(ep.name, tuple(ep.load()))
            for ep in sorted(entry_points(group=ENTRY_POINTS), key=lambda e: e.name)]


@functools.cache
def declared_resources() -> tuple[ResourceCapability, ...]:
    """Every resource the installed services serve, by type; a type served by two services is a
    deployment error (the gateway could send it to only one)."""
    owner: dict[str, str] = {}
    resources: list[ResourceCapability] = []
    for service, declared in installed_declarations():
        for resource in declared:
            if resource.type in owner:
                raise RuntimeError(f"FHIR {resource.type} is declared by both {owner[resource.type]} and {service}")
            owner[resource.type] = service
            resources.append(resource)
    return tuple(sorted(resources, key=lambda r: r.type))


def capability_statement(resources: tuple[ResourceCapability, ...], *, base_url: str, date: str) -> dict[str, Any]:
    """The CapabilityStatement (kind instance, JSON only) of these resources, validated with R4B."""
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    def resource(r: ResourceCapability) -> dict[str, Any]:
        body: dict[str, Any] = {"type": r.type, "interaction": [{"code": code} for code in r.interactions],
                                "versioning": "no-version", "readHistory": False, "updateCreate": False}
        if r.documentation:
            body["documentation"] = r.documentation
        if r.search:
            body["searchParam"] = [{"name": p.name, "type": p.type, **({"documentation": p.documentation}
                                                                          if p.documentation else {})}
                                   for p in r.search]
        if r.operations:
            body["operation"] = [{"name": o.name, "definition": o.definition,
                                  **({"documentation": o.documentation} if o.documentation else {})}
                                 for o in r.operations]
        return body

    body: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "name": "ImagingPlatformFhirServer",
        "title": "Imaging center platform: FHIR R4 server",
        "status": "active",
        "date": date,
        "publisher": "Imaging center platform",
        "kind": "instance",
        "software": {"name": "imaging-platform", "version": version("imaging-common")},
        "implementation": {"description": "Imaging center platform FHIR R4 server", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "One base for the platform; each resource is served by the service that owns it.",
            "security": {
                "cors": False,
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                         "code": "OAuth", "display": "OAuth"}]}],
                "description": "Every interaction but this statement needs a bearer access token (JWT) of the "
                               "platform's login or its identity provider, with a role the resource allows.",
            },
            "resource": [resource(r) for r in resources],
        }],
    }
    CapabilityStatement.model_validate(body)
    return body
