"""App factory of the registration service."""

from pathlib import Path

from fastapi import FastAPI
from imaging_common.service import ServiceSpec, create_service_app

from registration.settings import Settings

SERVICE = ServiceSpec(
    name="registration",
    prefix="registration",
    title="Registration",
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
