"""App factory of the reporting service."""

from imaging_common.service import ServiceSpec, app_factory

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
from reporting.domain import starter
from reporting.settings import Settings

SERVICE = ServiceSpec(
    name="reporting",
    title="Reporting",
    settings=Settings,
    routers=[http_exams.router, http_reports.router, http_signatures.router, http_templates.router,
             http_phrases.router, http_reporters.router, http_receivers.router, http_stats.router],
    fhir=http_fhir.FACE,
    ui_routers=[ui_router],
    event_handlers=HANDLERS,
    listeners=[delivery_listener],
    on_ready=[hl7_oru.on_ready, fhir_report.on_ready],  # the messages the deliveries carry
    starter=starter.load,
)

create_app = app_factory(SERVICE)
