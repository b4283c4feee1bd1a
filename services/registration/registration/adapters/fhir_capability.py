"""What registration serves over FHIR, for the platform's CapabilityStatement (imaging_common.fhir).

Kept apart from the routes (adapters/http_fhir.py) so that any service answering /fhir/R4/metadata can load it
(entry point `imaging.fhir` in pyproject.toml) without importing this service.
"""

from __future__ import annotations

from imaging_common.fhir import ResourceCapability, SearchParam

RESOURCES = (
    ResourceCapability("Patient", ("read", "search-type"), documentation=(
        "The EMPI's golden record; id = EMPI id. Search results (_count at most 50) show ID numbers and phone "
        "masked and no address; a read shows them whole. Every read and every person a search returns is "
        "audited."), search=(
        SearchParam("identifier", "token", "[system|]value; systems urn:imaging:id:<authority>, e.g. "
                    "urn:imaging:id:resident-id, urn:imaging:id:empi, urn:imaging:id:pacs-patient-id"),
        SearchParam("name", "string", "prefix of the name in Han characters or pinyin (at least two "
                    "characters once punctuation and wildcards are dropped)"),
        SearchParam("family", "string", "with given: the name as family + given"),
        SearchParam("given", "string"),
        SearchParam("birthdate", "date", "YYYY-MM-DD, exact; only beside identifier or a name"))),
    ResourceCapability("ServiceRequest", ("read", "search-type"), documentation=(
        "An exam order; id = order id or accession number. status active, completed once its exam completed, "
        "revoked once cancelled or discontinued."), search=(
        SearchParam("identifier", "token", "the accession number ([system|]value)"),
        SearchParam("subject", "reference", "Patient/<EMPI id>"))),
)
