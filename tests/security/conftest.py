"""A sandboxed all-in-one platform for the security checks.

The checks call every route, fuzz admin endpoints and throw hostile input at search fields, so
they run against a platform of their own: its own database, broker/Redis namespace and listener
ports. Whatever they create, change or purge (dead letters, escalation chains, receivers...)
never reaches the session's shared database that the other suites rely on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from imaging_common.allinone import build_platform, discover_services
from imaging_common.auth.roles import ROLES
from imaging_common.config import CommonSettings
from imaging_testing import TEST_DATABASE, http_server
from imaging_testing.auth import issue_test_token
from imaging_testing.helpers import database_url as sibling_database_url
from imaging_testing.helpers import environment

from security.openapi_routes import Operation, operations_of
from security.unavailable import connect


@dataclass
class Sandbox:
    url: str
    settings: CommonSettings
    database_url: str
    apps: dict[str, Any]  # service name -> its FastAPI app (for declared roles)

    def token(self, *roles: str, ttl_seconds: int | None = None, username: str = "security") -> str:
        return issue_test_token(self.settings, roles=roles, username=username, ttl_seconds=ttl_seconds)

    def headers(self, *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*roles)}"}

    @property
    def everyone(self) -> dict[str, str]:
        """A token holding every role: admitted by every protected route."""
        return self.headers(*ROLES)

    async def operations(self) -> dict[str, list[Operation]]:
        """Each service's operations, read from the OpenAPI document it serves."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            found = {}
            for spec, _ in discover_services():
                r = await client.get(f"{spec.api_prefix}/openapi.json")
                assert r.status_code == 200, (spec.name, r.status_code)
                found[spec.name] = operations_of(r.json())
            return found


async def on_server(url: str, sql: str) -> None:
    """One statement on the server's maintenance database (connecting as the other suites allow)."""
    conn = await connect(sibling_database_url(url, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def sandbox_platform(common_settings: CommonSettings, label: str) -> AsyncIterator[Sandbox]:
    """Serve the whole platform over HTTP on a database and namespace of its own."""
    name = f"{TEST_DATABASE}_{label}"
    await on_server(common_settings.database_url, f'CREATE DATABASE "{name}"')
    database_url = sibling_database_url(common_settings.database_url, name)
    namespace = f"{common_settings.namespace}-{label}"
    overrides = {
        "DATABASE_URL": database_url, "IMAGING_NAMESPACE": namespace,
        # Listeners on any free port: never collide with a platform another test module started.
        "IMAGING_PRINT_PORT": "0", "IMAGING_WORKLIST_PORT": "0", "IMAGING_MLLP_PORT": "0",
        "IMAGING_CRITICAL_MLLP_PORT": "0",
        # Small pools: PostgreSQL's connections are shared with every suite running on this machine.
        "IMAGING_DB_POOL_MAX": "2",
        # The worklist page's stream of changes ends after a second: a fuzzed request to it gets its answer.
        "IMAGING_WORKLIST_STREAM_SECONDS": "1",
    }
    # Apps read their settings when built; the environment is the session's again right after.
    with environment(overrides):
        settings = CommonSettings()
    try:
        async with contextlib.AsyncExitStack() as stack:
            for pause in (2, 4, 8, 15, 30, 0):
                with environment(overrides):
                    platform = build_platform()
                try:
                    url = await stack.enter_async_context(http_server(platform))
                    break
                except SystemExit:  # startup failed: PostgreSQL, shared with other suites, may be full
                    if not pause:
                        raise
                    await asyncio.sleep(pause)
            apps = {spec.name: platform.app_for(spec.api_prefix) for spec, _ in discover_services()}
            yield Sandbox(url, settings, database_url, apps)
    finally:
        await on_server(common_settings.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        from imaging_common.events.topology import delete_namespace

        with contextlib.suppress(Exception):
            await asyncio.wait_for(delete_namespace(settings.amqp_url, namespace), 10)


@pytest.fixture(scope="package")
async def sandbox(common_settings: CommonSettings) -> AsyncIterator[Sandbox]:
    """Shared by the sweeps, which change nothing but a few rows of their own."""
    async with sandbox_platform(common_settings, "sec") as box:
        yield box


@pytest.fixture(scope="module")
async def fuzz_sandbox(common_settings: CommonSettings) -> AsyncIterator[Sandbox]:
    """The fuzzer's own: it creates, changes and purges at random."""
    async with sandbox_platform(common_settings, "fuzz") as box:
        yield box
