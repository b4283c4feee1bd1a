"""HTTP errors as RFC 9457 problem documents (application/problem+json).

Every 4xx/5xx a service returns has the same shape: type, title, status, detail, a stable `code`
(what a client branches on; never the wording), and for validation errors the list of offending
fields, so a client never parses free text.

Staff pages speak Chinese: `title` and `detail` are Chinese unless the client's Accept-Language
prefers English (API clients, logs and tests that send `Accept-Language: en`). Services keep raising
their messages in English; each service's texts (ServiceSpec.problem_texts, installed here with its
handlers) hold the Chinese of its own refusals, `imaging_common.problem_texts` those of the library
(auth, validation, outages), each with its code. A message not listed keeps its English wording (its
code still comes from the status), so nothing is lost.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imaging_common.errors import Refusal
from imaging_common.problem_texts import NO_TEXTS, Texts, localize

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# The language of the request being answered ("zh" or "en"), set by ProblemLanguage for every request
# so a service's own exception handler calling problem() answers in it too.
_language: contextvars.ContextVar[str] = contextvars.ContextVar("problem_language", default="zh")
# The texts of the service answering (all services share one process in the all-in-one platform).
_texts: contextvars.ContextVar[Texts] = contextvars.ContextVar("problem_texts", default=NO_TEXTS)


def preferred_language(accept_language: str) -> str:
    """"en" when the client prefers English over Chinese (RFC 9110 quality values), else "zh"."""
    best, best_q = "zh", -1.0
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.split("-")[0]
        if primary in ("zh", "en") and q > 0 and q - position * 1e-6 > best_q:
            best, best_q = primary, q - position * 1e-6
    return best


class ProblemLanguage:
    """Plain ASGI middleware: remembers the request's preferred language, and the texts of the service
    answering it, for its problem documents."""

    def __init__(self, app: Any, texts: Texts = NO_TEXTS) -> None:
        self.app, self.texts = app, texts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or ()).get(b"accept-language", b"").decode("latin-1")
        token = _language.set(preferred_language(header))
        texts = _texts.set(self.texts)
        try:
            await self.app(scope, receive, send)
        finally:
            _texts.reset(texts)
            _language.reset(token)


def problem(status: int, title: str, detail: str | None = None, *, code: str | None = None,
            language: str | None = None, **extra: object) -> JSONResponse:
    """A problem document in the request's language (or `language`), with a stable `code`."""
    text = localize(status, title, detail, language or _language.get(), _texts.get())
    body: dict[str, object] = {"type": "about:blank", "title": text.title, "status": status,
                               "code": code or text.code}
    if text.detail:
        body["detail"] = text.detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON,
                        headers={"Content-Language": text.language, "Vary": "Accept-Language"})


def install_problem_handlers(app: FastAPI, texts: Texts = NO_TEXTS) -> None:
    """Problem documents for every error of `app`, worded with `texts` (the service's) and the library's."""
    app.add_middleware(ProblemLanguage, texts=texts)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if isinstance(exc.detail, str) or exc.detail is None:
            response = problem(exc.status_code, http_title(exc.status_code), detail)
        else:
            response = problem(exc.status_code, http_title(exc.status_code), detail, errors=exc.detail)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        return problem(exc.status, exc.title, str(exc) or None, code=exc.code)

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


def http_title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
