"""What critical values serves over FHIR, for the platform's CapabilityStatement (imaging_common.fhir).

Kept apart from the routes (adapters/http_fhir.py) so that any service answering /fhir/R4/metadata can load it
(entry point `imaging.fhir` in pyproject.toml) without importing this service.
"""

from __future__ import annotations

from imaging_common.fhir import ResourceCapability

RESOURCES = (
    ResourceCapability("Communication", ("create",), documentation=(
        "A clinician system acknowledges a critical result: a completed Communication inResponseTo the one we "
        "sent (Communication/<its id or our notification id>); sender = who read it, payload[0].contentString = "
        "the action taken, sent = when (kept as claimed beside our time). The caller must be the receiver's "
        "service account. 201 the first time, 200 when already acknowledged.")),
    ResourceCapability("Task", ("update",), documentation=(
        "The Task we gave a clinician system, updated to accepted, in-progress or completed; owner = who, "
        "note[0].text = the action taken, lastModified = when.")),
)
