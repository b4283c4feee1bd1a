"""App factory of the critical values service."""

from pathlib import Path

from fastapi import FastAPI
from imaging_common.service import ServiceSpec, create_service_app

from critical_values.settings import Settings

SERVICE = ServiceSpec(
    name="critical_values",
    prefix="critical-values",
    title="Critical values",
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
