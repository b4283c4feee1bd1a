"""App factory of the registration service."""

from imaging_common import empi
from imaging_common.service import ServiceSpec, app_factory

from registration.adapters import (
    events,
    his_status_worker,
    hl7_feed,
    http_auth,
    http_consistency,
    http_fhir,
    http_patients,
    name_counts,
    ui,
)
from registration.settings import Settings

SERVICE = ServiceSpec(
    name="registration",
    title="Registration",
    settings=Settings,
    library_migrations={"empi": empi.MIGRATIONS},
    peers=True,
    routers=[http_auth.router, http_patients.router, http_consistency.router],
    fhir=http_fhir.FACE,
    on_ready=[http_auth.on_ready],
    event_handlers=events.HANDLERS,
    listeners=[hl7_feed.mllp_listener, name_counts.name_count_listener,
               his_status_worker.his_status_listener],
    ui_routers=[ui.router],
    entry=True,  # the staff's entry (/, /ui/admin/, ...) when it runs on its own: it owns their identity
)

create_app = app_factory(SERVICE)
