"""App factory of the patient portal."""

from __future__ import annotations

from imaging_common.service import ServiceSpec, app_factory

from patient_portal.adapters import (
    events,
    http_auth,
    http_exams,
    http_messages,
    http_shares,
    http_verify,
    message_worker,
    sms,
    ui,
)
from patient_portal.settings import Settings

SERVICE = ServiceSpec(
    name="patient_portal",
    prefix="patient",
    title="Patient portal",
    settings=Settings,
    routers=(http_auth.router, http_exams.router, http_messages.router, http_shares.router,
             http_verify.router),
    ui_routers=(ui.router,),
    event_handlers=events.HANDLERS,
    listeners=(sms.sms_channel, message_worker.message_sender),
)

create_app = app_factory(SERVICE)
