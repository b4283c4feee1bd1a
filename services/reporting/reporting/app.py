"""App factory of the reporting service."""

from pathlib import Path

from fastapi import FastAPI
from imaging_common.service import ServiceSpec, create_service_app

from reporting.adapters import (
    fhir_report,
    hl7_oru,
    http_exams,
    http_fhir,
    http_phrases,
    http_receivers,
    http_reporters,
    http_reports,
    http_signatures,
    http_stats,
    http_templates,
)
from reporting.adapters.delivery_worker import delivery_listener
from reporting.adapters.events import HANDLERS
from reporting.adapters.ui import ui_router
from reporting.settings import Settings

SERVICE = ServiceSpec(
    name="reporting",
    prefix="reporting",
    title="Reporting",
    migrations=Path(__file__).parent / "migrations",
    settings=Settings,
    routers=[http_exams.router, http_reports.router, http_signatures.router, http_templates.router,
             http_phrases.router, http_reporters.router, http_receivers.router, http_stats.router],
    fhir=http_fhir.FACE,
    ui_routers=[ui_router],
    event_handlers=HANDLERS,
    listeners=[delivery_listener],
    on_ready=[hl7_oru.on_ready, fhir_report.on_ready],  # the messages the deliveries carry
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
