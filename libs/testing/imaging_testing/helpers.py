"""What tests and benches use to run apps and wait for them: the session's sandbox names, free ports,
an app in process or over real TCP, another service's event producer, and a deadline-bound poll.

`from imaging_testing import asgi_client, free_port` (the package re-exports these).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import uvicorn
from imaging_common import db
from imaging_common.config import CommonSettings

T = TypeVar("T")

# One test session, one database and one RabbitMQ/Redis namespace (the plugin creates and drops them).
_RUN_ID = uuid.uuid4().hex[:10]
RUN_ID = _RUN_ID
TEST_DATABASE = f"imaging_test_{_RUN_ID}"
TEST_NAMESPACE = f"test-{_RUN_ID}"


@contextlib.contextmanager
def environment(overrides: dict[str, str]) -> Iterator[None]:
    """os.environ with these variables set (what apps and CLIs read settings from), as it was on the way out."""
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def database_url(server_url: str, database: str) -> str:
    """The URL of another database on the same PostgreSQL server (`postgres`: its maintenance database)."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))


async def execute(url: str, *sql: str) -> None:
    """Run statements, in order, on a connection of their own (roles, databases, grants)."""
    conn = await asyncpg.connect(url)
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def scratch_database(server_url: str, label: str = "") -> AsyncIterator[str]:
    """The URL of a database of the test's own on that server (not created: migrating creates it),
    dropped on the way out: for what must start empty or must not touch the session's rows."""
    name = f"{TEST_DATABASE}_{label}{uuid.uuid4().hex[:6]}"
    try:
        yield database_url(server_url, name)
    finally:
        await execute(database_url(server_url, "postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def empty_database(server_url: str, label: str = "") -> Iterator[str]:
    """The name of a database created empty on that server (so migrations really run in it), dropped on
    the way out; for tests that are not coroutines (each statement runs in an event loop of its own)."""
    name = f"{TEST_DATABASE}_{label}{uuid.uuid4().hex[:6]}"
    admin = database_url(server_url, "postgres")
    asyncio.run(execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        asyncio.run(execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def asgi_client(app: Any, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan and talk to it in process (for API tests)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


@contextlib.asynccontextmanager
async def service_pool(spec: Any, database_url: str, max_size: int = 10) -> AsyncIterator[asyncpg.Pool]:
    """A service's schema migrated (`spec` its ServiceSpec) and a pool on it, closed on the way out."""
    await spec.migrate(database_url)
    pool = await db.create_pool(database_url, spec.schema, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def rolled_back(spec: Any, database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection on a service's migrated schema inside a transaction rolled back on the way out: a test
    may write what it likes and the session's database stays as the other tests expect it."""
    async with service_pool(spec, database_url, max_size=1) as pool, pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield conn
        finally:
            await transaction.rollback()


def rolled_back_conn(spec: Any) -> Any:
    """A pytest fixture (assign it to a name in the test module): `rolled_back` for `spec` on the session's
    database, one per test."""
    import pytest

    @pytest.fixture
    async def conn(test_env: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
        async with rolled_back(spec, test_env["DATABASE_URL"]) as c:
            yield c

    return conn


async def until_ready(url: str, proc: subprocess.Popen[Any], *, within: float = 30.0,
                      output: Callable[[], str] = lambda: "") -> None:
    """Poll a started service's readiness probe `url` until it answers 200; fail, with what `output()` gives
    (its log's tail), as soon as `proc` ends or when `within` seconds have passed."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{url}: the process exited with {proc.returncode}\n{output()}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"{url}: not ready after {within:.0f} s\n{output()}")
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def allinone_process(env: dict[str, str], log: Path, *, stop: int = signal.SIGTERM,
                     within: float = 30.0) -> Iterator[subprocess.Popen[bytes]]:
    """`make run`'s process (`python -m imaging_common.allinone`) with `env`, its output in `log`; on the
    way out sent `stop` (SIGTERM as Kubernetes does, SIGINT as Ctrl-C does) and killed if not gone `within` s."""
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "imaging_common.allinone"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(stop)
        try:
            proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.asynccontextmanager
async def http_server(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Serve an ASGI app over real TCP on 127.0.0.1 in this event loop; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises the startup error
                raise RuntimeError("server stopped during startup")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def event_producer(
    database_url: str, *, service: str, schema: str
) -> AsyncIterator[Callable[[Any, str], Awaitable[Any]]]:
    """Another service's outbox and relay in a schema of its own, publishing onto the session's
    exchange: yields `emit(model, subject)`, which commits one event as that service would (and returns
    it, e.g. for its id)."""
    import imaging_common.db as db
    from imaging_common.events import EventBus, publish

    conn = await asyncpg.connect(database_url)
    try:
        await db.migrate_component(conn, schema, "platform", db.load_migrations(db.PLATFORM_MIGRATIONS))
    finally:
        await conn.close()
    pool = await db.create_pool(database_url, schema)
    bus = EventBus(settings=CommonSettings(), service=service, pool=pool, handlers={})
    await bus.start()

    async def emit(model: Any, subject: str) -> Any:
        async with pool.acquire() as c, c.transaction():
            return await publish(c, model, source=f"/imaging/{service}", subject=subject)

    try:
        yield emit
    finally:
        await bus.stop()
        await pool.close()


async def eventually(check: Callable[[], Awaitable[T] | T], what: str, within: float = 30.0) -> T:
    """Poll `check` (sync or async) until it returns something truthy: a deadline, not a fixed sleep."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)
