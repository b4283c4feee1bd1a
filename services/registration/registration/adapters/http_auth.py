"""Identity endpoints under /api/registration/auth/... and the audit log for admins.

Thin: request/response models and status codes; the rules live in domain/staff.py.

Staff pages keep the rotating refresh token where no script reaches it: login and refresh set it in an
HttpOnly, SameSite=Strict cookie (Secure over https) whose path is this auth folder, so the browser sends
it to login, refresh and logout only; a page that asks for the cookie (`"refresh_in": "cookie"`) gets
no refresh token in the body, and a refresh made with the cookie answers none either. API clients keep
sending and receiving the refresh token in JSON. Logout revokes the session and clears the cookie.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from imaging_common import audit
from imaging_common.auth import Principal, RefreshRefused, SessionStore, TokenIssuer, jwks, require_roles
from imaging_common.auth.throttle import LoginThrottle
from imaging_common.problems import problem
from imaging_common.service import ServiceContext, request_context
from pydantic import BaseModel, Field

from registration.adapters import schemas
from registration.domain import staff

log = logging.getLogger(__name__)
router = APIRouter(tags=["auth"])
Admin = Annotated[Principal, Depends(require_roles("admin"))]
Staff = Annotated[Principal, Depends(require_roles())]


REFRESH_COOKIE = "imaging_refresh"
AUTH_PATH = "/api/registration/auth"  # the cookie's path: sent to login, refresh and logout only


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    totp: str = Field(min_length=1, max_length=16, description="6-digit code from the authenticator app")
    refresh_in: Literal["body", "cookie"] = Field(
        "body", description="cookie: the refresh token only in the HttpOnly cookie, not in the body (pages)")


class RefreshRequest(BaseModel):
    refresh_token: str | None = Field(None, min_length=1, max_length=512,
                                      description="omitted: the one in the HttpOnly cookie (pages)")


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str | None = Field(None, description="absent when it went into the HttpOnly cookie only")
    token_type: str = "Bearer"
    expires_in: int
    idle_timeout_seconds: int = Field(description="the session ends after this long without a request")


class UserCreate(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    roles: list[str] = Field(min_length=1)
    display_name: str = ""
    password: str | None = Field(None, description="omitted: a password is generated and returned once")


class UserUpdate(BaseModel):
    roles: list[str] | None = None
    active: bool | None = None
    display_name: str | None = None
    unlock: bool = False


def _issuer(ctx: ServiceContext) -> TokenIssuer:
    return ctx.extra("token_issuer", TokenIssuer)


def _throttle(ctx: ServiceContext) -> LoginThrottle:
    return ctx.extra("login_throttle", LoginThrottle)


def _sessions(ctx: ServiceContext) -> SessionStore:
    return ctx.extra("sessions", SessionStore)


def _secure(request: Request) -> bool:
    """Over https, here or at the gateway that terminated TLS (X-Forwarded-Proto, Forwarded: proto=https).
    Trusting the header from anyone is safe here: it can only make the cookie stricter (https only)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return (request.url.scheme == "https" or forwarded == "https"
            or "proto=https" in request.headers.get("forwarded", "").lower())


def _tokens_for(ctx: ServiceContext, request: Request, user: staff.StaffUser, sid: str, refresh: str, *,
                body_refresh: bool) -> JSONResponse:
    """The tokens, the refresh token set in the page's cookie (and in the body only for API clients)."""
    issued = _issuer(ctx).tokens(user_id=user.id, username=user.username, display_name=user.display_name,
                                 roles=user.roles, session_id=sid, refresh_token=refresh)
    body = TokenResponse(**issued.as_response(), idle_timeout_seconds=ctx.settings.session_idle_seconds)
    if not body_refresh:
        body.refresh_token = None
    response = JSONResponse(body.model_dump(exclude_none=True), headers={"Cache-Control": "no-store"})
    response.set_cookie(REFRESH_COOKIE, refresh, max_age=ctx.settings.refresh_token_ttl_seconds, path=AUTH_PATH,
                        httponly=True, samesite="strict", secure=_secure(request))
    return response


def _clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(REFRESH_COOKIE, path=AUTH_PATH, httponly=True, samesite="strict", secure=_secure(request))


@router.post("/auth/login", response_model=TokenResponse, summary="Log in with password and TOTP code",
             responses={401: {"description": "wrong credentials (the same for every reason)"},
                        429: {"description": "too many failed logins from this address (Retry-After)"}})
async def login(body: LoginRequest, request: Request) -> Any:
    ctx = request_context(request)
    ip = audit.client_ip(request)
    throttle = _throttle(ctx)
    try:
        # Throttle checks and the progressive delay come before a database connection is taken.
        await staff.admit(ctx.pool, throttle, username=body.username, source_ip=ip)
        async with ctx.pool.acquire() as conn:
            user = await staff.authenticate(conn, _sessions(ctx), ctx.settings, username=body.username,
                                            password=body.password, totp=body.totp, source_ip=ip, throttle=throttle)
    except staff.Throttled as exc:
        response = problem(429, "Too Many Requests", "too many failed logins from this address; try again later",
                           retry_after=exc.retry_after)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except staff.InvalidCredentials:
        return problem(401, "Unauthorized", "invalid username, password or TOTP code")
    session = await _sessions(ctx).create(user_id=user.id, username=user.username)
    return _tokens_for(ctx, request, user, session.session_id, session.refresh_token,
                       body_refresh=body.refresh_in == "body")


def _refused(request: Request, reason: str) -> JSONResponse:
    """401 for a refresh that cannot be honoured; the page's cookie goes with it."""
    response = problem(401, "Unauthorized", reason)
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    _clear_cookie(response, request)
    return response


@router.post("/auth/refresh", response_model=TokenResponse, summary="Exchange a refresh token (rotating)",
             responses={401: {"description": "unknown, used, expired or revoked refresh token (cookie cleared)"}})
async def refresh(request: Request, body: RefreshRequest | None = None) -> Any:
    ctx = request_context(request)
    presented = body.refresh_token if body is not None else None
    from_cookie = presented is None
    if from_cookie:
        presented = request.cookies.get(REFRESH_COOKIE)
    if not presented:
        return _refused(request, "no refresh token")
    try:
        session = await _sessions(ctx).rotate(presented)
    except RefreshRefused as exc:
        if "already used" in exc.reason:
            async with ctx.pool.acquire() as conn:
                await audit.record(conn, actor="unknown", action="refresh", entity="session",
                                   entity_id=presented.partition(".")[0], outcome="denied",
                                   source_ip=audit.client_ip(request), detail={"reason": exc.reason})
        return _refused(request, exc.reason)
    async with ctx.pool.acquire() as conn:
        user = await staff.get_user(conn, session.user_id)
    if user is None or not user.active:
        await _sessions(ctx).revoke(session.session_id)
        return _refused(request, "account no longer active")
    # Presented from the cookie: the new one goes back only there, never where a script reads it.
    return _tokens_for(ctx, request, user, session.session_id, session.refresh_token, body_refresh=not from_cookie)


@router.post("/auth/logout", status_code=204, summary="End this session (revokes its tokens everywhere)")
async def logout(user: Staff, request: Request) -> Response:
    ctx = request_context(request)
    if user.session_id:
        await _sessions(ctx).revoke(user.session_id)
    async with ctx.pool.acquire() as conn:
        await audit.record(conn, **audit.request_context(request, user), action="logout", entity="session",
                           entity_id=user.session_id)
    response = Response(status_code=204)
    _clear_cookie(response, request)
    return response


@router.get("/auth/me", response_model=schemas.Me, summary="The logged-in staff member")
async def me(user: Staff, request: Request) -> dict[str, Any]:
    body = user.public()
    async with request_context(request).pool.acquire() as conn:
        account = await staff.get_user(conn, user.user_id)
    if account is not None:
        body["account"] = account.public()
    return body


@router.get("/auth/jwks", response_model=schemas.Jwks, summary="Public keys that verify access tokens (JWKS)")
async def get_jwks(request: Request) -> JSONResponse:
    return JSONResponse(jwks(_issuer(request_context(request)).key.public), headers={"Cache-Control": "max-age=300"})


@router.get("/.well-known/jwks.json", include_in_schema=False)
async def well_known_jwks(request: Request) -> JSONResponse:
    return await get_jwks(request)


@router.post("/auth/users", status_code=201, response_model=schemas.NewStaffAccount,
             summary="Create a staff account (admin)")
async def create_user(body: UserCreate, admin: Admin, request: Request) -> dict[str, Any]:
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        try:
            new = await staff.create_user(conn, username=body.username, roles=body.roles,
                                          display_name=body.display_name, password=body.password)
        except staff.DuplicateUsername as exc:
            raise HTTPException(409, str(exc)) from None
        except staff.StaffError as exc:
            raise HTTPException(422, str(exc)) from None
        await audit.record(conn, **audit.request_context(request, admin), action="create", entity="staff_user",
                           entity_id=new.user.id, detail={"username": new.user.username, "roles": body.roles})
    result: dict[str, Any] = {"user": new.user.public(), "totp_secret": new.totp_secret, "totp_uri": new.totp_uri}
    if new.password_generated:
        result["password"] = new.password
    return result


@router.get("/auth/users", response_model=schemas.StaffAccountList, summary="List staff accounts (admin)")
async def list_users(admin: Admin, request: Request) -> dict[str, Any]:
    async with request_context(request).pool.acquire() as conn:
        users = await staff.list_users(conn)
    return {"data": [u.public() for u in users], "count": len(users)}


@router.patch("/auth/users/{user_id}", response_model=schemas.StaffAccount,
              summary="Change roles, activate/deactivate, unlock (admin)")
async def update_user(user_id: str, body: UserUpdate, admin: Admin, request: Request) -> dict[str, Any]:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn, conn.transaction():
        try:
            user = await staff.update_user(conn, user_id, roles=body.roles, active=body.active,
                                           display_name=body.display_name, unlock=body.unlock)
        except staff.StaffError as exc:
            raise HTTPException(422, str(exc)) from None
        if user is None:
            raise HTTPException(404, f"no staff account {user_id}")
        await audit.record(conn, **audit.request_context(request, admin), action="update", entity="staff_user",
                           entity_id=user.id, detail=body.model_dump(exclude_unset=True))
    if body.roles is not None or body.active is False:
        # Tokens carry roles: end the sessions so the next token has the new ones.
        await _sessions(ctx).revoke_user(user.id)
    if body.unlock:
        await _throttle(ctx).unlock(user.username)
    return user.public()


@router.post("/auth/users/{user_id}/unlock", response_model=schemas.StaffAccount,
             summary="Lift the login pauses and delay on an account (admin)")
async def unlock_user(user_id: str, admin: Admin, request: Request) -> dict[str, Any]:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn, conn.transaction():
        user = await staff.update_user(conn, user_id, unlock=True)
        if user is None:
            raise HTTPException(404, f"no staff account {user_id}")
        await _throttle(ctx).unlock(user.username)
        await audit.record(conn, **audit.request_context(request, admin), action="update", entity="staff_user",
                           entity_id=user.id, detail={"unlock": True})
    return user.public()


@router.get("/audit", response_model=schemas.AuditList, summary="Audit log, newest first (admin)")
async def audit_log(
    admin: Admin, request: Request, limit: int = Query(100, ge=1, le=1000), before_seq: int | None = None,
    actor: str | None = None, patient_id: str | None = None, action: str | None = None,
    entity: str | None = None,
) -> dict[str, Any]:
    async with request_context(request).pool.acquire() as conn:
        found = await audit.entries(conn, limit=limit, before_seq=before_seq, actor=actor, patient_id=patient_id,
                                    action=action, entity=entity)
        await audit.record_read(conn, **audit.request_context(request, admin), entity="audit_log",
                                detail={"filters": {k: v for k, v in {"actor": actor, "patient_id": patient_id,
                                        "action": action, "entity": entity}.items() if v}, "rows": len(found)})
    return {"data": [e.public() for e in found], "count": len(found)}


async def on_ready(ctx: ServiceContext) -> None:
    """Give the service its token issuer, session store and login throttle; create the first admin if none."""
    ctx.extras["token_issuer"] = TokenIssuer.from_settings(ctx.settings)
    ctx.extras["sessions"] = SessionStore(ctx.redis, ctx.settings)
    ctx.extras["login_throttle"] = LoginThrottle(ctx.redis, ctx.settings)
    async with ctx.pool.acquire() as conn:
        result = await staff.bootstrap_admin(conn, ctx.settings)  # BootstrapRefused: the service does not start
    if result is None:
        return
    if result.generated and ctx.settings.env != "production":
        # Development only: the made-up credentials are shown once on the terminal.
        print(staff.bootstrap_message(result), file=sys.stderr, flush=True)
    else:
        log.info("first administrator %s created with the credentials from the Secret", result.admin.user.username)
