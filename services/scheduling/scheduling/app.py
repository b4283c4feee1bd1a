"""App factory of the scheduling service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from imaging_common.service import ServiceSpec, create_service_app, handler_settings

from scheduling.adapters import background, http_admin, http_booking, http_fhir
from scheduling.adapters.deps import scheduler_for
from scheduling.domain import orders
from scheduling.domain.booking import Scheduler
from scheduling.settings import Settings


def _scheduler() -> Scheduler:
    # Event handlers get (conn, event) only; their scheduler comes from the settings the app was made with.
    return scheduler_for(handler_settings(Settings))


class _Lazy:
    """A handler built on first use, so importing the app reads no settings."""

    def __init__(self, make):  # type: ignore[no-untyped-def]
        self.make = make

    async def __call__(self, conn, event):  # type: ignore[no-untyped-def]
        return await self.make(_scheduler())(conn, event)


SERVICE = ServiceSpec(
    name="scheduling",
    prefix="scheduling",
    title="Scheduling",
    migrations=Path(__file__).parent / "migrations",
    settings=Settings,
    routers=(http_booking.router, http_admin.router),
    fhir=http_fhir.FACE,
    event_handlers={
        "order.created": _Lazy(orders.order_handler),
        "order.changed": _Lazy(orders.order_handler),
        "order.cancelled": _Lazy(orders.order_cancelled_handler),
        "patient.arrived": _Lazy(orders.patient_arrived_handler),
        "exam.started": _Lazy(orders.exam_progress_handler),
        "exam.completed": _Lazy(orders.exam_progress_handler),
        "patient.updated": orders.on_patient_updated,
        "patient.merged": orders.on_patient_merged,
    },
    listeners=(background.housekeeping,),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
