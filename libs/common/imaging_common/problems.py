"""HTTP errors as RFC 9457 problem documents (application/problem+json).

Every 4xx/5xx a service returns has the same shape: type, title, status, detail, and for
validation errors the list of offending fields, so a client never parses free text.
"""

from __future__ import annotations

import logging

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imaging_common.errors import Refusal

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem(status: int, title: str, detail: str | None = None, **extra: object) -> JSONResponse:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        extra: dict[str, object] = {} if isinstance(exc.detail, str) or exc.detail is None else {"errors": exc.detail}
        response = problem(exc.status_code, _title(exc.status_code), detail, **extra)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        return problem(exc.status, exc.title, str(exc) or None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return problem(422, "Invalid request", "the request does not match the schema", errors=errors)

    @app.exception_handler(asyncpg.DataError)
    async def unstorable_value(request: Request, exc: asyncpg.DataError) -> JSONResponse:
        # SQLSTATE class 22 (and asyncpg's own argument checks): a value the request carried that
        # PostgreSQL cannot hold or compare, e.g. a NUL character in a search field, an integer
        # out of range. The caller's input, not a server fault; logged in case it is ours.
        log.warning("refused a value on %s %s: %s", request.method, request.url.path, exc)
        return problem(422, "Invalid request", "a value in the request cannot be stored or searched: "
                       f"{type(exc).__name__}")

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        if not dependency_unavailable(exc):
            raise exc  # any other OSError: the 500 below, logged with its traceback
        # The database (or another peer) is away: a retryable condition, not a bug.
        log.warning("unavailable on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        response = problem(503, "Service Unavailable", "a backing service is unreachable; retry shortly")
        response.headers["Retry-After"] = "5"
        return response

    # Registered per class (not in the catch-all below, after which Starlette re-raises for the
    # server to log a traceback): an outage is answered, and logged once as a warning.
    for kind in (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                 asyncpg.TooManyConnectionsError):
        app.add_exception_handler(kind, unavailable)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal Server Error", "an unexpected error was logged")


def dependency_unavailable(exc: BaseException) -> bool:
    """PostgreSQL refusing or dropping connections (or any peer's socket refused, reset or timed out)."""
    if isinstance(exc, (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                        asyncpg.TooManyConnectionsError, ConnectionError, TimeoutError)):
        return True
    # asyncio reports a refused connect to several addresses (localhost: ::1 and 127.0.0.1) as a plain OSError.
    return type(exc) is OSError and "Connect call failed" in str(exc)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
