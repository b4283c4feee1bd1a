"""App factory of the dashboard service: the department's statistics, modality status and wall screen."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from imaging_common.problems import problem
from imaging_common.service import ServiceSpec, app_factory

from dashboard.adapters import events, http_devices, http_screens, http_stats, problem_texts, ui
from dashboard.adapters.echo_worker import echo_listener
from dashboard.domain.errors import DashboardError
from dashboard.settings import Settings


async def refused(request: Request, exc: DashboardError) -> JSONResponse:
    return problem(exc.status, exc.title, str(exc))


SERVICE = ServiceSpec(
    name="dashboard",
    problem_texts=problem_texts.TEXTS,
    title="Department dashboard",
    settings=Settings,
    routers=(http_stats.router, http_devices.router, http_screens.router),
    ui_routers=(ui.ui_router,),
    event_handlers=events.HANDLERS,
    listeners=(echo_listener,),
    exception_handlers={DashboardError: refused},
)

create_app = app_factory(SERVICE)
