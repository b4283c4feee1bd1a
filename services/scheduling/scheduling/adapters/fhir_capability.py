"""What scheduling serves over FHIR, for the platform's CapabilityStatement (imaging_common.fhir).

Kept apart from the routes (adapters/http_fhir.py) so that any service answering /fhir/R4/metadata can load it
(entry point `imaging.fhir` in pyproject.toml) without importing this service.
"""

from __future__ import annotations

from imaging_common.fhir import Operation, ResourceCapability, SearchParam

MAX_SLOT_DAYS = 14  # a Slot search covers at most this many days
FIND = "urn:imaging:fhir:OperationDefinition:Appointment-find"  # ours; no published definition is followed

RESOURCES = (
    ResourceCapability("Schedule", ("read", "search-type"),
                       documentation="One per room; id = room id. A search without parameters lists every room."),
    ResourceCapability("Slot", ("search-type",), documentation="A room's time slices: free, busy or busy-unavailable.",
                       search=(SearchParam("schedule", "reference", "Schedule/<room id> (required)"),
                               SearchParam("start", "date", "instant with offset: slices starting at or after it "
                                           "(required)"),
                               SearchParam("end", "date", f"ours, not FHIR's: slices starting before this instant; "
                                           f"default start + 1 day, at most {MAX_SLOT_DAYS} days"),
                               SearchParam("status", "token", "free | busy | busy-unavailable"))),
    ResourceCapability("Appointment", ("read", "search-type"),
                       documentation="An exam's booking; id = appointment id. A search returns at most 500 (_count).",
                       search=(SearchParam("patient", "reference", "Patient/<EMPI id>"),
                               SearchParam("based-on", "reference", "ServiceRequest/<order id>"),
                               SearchParam("status", "token", "an AppointmentStatus")),
                       operations=(Operation("find", FIND, (
                           "GET Appointment/$find?based-on=ServiceRequest/<order id>&service-type=<exam code>"
                           "[&start&end&channel&_count]: the allowed slots as proposed Appointments")),)),
)
