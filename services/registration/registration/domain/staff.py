"""Staff accounts and login (smart-imaging standard 10.2.3): roles, argon2id + TOTP, throttling.

Every login attempt is audited, whatever its outcome. Unknown account, wrong password or code and
a disabled account get one and the same answer. Failed logins are throttled in Redis
(imaging_common.auth.throttle) per client address and per (name, address), with a progressive
delay per name: nobody can keep a named account locked, and an admin lifts it at once
(`unlock`). A TOTP code is accepted within ±1 step and only once (used steps in Redis).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from imaging_common import audit
from imaging_common.auth import ROLES, SessionStore
from imaging_common.auth import credentials as cred
from imaging_common.auth.throttle import LoginThrottle
from imaging_common.config import CommonSettings

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_BOOTSTRAP_LOCK = 0x5354414646  # "STAFF": serializes the first-admin check across replicas


class StaffError(ValueError):
    """Invalid account data (a 4xx for the caller)."""


class DuplicateUsername(StaffError):
    pass


class InvalidCredentials(Exception):
    """Wrong username, password or TOTP code; deliberately does not say which."""


class Throttled(Exception):
    """Too many failed logins from this address, or for this name from this address (HTTP 429)."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed logins; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class StaffUser:
    id: str
    username: str
    display_name: str
    roles: tuple[str, ...]
    active: bool
    failed_logins: int
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StaffUser:
        return cls(str(row["id"]), row["username"], row["display_name"], tuple(row["roles"]), row["active"],
                   row["failed_logins"], row["locked_until"], row["last_login_at"], row["created_at"])

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id, "username": self.username, "display_name": self.display_name, "roles": list(self.roles),
            "active": self.active, "failed_logins": self.failed_logins,
            "locked_until": self.locked_until.isoformat() if self.locked_until else None,
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class NewUser:
    """A created account and the secrets to hand its owner once (never stored in clear)."""

    user: StaffUser
    password: str
    password_generated: bool
    totp_secret: str

    @property
    def totp_uri(self) -> str:
        return cred.totp_uri(self.totp_secret, self.user.username)


_COLUMNS = "id, username, display_name, roles, active, failed_logins, locked_until, last_login_at, created_at"


def check_roles(roles: list[str] | tuple[str, ...]) -> list[str]:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise StaffError(f"unknown role(s) {unknown}; known: {', '.join(ROLES)}")
    if not roles:
        raise StaffError("a staff account needs at least one role")
    return list(dict.fromkeys(roles))


def generate_password() -> str:
    return secrets.token_urlsafe(15)


async def create_user(
    conn: asyncpg.Connection, *, username: str, roles: list[str], display_name: str = "",
    password: str | None = None, totp_secret: str | None = None,
) -> NewUser:
    """Create an account; a missing password or TOTP secret is generated."""
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise StaffError("username: 2-64 of a-z 0-9 . _ -, starting with a letter or digit")
    roles = check_roles(roles)
    generated = password is None
    password = password if password is not None else generate_password()
    try:
        cred.check_password_policy(password)
    except cred.WeakPassword as exc:
        raise StaffError(str(exc)) from None
    totp_secret = (totp_secret or cred.new_totp_secret()).strip().upper()
    if not cred.valid_totp_secret(totp_secret):
        raise StaffError("TOTP secret must be base32 of at least 16 characters (80 bits)")
    password_hash = await cred.hash_password_async(password)
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO registration.staff_users (id, username, display_name, roles, password_hash, totp_secret)
                VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}""",
            uuid.uuid4(), username, display_name.strip() or username, roles, password_hash, totp_secret,
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateUsername(f"username {username!r} is taken") from None
    return NewUser(StaffUser.from_row(row), password, generated, totp_secret)


async def list_users(conn: asyncpg.Connection) -> list[StaffUser]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM registration.staff_users ORDER BY username")
    return [StaffUser.from_row(r) for r in rows]


async def get_user(conn: asyncpg.Connection, user_id: str) -> StaffUser | None:
    try:
        uid = uuid.UUID(user_id)
    except ValueError:
        return None
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM registration.staff_users WHERE id = $1", uid)
    return StaffUser.from_row(row) if row else None


async def update_user(
    conn: asyncpg.Connection, user_id: str, *, roles: list[str] | None = None, active: bool | None = None,
    display_name: str | None = None, unlock: bool = False,
) -> StaffUser | None:
    """Change roles/active/display name, or lift a lockout; None when there is no such user."""
    if roles is not None:
        roles = check_roles(roles)
    try:
        uid = uuid.UUID(user_id)
    except ValueError:
        return None
    row = await conn.fetchrow(
        f"""UPDATE registration.staff_users SET
                roles = coalesce($2, roles), active = coalesce($3, active),
                display_name = coalesce($4, display_name),
                failed_logins = CASE WHEN $5 THEN 0 ELSE failed_logins END,
                locked_until = CASE WHEN $5 THEN NULL ELSE locked_until END,
                updated_at = now()
            WHERE id = $1 RETURNING {_COLUMNS}""",
        uid, roles, active, display_name, unlock,
    )
    return StaffUser.from_row(row) if row else None


async def admit(pool: Any, throttle: LoginThrottle, *, username: str,
                source_ip: str | None) -> None:
    """Before any check, and before holding a database connection: refuse a throttled attempt
    (`Throttled`, audited) or hold it back by the name's progressive delay (see auth.throttle)."""
    username = username.strip().lower()
    refused = await throttle.refusal(username, source_ip)
    if refused is not None:
        async with pool.acquire() as conn:
            await audit.record(conn, actor=username or "anonymous", action="login", entity="staff_user",
                               source_ip=source_ip, outcome="denied",
                               detail={"reason": "throttled", "scope": refused.scope,
                                       "retry_after": refused.retry_after})
        raise Throttled(refused.retry_after)
    delay = await throttle.delay(username)
    if delay > 0:
        await asyncio.sleep(delay)


async def authenticate(
    conn: asyncpg.Connection, sessions: SessionStore, settings: CommonSettings, *,
    username: str, password: str, totp: str, source_ip: str | None = None, throttle: LoginThrottle | None = None,
) -> StaffUser:
    """Check password and TOTP, count the failure (throttle), audit the attempt; return the user or raise.

    Unknown account, wrong password, wrong or replayed code, disabled account: one and the same
    `InvalidCredentials` (the audit row says which). There is no account lock to answer differently:
    throttling (`admit`, `auth.throttle`) is per address and per (name, address), the same for
    names that exist and names that do not."""
    username = username.strip().lower()
    now = datetime.now(UTC)
    failure: Exception | None = None
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS}, password_hash, totp_secret FROM registration.staff_users "
            "WHERE username = $1 FOR UPDATE", username)
        base: dict[str, Any] = {"actor": username or "anonymous", "action": "login", "entity": "staff_user",
                                "source_ip": source_ip}
        reason = None
        if row is None:
            await cred.verify_password_async(cred.DUMMY_HASH, password)  # same time as a real check
            reason = "unknown user"
        elif not await cred.verify_password_async(row["password_hash"], password):
            reason = "wrong password"
        else:
            step = cred.totp_matching_step(row["totp_secret"], totp)
            if step is None:
                reason = "wrong TOTP code"
            elif not await sessions.claim_totp_step(str(row["id"]), step):
                reason = "TOTP code already used"
            elif not row["active"]:
                reason = "account disabled"
        if reason is None:
            assert row is not None
            new_hash = (await cred.hash_password_async(password)
                        if cred.needs_rehash(row["password_hash"]) else row["password_hash"])
            row = await conn.fetchrow(
                f"""UPDATE registration.staff_users SET failed_logins = 0, locked_until = NULL,
                       last_login_at = $2, password_hash = $3 WHERE id = $1 RETURNING {_COLUMNS}""",
                row["id"], now, new_hash)
            await audit.record(conn, **base, entity_id=str(row["id"]), outcome="success")
            if throttle is not None:
                await throttle.succeeded(username, source_ip)
        else:
            detail: dict[str, Any] = {"reason": reason}
            if throttle is not None:
                counted = await throttle.failed(username, source_ip)
                detail["failures"] = counted.account_failures
                if counted.paused_for:
                    detail["paused_for"] = counted.paused_for  # this address, this name: 429 meanwhile
            if row is not None:
                await conn.execute("UPDATE registration.staff_users SET failed_logins = failed_logins + 1 "
                                   "WHERE id = $1", row["id"])
            await audit.record(conn, **base, entity_id=str(row["id"]) if row is not None else None,
                               outcome="failure", detail=detail)
            failure = InvalidCredentials()
    if failure is not None:
        raise failure
    assert row is not None
    return StaffUser.from_row(row)


@dataclass(frozen=True)
class BootstrapResult:
    admin: NewUser
    generated: bool  # True when the credentials were made up here (print them once)


class BootstrapRefused(RuntimeError):
    """Production with no staff yet and no first-admin credentials from a Secret: refuse to start."""


def _from_secret(value: str | None, path: Path | None, variable: str) -> str | None:
    """A credential given directly (environment, e.g. from a Kubernetes Secret) or in a mounted file."""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BootstrapRefused(f"{variable}_FILE={path} cannot be read: {exc.strerror}") from None
        if not text:
            raise BootstrapRefused(f"{variable}_FILE={path} is empty")
        return text
    return value or None


def first_admin_credentials(settings: CommonSettings) -> tuple[str | None, str | None]:
    """(password, TOTP secret) of the first admin from the Secret, each None when not configured."""
    return (_from_secret(settings.admin_password, settings.admin_password_file, "IMAGING_ADMIN_PASSWORD"),
            _from_secret(settings.admin_totp_secret, settings.admin_totp_secret_file, "IMAGING_ADMIN_TOTP_SECRET"))


async def bootstrap_admin(conn: asyncpg.Connection, settings: CommonSettings) -> BootstrapResult | None:
    """Create the first admin on an empty staff table; None when staff already exist.

    Development makes up what is not configured (and the caller prints it once). Production takes
    the password and TOTP secret only from the Secret (IMAGING_ADMIN_PASSWORD[_FILE],
    IMAGING_ADMIN_TOTP_SECRET[_FILE]) and refuses (`BootstrapRefused`) without them.
    Safe when replicas start together: the check and insert run under one advisory lock.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _BOOTSTRAP_LOCK)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM registration.staff_users)"):
            return None
        password, totp_secret = first_admin_credentials(settings)
        generated = password is None or totp_secret is None
        if generated and settings.env == "production":
            raise BootstrapRefused(
                "no staff account exists and the first admin's credentials are not configured: in production "
                "set IMAGING_ADMIN_PASSWORD_FILE and IMAGING_ADMIN_TOTP_SECRET_FILE (a mounted Secret) or "
                "IMAGING_ADMIN_PASSWORD and IMAGING_ADMIN_TOTP_SECRET; nothing is generated or printed")
        try:
            admin = await create_user(
                conn, username=settings.admin_user or "admin", roles=["admin"], display_name="Administrator",
                password=password, totp_secret=totp_secret,
            )
        except StaffError as exc:
            raise BootstrapRefused(f"the first admin's credentials are refused: {exc}") from None
        await audit.record(conn, actor="bootstrap", action="create", entity="staff_user", entity_id=admin.user.id,
                           detail={"username": admin.user.username, "roles": ["admin"],
                                   "credentials": "generated" if generated else "from secret"})
    return BootstrapResult(admin, generated)


def bootstrap_message(result: BootstrapResult) -> str:
    """What is printed once to stderr when the first admin's credentials were generated."""
    admin = result.admin
    lines = [
        "=" * 72,
        "First administrator created (shown ONCE; store it in a password manager now):",
        f"  username:     {admin.user.username}",
    ]
    if admin.password_generated:
        lines.append(f"  password:     {admin.password}")
    lines += [
        f"  TOTP secret:  {admin.totp_secret}",
        f"  TOTP URI:     {admin.totp_uri}",
        "Add the TOTP secret to an authenticator app (or scan the URI as a QR code), then",
        "POST /api/registration/auth/login with username, password and the 6-digit code.",
        "=" * 72,
    ]
    return "\n".join(lines)
