"""What reporting serves over FHIR, for the platform's CapabilityStatement (imaging_common.fhir).

Kept apart from the routes (adapters/http_fhir.py) so that any service answering /fhir/R4/metadata can load it
(entry point `imaging.fhir` in pyproject.toml) without importing this service.
"""

from __future__ import annotations

from imaging_common.fhir import ResourceCapability, SearchParam

RESOURCES = (
    ResourceCapability("DiagnosticReport", ("read", "search-type"), documentation=(
        "A radiology report; id = report id, the same for every version: the last signed version (an amendment "
        "in progress shows the one in force); a report never signed shows its status with no content."), search=(
        SearchParam("identifier", "token", "the accession number ([system|]value)"),
        SearchParam("patient", "reference", "Patient/<EMPI id>, or the bare EMPI id or PACS patient id"))),
    ResourceCapability("Observation", ("read",), documentation=(
        "One structured finding of a signed report; id = <report id>-<field id>.")),
)
