"""App factory of the scheduling service."""

from pathlib import Path

from fastapi import FastAPI
from imaging_common.service import ServiceSpec, create_service_app

from scheduling.settings import Settings

SERVICE = ServiceSpec(
    name="scheduling",
    prefix="scheduling",
    title="Scheduling",
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
