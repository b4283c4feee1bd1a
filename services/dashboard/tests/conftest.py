"""Fixtures of the dashboard tests: the service over real HTTP on the session's database and broker
(its consumer, its poller), a producer publishing other services' events onto the session's exchange,
and tokens per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from dashboard.app import create_app
from dashboard.settings import Settings
from imaging_testing import event_producer, http_server
from imaging_testing.auth import issue_test_token

PRODUCER_SCHEMA = "dashboard_test_producer"


@dataclass
class Service:
    url: str
    app: Any
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, *roles: str) -> dict[str, str]:
        key = ",".join(roles)
        if key not in self.tokens:
            self.tokens[key] = issue_test_token(self.settings, roles=list(roles), username=f"dash-{key}")
        return {"authorization": f"Bearer {self.tokens[key]}"}

    @property
    def pool(self) -> Any:
        return self.app.state.ctx.pool


@pytest.fixture(scope="session")
async def service(settings_for: Any) -> AsyncIterator[Service]:
    settings = settings_for(Settings, db_pool_max=3, dashboard_echo_seconds=0.3, dashboard_echo_timeout=2.0,
                            dashboard_screen_seconds=0.5)
    app = create_app(settings)
    async with http_server(app) as url:
        yield Service(url, app, settings)


@pytest.fixture
async def api(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url + "/api/dashboard", timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
async def emit(test_env: dict[str, str]) -> AsyncIterator[Any]:
    """`await emit(model, subject)`: an event committed to another service's outbox and relayed to the bus."""
    async with event_producer(test_env["DATABASE_URL"], service="registration", schema=PRODUCER_SCHEMA) as send:
        yield send
