"""App factory of the registration service."""

from pathlib import Path

from fastapi import FastAPI
from imaging_common import empi, peers
from imaging_common.peers.api import peers_router
from imaging_common.service import ServiceSpec, create_service_app

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
    prefix="registration",
    title="Registration",
    migrations=Path(__file__).parent / "migrations",
    settings=Settings,
    library_migrations={"empi": empi.MIGRATIONS, "peers": peers.MIGRATIONS},
    routers=[http_auth.router, http_patients.router, http_consistency.router,
             peers_router()],
    fhir=http_fhir.FACE,
    on_ready=[http_auth.on_ready],
    event_handlers=events.HANDLERS,
    listeners=[peers.registry_listener, hl7_feed.mllp_listener, name_counts.name_count_listener,
               his_status_worker.his_status_listener],
    ui_routers=[ui.router],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
