"""App factory of the print scp service: DICOM print SCP listener, films API, review page."""

from imaging_common.service import ServiceSpec, app_factory

from print_scp.adapters import http_archive, http_films, http_kiosk, http_public, ui
from print_scp.adapters.events import HANDLERS
from print_scp.adapters.listener import print_listener
from print_scp.settings import Settings

SERVICE = ServiceSpec(
    name="print_scp",
    prefix="print",
    title="Print SCP",
    settings=Settings,
    peers=True,
    routers=(http_films.router, http_archive.router, http_kiosk.router, http_public.router),
    ui_routers=(ui.router,),
    event_handlers=HANDLERS,
    listeners=(print_listener,),
)

create_app = app_factory(SERVICE)
