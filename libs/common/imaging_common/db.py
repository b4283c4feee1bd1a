"""PostgreSQL access: one asyncpg pool per service, and versioned SQL migrations.

Each service owns one schema. Its pool sets `search_path` to that schema, so service SQL names
its tables unqualified. Migrations are plain `NNNN_name.sql` files applied in order, in one
transaction each, under a PostgreSQL advisory lock so two replicas starting together take turns.
Three components are migrated:
  - "platform": tables every service schema has (outbox, inbox), from imaging_common;
  - "audit": the shared, append-only audit schema, from imaging_common;
  - "service": the service's own migrations/ folder.
A database whose applied versions are newer than the code knows is refused, so an old replica
never runs against a schema it does not understand.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger(__name__)

PLATFORM_MIGRATIONS = Path(__file__).parent / "migrations" / "platform"
AUDIT_MIGRATIONS = Path(__file__).parent / "migrations" / "audit"
AUDIT_SCHEMA = "audit"

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


class MigrationError(RuntimeError):
    """The database cannot be brought to the version this code expects."""


class DatabaseNewerThanCode(MigrationError):
    """The database has migrations this code does not know: refuse to run on it."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(folder: Path) -> list[Migration]:
    """Read `NNNN_name.sql` files from a folder, sorted, refusing gaps and duplicates."""
    found = []
    for path in sorted(folder.glob("*.sql")):
        m = _MIGRATION_NAME.match(path.name)
        if not m:
            raise MigrationError(f"migration file name not NNNN_name.sql: {path}")
        found.append(Migration(int(m.group(1)), path.name, path.read_text(encoding="utf-8")))
    for expected, mig in enumerate(found, start=1):
        if mig.version != expected:
            raise MigrationError(f"{folder}: expected version {expected:04d}, found {mig.name}")
    return found


def check_identifier(name: str) -> str:
    """Schema names are interpolated into SQL, so only plain identifiers are allowed."""
    if not _IDENT.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


async def ensure_database(database_url: str) -> None:
    """Create the target database if it does not exist (developer machines, CI, first install)."""
    parts = urlsplit(database_url)
    dbname = parts.path.lstrip("/") or "postgres"
    try:
        conn = await asyncpg.connect(database_url, timeout=5)
        await conn.close()
        return
    except asyncpg.InvalidCatalogNameError:
        pass
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{check_identifier(dbname)}"')
    except asyncpg.DuplicateDatabaseError:
        pass  # another replica created it first
    finally:
        await conn.close()


async def create_pool(database_url: str, schema: str, *, max_size: int = 5) -> asyncpg.Pool:
    """A pool whose connections resolve unqualified names in the service's schema first."""
    check_identifier(schema)
    pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        timeout=5,
        server_settings={"search_path": f"{schema},public", "application_name": schema},
    )
    assert pool is not None
    return pool


def _lock_key(schema: str) -> int:
    # A stable signed 64-bit key per schema for pg_advisory_lock.
    return int.from_bytes(hashlib.sha256(f"migrate:{schema}".encode()).digest()[:8], "big", signed=True)


async def migrate_component(
    conn: asyncpg.Connection, schema: str, component: str, migrations: list[Migration]
) -> list[str]:
    """Apply the component's pending migrations to `schema`; return the names applied."""
    check_identifier(schema)
    applied_names: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(schema))
    try:
        # Only when missing: IF NOT EXISTS still needs CREATE privilege, which the services' role lacks
        # when a separate DDL role runs the migrations (the chart's hook); up to date, it only reads.
        if await conn.fetchval("SELECT to_regnamespace($1)", schema) is None:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.schema_migrations") is None:
            await conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                        component text NOT NULL,
                        version integer NOT NULL,
                        name text NOT NULL,
                        checksum text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now(),
                        PRIMARY KEY (component, version))"""
            )
        rows = await conn.fetch(
            f"SELECT version, name, checksum FROM {schema}.schema_migrations WHERE component = $1",
            component,
        )
        applied = {r["version"]: r for r in rows}
        known = {m.version for m in migrations}
        newer = sorted(v for v in applied if v not in known)
        if newer:
            raise DatabaseNewerThanCode(
                f"schema {schema!r} ({component}) has migration(s) {newer} that this code does not "
                f"know (code knows up to {max(known, default=0)}); upgrade the code, not the database"
            )
        for mig in migrations:
            if mig.version in applied:
                if applied[mig.version]["checksum"] != mig.checksum:
                    log.warning("migration %s/%s changed after it was applied", schema, mig.name)
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {schema}, public")
                await conn.execute(mig.sql)
                await conn.execute(
                    f"INSERT INTO {schema}.schema_migrations (component, version, name, checksum) "
                    "VALUES ($1, $2, $3, $4)",
                    component, mig.version, mig.name, mig.checksum,
                )
            applied_names.append(f"{schema}/{component}/{mig.name}")
            log.info("applied migration %s/%s/%s", schema, component, mig.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(schema))
    return applied_names


AUDIT_OWNER_ROLE = "imaging_audit_owner"
AUDIT_WRITER_ROLE = "imaging_audit_writer"


async def migrate_audit(conn: asyncpg.Connection) -> list[str]:
    """Bring the shared audit schema up to date, as its owner, and let this connection's role write to it.

    The audit schema belongs to imaging_audit_owner; the application's role only holds
    imaging_audit_writer (SELECT, and EXECUTE on audit.append). So when migrations are pending they run
    on IMAGING_AUDIT_OWNER_DATABASE_URL when set (production: an administrator able to create roles and
    own the schema), else on `conn` (development: the superuser of DATABASE_URL). Already up to date, the
    application's role needs nothing but to read audit.schema_migrations. In production the HMAC key
    must be configured (IMAGING_AUDIT_HMAC_KEY[_FILE]): refused here, at start, rather than at the first
    audited action.
    """
    from imaging_common.audit.keys import AuditSettings, load_key

    settings = AuditSettings()
    if settings.env == "production":
        load_key(settings)  # raises AuditKeyError naming the variables
    migrations = load_migrations(AUDIT_MIGRATIONS)
    applied: set[int] = set()
    if await conn.fetchval("SELECT to_regclass('audit.schema_migrations')") is not None:
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            applied = {r["version"] for r in await conn.fetch(
                "SELECT version FROM audit.schema_migrations WHERE component = 'audit'")}
    if applied.issuperset(m.version for m in migrations) and not applied - {m.version for m in migrations}:
        done: list[str] = []
        owner: asyncpg.Connection | None = None
    else:
        owner = (await asyncpg.connect(settings.audit_owner_database_url, timeout=5)
                 if settings.audit_owner_database_url else None)
        try:
            done = await migrate_component(owner or conn, AUDIT_SCHEMA, "audit", migrations)
        except asyncpg.InsufficientPrivilegeError as exc:
            if owner is not None:
                await owner.close()
            raise MigrationError(
                f"the audit migrations need a role that can create roles and own the audit schema ({exc}); "
                "set IMAGING_AUDIT_OWNER_DATABASE_URL to such an administrator, or run "
                "`python -m imaging_common.allinone migrate` once as one (see the README, Audit)"
            ) from None
    try:
        app = await conn.fetchrow(
            "SELECT session_user AS name, (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) AS super, "
            "pg_has_role(session_user, $1, 'MEMBER') AS writer, pg_has_role(session_user, $2, 'MEMBER') AS owner",
            AUDIT_WRITER_ROLE, AUDIT_OWNER_ROLE)
        if app["super"] or app["owner"]:
            if settings.env == "production":
                log.error("DATABASE_URL logs in as %s, which %s: the application could rewrite the audit trail; "
                          "give the services a role that only holds %s", app["name"],
                          "is a superuser" if app["super"] else f"is a member of {AUDIT_OWNER_ROLE}",
                          AUDIT_WRITER_ROLE)
        elif not app["writer"]:
            granter = owner or conn
            try:
                await granter.execute(f'GRANT {AUDIT_WRITER_ROLE} TO "{app["name"].replace(chr(34), chr(34) * 2)}"')
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{app['name']} cannot write the audit log: `GRANT {AUDIT_WRITER_ROLE} TO "
                                     f"{app['name']}` as the audit owner or an administrator ({exc})") from None
    finally:
        if owner is not None:
            await owner.close()
    return done


async def migrate_service(
    database_url: str, schema: str, service_migrations: Path, library_migrations: Mapping[str, Path] | None = None
) -> list[str]:
    """Bring the shared audit schema and the service's schema up to date.

    `library_migrations` are tables a library owns but a service holds (the EMPI's), applied in the
    service's schema as their own components, before the service's migrations that may use them.
    """
    await ensure_database(database_url)
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        done = await migrate_audit(conn)
        done += await migrate_component(conn, schema, "platform", load_migrations(PLATFORM_MIGRATIONS))
        for component, folder in (library_migrations or {}).items():
            done += await migrate_component(conn, schema, component, load_migrations(folder))
        done += await migrate_component(conn, schema, "service", load_migrations(service_migrations))
        return done
    finally:
        await conn.close()
