"""App factory of the dashboard service: the department's statistics, modality status and wall screen.
Its refusals are the library's (domain/errors.py), answered by the service factory."""

from __future__ import annotations

from imaging_common.service import ServiceSpec, app_factory

from dashboard.adapters import events, http_devices, http_qc, http_screens, http_stats, ui
from dashboard.adapters.echo_worker import echo_listener
from dashboard.settings import Settings

SERVICE = ServiceSpec(
    name="dashboard",
    title="Department dashboard",
    settings=Settings,
    routers=(http_stats.router, http_devices.router, http_screens.router, http_qc.router),
    ui_routers=(ui.ui_router,),
    event_handlers=events.HANDLERS,
    listeners=(echo_listener,),
)

create_app = app_factory(SERVICE)
