"""pytest plugin shared by every test folder (loaded with `-p imaging_testing.plugin`).

Tests run against the real PostgreSQL, RabbitMQ and Redis. Each test session gets its own
database (`imaging_test_<id>`, dropped at the end) and its own namespace for RabbitMQ
exchanges/queues and Redis keys, so sessions running side by side never see each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import asyncpg
import pytest
from imaging_common.config import CommonSettings
from imaging_common.preflight import check_infrastructure

from imaging_testing import broker_cleanup, reactor_guard
from imaging_testing.helpers import (
    RUN_ID,
    TEST_DATABASE,
    TEST_NAMESPACE,
    database_url,
    environment,
    free_port,
)

S = TypeVar("S", bound=CommonSettings)

# Every pynetdicom SCU in the tests and benches (the modalities) waits for its responses
# without the reactor race that drops one now and then on a loaded machine.
reactor_guard.install()

# How long the interpreter may take to exit once the summary is printed. A CI run once printed
# "652 passed" and then hung until the job's time limit: something (a thread, an atexit hook)
# kept the process alive. The watchdog prints every thread's stack so the cause can be found,
# and ends the process with the session's own status.
EXIT_GRACE_SECONDS = float(os.environ.get("IMAGING_TEST_EXIT_GRACE", "60"))
_session_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _session_status
    _session_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    def watchdog() -> None:
        time.sleep(EXIT_GRACE_SECONDS)
        sys.stderr.write(f"\nthe test process did not exit {EXIT_GRACE_SECONDS:.0f} s after the summary;"
                         " what still runs:\n")
        for thread in threading.enumerate():
            sys.stderr.write(f"  {thread.name} 0x{thread.ident or 0:016x} daemon={thread.daemon}\n")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(_session_status)

    threading.Thread(target=watchdog, name="exit-watchdog", daemon=True).start()


async def _on_server(url: str, sql: str) -> None:
    """One statement on the server's maintenance database: CREATE or DROP DATABASE."""
    conn = await asyncpg.connect(database_url(url, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def test_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment of this test session: its own database, namespace and data folder.

    Set in os.environ too, so anything that reads settings (apps, CLIs in subprocesses)
    lands in the session's sandbox. Fails loudly when a server is missing: never skips.
    """
    base = CommonSettings()
    problems = asyncio.run(check_infrastructure(base))
    if problems:
        pytest.fail("test infrastructure missing:\n" + "\n".join(problems), pytrace=False)

    asyncio.run(_on_server(base.database_url, f'CREATE DATABASE "{TEST_DATABASE}"'))
    marker = broker_cleanup.SessionMarker(database_url(base.database_url, "postgres"), RUN_ID)
    marker.start()
    _cleanup_dead_sessions(base)
    env = {
        "DATABASE_URL": database_url(base.database_url, TEST_DATABASE),
        "AMQP_URL": base.amqp_url,
        "REDIS_URL": base.redis_url,
        "IMAGING_NAMESPACE": TEST_NAMESPACE,
        "IMAGING_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "IMAGING_LOG_JSON": "false",
        # The session runs nine services several times over (session-long service fixtures, all-in-one
        # platforms, e2e clusters) on one PostgreSQL of 100 connections: small pools unless a test asks
        # for more (CI peaked at 97 with the default 5).
        "IMAGING_DB_POOL_MAX": "3",
        # Listeners get ports of their own, so an all-in-one app started by a test never collides
        # with a platform running on this machine or with another test session.
        "IMAGING_PRINT_PORT": str(free_port()),
        "IMAGING_WORKLIST_PORT": str(free_port()),
        "IMAGING_MLLP_PORT": "0",  # any free port: registration tests run several apps at once
        "IMAGING_CRITICAL_MLLP_PORT": str(free_port()),
    }
    try:
        with environment(env):
            yield env
    finally:
        asyncio.run(_on_server(base.database_url, f'DROP DATABASE IF EXISTS "{TEST_DATABASE}" WITH (FORCE)'))
        _cleanup_broker(base.amqp_url, TEST_NAMESPACE)
        marker.stop()


def _cleanup_broker(amqp_url: str, namespace: str) -> None:
    """Delete the exchanges and queues this session declared, its sub-platforms' too (best effort)."""
    listed = broker_cleanup.broker_namespaces()
    broker_cleanup.delete(amqp_url, broker_cleanup.of_session(listed, namespace) if listed is not None else [namespace])


def _cleanup_dead_sessions(base: CommonSettings) -> None:
    """Namespaces of test sessions that ended without cleaning up (killed runs): their queues go too."""
    listed = broker_cleanup.broker_namespaces()
    if not listed:
        return
    with contextlib.suppress(Exception):
        dead = asyncio.run(broker_cleanup.of_dead_sessions(listed, database_url(base.database_url, "postgres")))
        broker_cleanup.delete(base.amqp_url, dead)


@pytest.fixture(scope="session")
def settings_for(test_env: dict[str, str]) -> Any:
    """`settings_for(SettingsClass, **overrides)` builds a service's settings in the sandbox."""

    def make(cls: type[S], **overrides: Any) -> S:
        return cls(**overrides)

    return make


@pytest.fixture(scope="session")
def common_settings(test_env: dict[str, str]) -> CommonSettings:
    return CommonSettings()


@pytest.fixture(scope="session")
async def db_conn_url(test_env: dict[str, str]) -> str:
    return test_env["DATABASE_URL"]
