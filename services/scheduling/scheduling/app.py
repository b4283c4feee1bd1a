"""App factory of the scheduling service."""

from __future__ import annotations

from imaging_common.service import ServiceSpec, app_factory

from scheduling.adapters import background, events, http_admin, http_booking, http_fhir, ui
from scheduling.domain import starter
from scheduling.settings import Settings

SERVICE = ServiceSpec(
    name="scheduling",
    title="Scheduling",
    settings=Settings,
    routers=(http_booking.router, http_admin.router),
    ui_routers=(ui.ui_router,),
    fhir=http_fhir.FACE,
    event_handlers=events.HANDLERS,
    listeners=(background.housekeeping,),
    starter=starter.load,
)

create_app = app_factory(SERVICE)
