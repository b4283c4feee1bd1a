"""App factory of the worklist service."""

from pathlib import Path

from fastapi import FastAPI
from imaging_common.service import ServiceSpec, create_service_app

from worklist.settings import Settings

SERVICE = ServiceSpec(
    name="worklist",
    prefix="worklist",
    title="Worklist",
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
