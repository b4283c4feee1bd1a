"""App factory of the worklist service."""

from pathlib import Path

from fastapi import FastAPI
from imaging_common import peers
from imaging_common.peers.api import peers_router
from imaging_common.service import ServiceSpec, create_service_app

from worklist.adapters.dicom.scp import worklist_listener
from worklist.adapters.events import HANDLERS
from worklist.adapters.http_worklist import router
from worklist.adapters.ui import ui_router
from worklist.settings import Settings

SERVICE = ServiceSpec(
    name="worklist",
    prefix="worklist",
    title="Worklist",
    migrations=Path(__file__).parent / "migrations",
    settings=Settings,
    library_migrations={"peers": peers.MIGRATIONS},
    routers=[router, peers_router()],
    ui_routers=[ui_router],
    event_handlers=HANDLERS,
    listeners=[peers.registry_listener, worklist_listener],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
