"""App factory of the reporting service."""

from pathlib import Path

from fastapi import FastAPI
from imaging_common.service import ServiceSpec, create_service_app

from reporting.settings import Settings

SERVICE = ServiceSpec(
    name="reporting",
    prefix="reporting",
    title="Reporting",
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
