"""FastAPI side of auth: `require_roles(...)` guards a route and yields the caller's Principal.

    user: Annotated[Principal, Depends(require_roles("clerk", "admin"))]

401 (with `WWW-Authenticate: Bearer`) when the token is missing, malformed, expired, revoked or
not ours; 403 when it is valid but carries none of the roles. `require_roles()` with no role
admits any authenticated staff member.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from imaging_common.auth.roles import ROLES
from imaging_common.auth.tokens import AuthError, Principal, TokenVerifier

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/registration/auth/login")


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def verifier_of(request: Request) -> TokenVerifier:
    ctx = getattr(request.app.state, "ctx", None)
    if ctx is None:
        raise HTTPException(503, "service is starting")
    verifier: TokenVerifier = ctx.verifier
    return verifier


def require_roles(*roles: str) -> Callable[..., Awaitable[Principal]]:
    unknown = set(roles) - set(ROLES)
    if unknown:  # a typo here would silently lock everyone out; fail at import instead
        raise ValueError(f"unknown role(s) {sorted(unknown)}; known: {ROLES}")
    admitted = roles or ROLES

    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        try:
            principal = await verifier_of(request).verify(credentials.credentials)
        except AuthError as exc:
            raise unauthorized(str(exc)) from None
        request.state.principal = principal
        if not principal.has_any(admitted):
            raise HTTPException(403, f"requires one of the roles: {', '.join(admitted)}")
        return principal

    return dependency
