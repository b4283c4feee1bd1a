"""The whole platform in one process: every service's app on one port, listeners in one loop.

Services are found through the `imaging.services` entry point group (each service's
pyproject declares its `SERVICE`), so this module depends on none of them. Requests are
dispatched by path prefix: `/api/<prefix>` and `/ui/<prefix>` go to the service that owns it,
`/fhir/R4/<ResourceType>` to the service declaring that type (`ServiceSpec.fhir`), and the rest of
`/fhir/R4` (`/metadata`, unknown types) to the first service serving FHIR, so URLs are the same as
behind the Kubernetes gateway. The staff's entry belongs to no one service: `/` and `/ui/` (sign-in and
home page), the administration page `/ui/admin/`, `/favicon.ico` and the pages' shared assets
`/ui/common/...` (imaging_common.web).

    python -m imaging_common.allinone          # serve (what `make run` does)
    python -m imaging_common.allinone migrate  # only apply migrations (`make migrate`)
    python -m imaging_common.allinone starter  # migrate, then load the starter configuration (README, First start)

`starter` adds every installed service's part of the starter department (imaging_common.starter) that is
missing and keeps what an admin configured; IMAGING_STARTER=1 does the same before serving (`IMAGING_STARTER=1
make run`). Each load is audited as a configuration change by the operating-system user who ran it.

`migrate` needs PostgreSQL only (never RabbitMQ or Redis), so it can run before the broker exists
(the chart's post-install hook). IMAGING_MIGRATE_WAIT_SECONDS (default 0) waits that long for the
database to answer first; IMAGING_APP_DB_ROLE names the services' own role when migrations run as a
separate DDL role: it is then granted use of every service schema and DML on its tables, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import importlib
import os
import sys
import time
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from typing import Any

import asyncpg
from fastapi import FastAPI

from imaging_common import db, starter, web
from imaging_common.config import CommonSettings
from imaging_common.fhir import BASE as FHIR_BASE
from imaging_common.problems import preferred_language, problem
from imaging_common.runner import check_infrastructure_before_start, serve
from imaging_common.service import ServiceSpec

Scope = dict[str, Any]


def discover_services() -> list[tuple[ServiceSpec, Any]]:
    """(spec, create_app) for every installed service, in a stable order."""
    found = []
    for ep in sorted(entry_points(group="imaging.services"), key=lambda e: e.name):
        spec = ep.load()
        module = importlib.import_module(ep.module)
        found.append((spec, module.create_app))
    return found


class PlatformApp:
    """An ASGI app that routes by prefix to the service apps and runs all their lifespans."""

    HOME_PATHS = frozenset(web.ENTRY_EXACT)

    def __init__(self, apps: dict[str, FastAPI], pages: FastAPI | None = None):
        # Longest prefix first, so /api/critical-values never falls to a shorter one.
        self.routes = sorted(apps.items(), key=lambda kv: len(kv[0]), reverse=True)
        self.apps = list(dict.fromkeys(apps.values()))
        self.pages = pages  # the home page at `/` and `/ui/` (matched exactly: every path starts with "/")

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for app in self.apps:
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield

    def app_for(self, path: str) -> FastAPI | None:
        for prefix, app in self.routes:
            if path == prefix or path.startswith(prefix + "/"):
                return app
        return None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app = self.pages if self.pages is not None and scope["path"] in self.HOME_PATHS else self.app_for(scope["path"])
        if app is None:
            header = dict(scope.get("headers") or ()).get(b"accept-language", b"")
            language = preferred_language(header.decode("latin-1"))
            response = problem(404, "Not Found", "no service serves this path", language=language,
                               services=sorted({p for p, _ in self.routes if p.startswith("/api/")}))
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            async with self.lifespan():
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
                assert message["type"] == "lifespan.shutdown"
        except BaseException as exc:
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            raise
        await send({"type": "lifespan.shutdown.complete"})


def build_platform(settings_for: dict[str, CommonSettings] | None = None) -> PlatformApp:
    apps: dict[str, FastAPI] = {}
    for spec, create_app in discover_services():
        settings = (settings_for or {}).get(spec.name)
        app = create_app(settings) if settings is not None else create_app()
        apps[spec.api_prefix] = app
        apps[spec.ui_prefix] = app
        if spec.fhir is not None:
            apps.setdefault(FHIR_BASE, app)  # any FHIR service answers /metadata with every service's resources
            for resource_type in spec.fhir.resource_types:
                apps[f"{FHIR_BASE}/{resource_type}"] = app
    pages = web.platform_app()
    for prefix in web.ENTRY_PREFIXES:
        apps[prefix] = pages
    return PlatformApp(apps, pages)


async def migrate_all(settings: CommonSettings, *, app_role: str = "") -> list[str]:
    applied: list[str] = []
    specs = [spec for spec, _ in discover_services()]
    for spec in specs:
        applied += await spec.migrate(settings.database_url)
    if app_role:
        await grant_application_role(settings.database_url, app_role, [spec.schema for spec in specs])
    return applied


async def load_starter(settings: CommonSettings, *, actor: str) -> dict[str, starter.Report]:
    """Every installed service's part of the starter configuration, each in its own transaction."""
    reports: dict[str, starter.Report] = {}
    for spec, _ in discover_services():
        if spec.starter is None:
            continue
        conn = await asyncpg.connect(settings.database_url, timeout=5, server_settings={
            "search_path": f"{spec.schema},public", "application_name": spec.schema})
        try:
            reports[spec.prefix] = await starter.load(conn, spec.starter, actor=actor, service=spec.name)
        finally:
            await conn.close()
    return reports


def starter_lines(reports: dict[str, starter.Report]) -> list[str]:
    return [f"  {prefix}: " + ", ".join(f"{part} {len(t.created)} added, {len(t.kept)} kept"
                                        for part, t in report.items())
            for prefix, report in reports.items()]


def run_starter(settings: CommonSettings) -> None:
    """Migrate, then load the starter configuration, saying what was added and kept."""
    asyncio.run(migrate_all(settings))
    reports = asyncio.run(load_starter(settings, actor=f"{getpass.getuser()} (allinone starter)"))
    print(f"starter configuration ({starter.department().name}):", *starter_lines(reports), sep="\n", flush=True)


async def grant_application_role(database_url: str, role: str, schemas: list[str]) -> None:
    """What the services' role may do in a database migrated by another (DDL) role: use the schemas,
    read and write rows, use sequences and functions; no CREATE, ALTER, DROP or TRUNCATE. Default
    privileges make tables a later migration creates writable too. Re-running grants nothing new."""
    quoted = '"' + role.replace('"', '""') + '"'
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        for schema in schemas:
            db.check_identifier(schema)
            for sql in (
                f"GRANT USAGE ON SCHEMA {schema} TO {quoted}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {quoted}",
                f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}",
                f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {quoted}",
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {quoted}",
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {quoted}",
            ):
                await conn.execute(sql)
    finally:
        await conn.close()
    # The audit log is appended only through audit.append (imaging_audit_writer), granted by its owner
    # (IMAGING_AUDIT_OWNER_DATABASE_URL) when the DDL role is not an administrator.
    from imaging_common.audit.keys import AuditSettings

    conn = await asyncpg.connect(AuditSettings().audit_owner_database_url or database_url, timeout=5)
    try:
        await conn.execute(f"GRANT {db.AUDIT_WRITER_ROLE} TO {quoted}")
    finally:
        await conn.close()


async def _postgresql_problem(settings: CommonSettings) -> str | None:
    from imaging_common.preflight import HOW_TO_START, _check_pg, _where

    try:
        await asyncio.wait_for(_check_pg(settings), 4)
        return None
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        where = _where(settings.database_url)
        return f"postgresql at {where} is not reachable ({reason}); {HOW_TO_START['postgresql']}"


def wait_for_postgresql(settings: CommonSettings, seconds: float) -> None:
    """Return once PostgreSQL answers; exit 2 naming it after `seconds` (0: one attempt)."""
    deadline = time.monotonic() + seconds
    while True:
        problem = asyncio.run(_postgresql_problem(settings))
        if problem is None:
            return
        if time.monotonic() >= deadline:
            print(f"cannot migrate: {problem}", file=sys.stderr)
            raise SystemExit(2)
        print(f"waiting for the database: {problem}", file=sys.stderr, flush=True)
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))


def main(argv: list[str]) -> None:
    settings = CommonSettings()
    if argv[:1] == ["migrate"]:
        wait_for_postgresql(settings, float(os.environ.get("IMAGING_MIGRATE_WAIT_SECONDS", "0")))
        applied = asyncio.run(migrate_all(settings, app_role=os.environ.get("IMAGING_APP_DB_ROLE", "")))
        print(f"migrations applied: {len(applied)}" + "".join(f"\n  {name}" for name in applied))
        return
    if argv[:1] == ["starter"]:
        wait_for_postgresql(settings, float(os.environ.get("IMAGING_MIGRATE_WAIT_SECONDS", "0")))
        run_starter(settings)
        return
    check_infrastructure_before_start(settings)  # PostgreSQL required; RabbitMQ and Redis may come later
    if os.environ.get("IMAGING_STARTER", "").lower() in ("1", "true", "yes"):
        run_starter(settings)
    serve(build_platform(), settings)


if __name__ == "__main__":
    main(sys.argv[1:])
