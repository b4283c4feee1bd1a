"""App factory of the queue calling service."""

from pathlib import Path

from fastapi import FastAPI
from imaging_common.service import ServiceSpec, create_service_app

from queue_calling.settings import Settings

SERVICE = ServiceSpec(
    name="queue_calling",
    prefix="queue",
    title="Queue calling",
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
