"""The platform's one FHIR R4 face: every service that serves FHIR does so under `/fhir/R4`.

- `capability`: what a service declares in its own FHIR adapter (`FhirFace`: its router, and the
  resources, interactions, search parameters and operations it serves); the declarations of every
  installed service are collected through the `imaging.services` entry points, so any service answers
  `GET /fhir/R4/metadata` with the whole platform's CapabilityStatement.
- `resources`: building and validating with fhir.resources' R4B models, application/fhir+json
  responses, OperationOutcome.
- `face`: mounting a service's face (set up by `create_service_app` when `ServiceSpec.fhir` is given):
  its router under the base, `/metadata`, OperationOutcome for every error under the base, and a 308
  from the service's former base `/api/<prefix>/fhir/...`.

R4B, not R4: fhir.resources ships no R4 package; R4B (4.3.0) left every resource we serve as R4
(4.0.1) defined it, so what validates against R4B is R4 on the wire, and the statement says 4.0.1.
"""

from imaging_common.fhir.capability import (
    BASE,
    FHIR_VERSION,
    FhirFace,
    Operation,
    ResourceCapability,
    SearchParam,
)

__all__ = ["BASE", "FHIR_VERSION", "FhirFace", "Operation", "ResourceCapability", "SearchParam"]
