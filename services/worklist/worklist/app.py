"""App factory of the worklist service."""

from imaging_common.service import ServiceSpec, app_factory

from worklist.adapters.dicom.scp import worklist_listener
from worklist.adapters.events import HANDLERS
from worklist.adapters.http_worklist import router
from worklist.adapters.live import change_feed
from worklist.adapters.ui import ui_router
from worklist.settings import Settings

SERVICE = ServiceSpec(
    name="worklist",
    title="Worklist",
    settings=Settings,
    peers=True,
    routers=[router],
    ui_routers=[ui_router],
    event_handlers=HANDLERS,
    listeners=[worklist_listener, change_feed],
)

create_app = app_factory(SERVICE)
