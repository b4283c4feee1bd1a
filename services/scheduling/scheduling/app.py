"""App factory of the scheduling service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from imaging_common.service import ServiceSpec, create_service_app

from scheduling.adapters import background, events, http_admin, http_booking, http_fhir
from scheduling.settings import Settings

SERVICE = ServiceSpec(
    name="scheduling",
    prefix="scheduling",
    title="Scheduling",
    migrations=Path(__file__).parent / "migrations",
    settings=Settings,
    routers=(http_booking.router, http_admin.router),
    fhir=http_fhir.FACE,
    event_handlers=events.HANDLERS,
    listeners=(background.housekeeping,),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
