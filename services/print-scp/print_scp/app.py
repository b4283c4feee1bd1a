"""App factory of the print scp service: DICOM print SCP listener, films API, review page."""

from pathlib import Path

from fastapi import FastAPI
from imaging_common import peers
from imaging_common.peers.api import peers_router
from imaging_common.service import ServiceSpec, create_service_app

from print_scp.adapters import http_archive, http_films, http_kiosk, http_public, ui
from print_scp.adapters.events import HANDLERS
from print_scp.adapters.listener import print_listener
from print_scp.settings import Settings

SERVICE = ServiceSpec(
    name="print_scp",
    prefix="print",
    title="Print SCP",
    migrations=Path(__file__).parent / "migrations",
    settings=Settings,
    library_migrations={"peers": peers.MIGRATIONS},
    routers=(http_films.router, http_archive.router, http_kiosk.router, http_public.router,
             peers_router()),
    ui_routers=(ui.router,),
    event_handlers=HANDLERS,
    listeners=(peers.registry_listener, print_listener),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
