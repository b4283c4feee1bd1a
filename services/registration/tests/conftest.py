"""Fixtures of the registration tests: the app in process (MLLP listener off), its pool and settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import asyncpg
import pytest
from imaging_testing import asgi_client
from registration.app import create_app
from registration.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))  # regtest_helpers
# Every registration app started by these tests (the auth tests' too) listens for MLLP on a free
# port, never on 2575, which other sessions on this machine may hold.
os.environ.setdefault("IMAGING_MLLP_PORT", "0")


@pytest.fixture(scope="module")
def settings(settings_for) -> Settings:
    return settings_for(Settings, mllp_enabled=False)


@pytest.fixture(scope="module")
async def app(settings):
    application = create_app(settings)
    async with asgi_client(application) as client:
        yield application, client


@pytest.fixture(scope="module")
def client(app):
    return app[1]


@pytest.fixture(scope="module")
def pool(app) -> asyncpg.Pool:
    return app[0].state.ctx.pool
