"""Staff accounts and login (smart-imaging standard 10.2.3): roles, argon2id + TOTP, lockout.

Every login attempt is audited, whatever its outcome. Five failed attempts in a row lock the
account for `login_lock_seconds`; the counter and the lock live in `staff_users`, so every
replica sees them. A TOTP code is accepted within ±1 step and only once (used steps in Redis).
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from imaging_common import audit
from imaging_common.auth import ROLES, SessionStore
from imaging_common.auth import credentials as cred
from imaging_common.config import CommonSettings

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_BOOTSTRAP_LOCK = 0x5354414646  # "STAFF": serializes the first-admin check across replicas


class StaffError(ValueError):
    """Invalid account data (a 4xx for the caller)."""


class DuplicateUsername(StaffError):
    pass


class InvalidCredentials(Exception):
    """Wrong username, password or TOTP code; deliberately does not say which."""


class AccountLocked(Exception):
    def __init__(self, until: datetime):
        super().__init__(f"account locked until {until.isoformat()}")
        self.until = until


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


async def authenticate(
    conn: asyncpg.Connection, sessions: SessionStore, settings: CommonSettings, *,
    username: str, password: str, totp: str, source_ip: str | None = None,
) -> StaffUser:
    """Check password and TOTP, apply the lockout, audit the attempt; return the user or raise."""
    username = username.strip().lower()
    now = datetime.now(UTC)
    failure: Exception | None = None
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS}, password_hash, totp_secret FROM registration.staff_users "
            "WHERE username = $1 FOR UPDATE", username)
        base: dict[str, Any] = {"actor": username or "anonymous", "action": "login", "entity": "staff_user",
                                "source_ip": source_ip}
        if row is None:
            await cred.verify_password_async(cred.DUMMY_HASH, password)  # same time as a real check
            await audit.record(conn, **base, outcome="failure", detail={"reason": "unknown user"})
            failure = InvalidCredentials()
        elif row["locked_until"] is not None and row["locked_until"] > now:
            await audit.record(conn, **base, entity_id=str(row["id"]), outcome="locked",
                               detail={"locked_until": row["locked_until"].isoformat()})
            failure = AccountLocked(row["locked_until"])
        else:
            reason = None
            if not await cred.verify_password_async(row["password_hash"], password):
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
                new_hash = (await cred.hash_password_async(password)
                            if cred.needs_rehash(row["password_hash"]) else row["password_hash"])
                row = await conn.fetchrow(
                    f"""UPDATE registration.staff_users SET failed_logins = 0, locked_until = NULL,
                           last_login_at = $2, password_hash = $3 WHERE id = $1 RETURNING {_COLUMNS}""",
                    row["id"], now, new_hash)
                await audit.record(conn, **base, entity_id=str(row["id"]), outcome="success")
            else:
                # A lock that has run out starts a fresh count.
                failures = 1 if row["locked_until"] is not None else row["failed_logins"] + 1
                locked_until = None
                if failures >= settings.login_max_failures:
                    locked_until = now + timedelta(seconds=settings.login_lock_seconds)
                await conn.execute(
                    "UPDATE registration.staff_users SET failed_logins = $2, locked_until = $3 WHERE id = $1",
                    row["id"], 0 if locked_until else failures, locked_until)
                detail: dict[str, Any] = {"reason": reason, "failures": failures}
                if locked_until:
                    detail["locked_until"] = locked_until.isoformat()
                await audit.record(conn, **base, entity_id=str(row["id"]),
                                   outcome="locked" if locked_until else "failure", detail=detail)
                failure = AccountLocked(locked_until) if locked_until else InvalidCredentials()
    if failure is not None:
        raise failure
    assert row is not None
    return StaffUser.from_row(row)


@dataclass(frozen=True)
class BootstrapResult:
    admin: NewUser
    generated: bool  # True when the credentials were made up here (print them once)


async def bootstrap_admin(conn: asyncpg.Connection, settings: CommonSettings) -> BootstrapResult | None:
    """Create the first admin on an empty staff table; None when staff already exist.

    Safe when replicas start together: the check and insert run under one advisory lock.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _BOOTSTRAP_LOCK)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM registration.staff_users)"):
            return None
        generated = not (settings.admin_user and settings.admin_password and settings.admin_totp_secret)
        admin = await create_user(
            conn, username=settings.admin_user or "admin", roles=["admin"], display_name="Administrator",
            password=settings.admin_password, totp_secret=settings.admin_totp_secret,
        )
        await audit.record(conn, actor="bootstrap", action="create", entity="staff_user", entity_id=admin.user.id,
                           detail={"username": admin.user.username, "roles": ["admin"],
                                   "credentials": "generated" if generated else "from environment"})
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
