"""App factory of the print scp service."""

from pathlib import Path

from fastapi import FastAPI
from imaging_common.service import ServiceSpec, create_service_app

from print_scp.settings import Settings

SERVICE = ServiceSpec(
    name="print_scp",
    prefix="print",
    title="Print SCP",
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings or Settings())
