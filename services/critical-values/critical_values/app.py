"""App factory of the critical values service: the closed loop of standard 7.1.3 and 8.7."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from imaging_common.problems import problem
from imaging_common.service import ServiceSpec, app_factory

from critical_values.adapters import (
    events,
    http_admin,
    http_board,
    http_fallback,
    http_fhir,
    http_values,
    ui,
)
from critical_values.adapters.delivery_worker import engine_listener
from critical_values.adapters.hl7_ack import mllp_listener
from critical_values.domain import starter
from critical_values.domain.errors import CriticalError
from critical_values.settings import Settings


async def refused(request: Request, exc: CriticalError) -> JSONResponse:
    # Under /fhir/R4 the platform's FHIR face answers it as an OperationOutcome (imaging_common.fhir).
    return problem(exc.status, exc.title, str(exc))


SERVICE = ServiceSpec(
    name="critical_values",
    title="Critical values",
    settings=Settings,
    peers=True,
    routers=(http_values.router, http_fallback.router, http_board.router, http_admin.router),
    fhir=http_fhir.FACE,
    ui_routers=(ui.ui_router,),
    event_handlers=events.HANDLERS,
    listeners=(engine_listener, mllp_listener),
    exception_handlers={CriticalError: refused},
    starter=starter.load,
)

create_app = app_factory(SERVICE)
