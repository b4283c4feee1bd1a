"""The shape every service shares: a `ServiceSpec` describing it and an app factory.

A service's `app.py` declares one `SERVICE = ServiceSpec(...)` and `create_app = app_factory(SERVICE)`,
which returns `create_service_app(SERVICE, settings)`. The factory gives every service the same life:
connect to PostgreSQL (migrating its schema), Redis and RabbitMQ; start the event bus (outbox
relay + consumer), the token verifier and the service's own listeners (DICOM, MLLP); serve
`/api/<prefix>/healthz`, `/readyz` and `/metrics`; stop everything in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import importlib.util
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Generic, Protocol, TypeVar, cast

import asyncpg
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from imaging_common import db, web
from imaging_common.auth import Principal, TokenVerifier, require_roles
from imaging_common.config import CommonSettings
from imaging_common.events import EventBus, Handlers
from imaging_common.events.deadletters import dead_letters_router
from imaging_common.observability import accepted_correlation_id, configure_logging, correlation_scope, registered
from imaging_common.problem_texts import NO_TEXTS, Texts
from imaging_common.problems import install_problem_handlers, problem

if TYPE_CHECKING:
    from imaging_common.fhir import FhirFace
    from imaging_common.starter import Loader as StarterLoader

log = logging.getLogger(__name__)

# The settings class of one service (its settings.py), so `ctx.settings.<field>` is typed.
S = TypeVar("S", bound=CommonSettings)
S_contra = TypeVar("S_contra", bound=CommonSettings, contravariant=True)
E = TypeVar("E")

# A listener is started after the service is connected and stopped before it disconnects:
# `async with listener(ctx): ...` (a DICOM SCP, an MLLP server, a background scheduler).
Listener = Callable[["ServiceContext[S]"], contextlib.AbstractAsyncContextManager[Any]]


@dataclass(frozen=True)
class ServiceSpec(Generic[S]):
    """What makes one service itself; everything else comes from the factory."""

    name: str  # "worklist"; also the PostgreSQL schema and the event source
    # URL prefix after /api/ and /ui/; by default the name with hyphens ("critical_values" -> "critical-values").
    prefix: str = ""
    # The service's migrations/ folder; by default the one beside its settings.py (the template's place).
    migrations: Path | None = None
    # Its Settings class: the app is created with an instance of it, listeners and routes read it typed.
    settings: type[S] = CommonSettings  # type: ignore[assignment]  # a spec without settings of its own
    # Tables a library owns but this service holds, e.g. {"empi": imaging_common.empi.MIGRATIONS}.
    library_migrations: Mapping[str, Path] = field(default_factory=dict)
    # It keeps the known-peers registry (imaging_common.peers): the peers tables, /admin/peers and the
    # registry listener, started before the service's own listeners (which check callers against it).
    peers: bool = False
    # Domain exceptions answered by the app, e.g. {InvalidTransition: conflict} (FastAPI exception handlers).
    exception_handlers: Mapping[type[Exception], Callable[[Request, Any], Awaitable[Response]]] = field(
        default_factory=dict)
    routers: Sequence[APIRouter] = ()  # routers with paths relative to /api/<prefix>
    ui_routers: Sequence[APIRouter] = ()  # pages, relative to /ui/<prefix>
    # Event model -> handler: the service's adapters/events.py HANDLERS (imaging_common.events.handlers).
    event_handlers: Handlers = field(default_factory=dict)
    listeners: Sequence[Listener[S]] = ()
    title: str = ""
    # Called once after migration with the context, e.g. to bootstrap the first admin.
    on_ready: Sequence[Callable[[ServiceContext[S]], Awaitable[None]]] = ()
    # Its FHIR resources, served under the platform's one base /fhir/R4 (imaging_common.fhir).
    fhir: FhirFace | None = None
    # It also serves the staff's entry (web.platform_router: /, /ui/, /ui/admin/, /ui/common/, the icon) when
    # run on its own, as on Kubernetes, where the chart routes those paths to it. One service does.
    entry: bool = False
    # Its part of the starter configuration (imaging_common.starter): `load(conn, department)`, served as
    # GET/POST /admin/starter (admin) and loaded by `python -m imaging_common.allinone starter`.
    starter: StarterLoader | None = None
    # The Chinese and codes of its own refusals (imaging_common.problem_texts); by default the catalogue
    # adapters/problem_texts.toml beside its settings.py, if it has one.
    problem_texts: Texts | None = None

    def __post_init__(self) -> None:
        # Frozen: the defaults are filled in once, here, so every reader sees the complete spec.
        if not self.prefix:
            object.__setattr__(self, "prefix", self.name.replace("_", "-"))
        if self.migrations is None:
            if self.settings is CommonSettings:
                raise TypeError(f"service {self.name}: give its migrations folder or its own Settings class")
            object.__setattr__(self, "migrations", Path(inspect.getfile(self.settings)).parent / "migrations")
        if self.problem_texts is None:
            catalogue = (Path(inspect.getfile(self.settings)).parent / "adapters" / "problem_texts.toml"
                         if self.settings is not CommonSettings else None)
            texts = Texts.from_toml(catalogue) if catalogue and catalogue.is_file() else NO_TEXTS
            object.__setattr__(self, "problem_texts", texts)
        if self.peers:
            from imaging_common import peers
            from imaging_common.peers.api import peers_router

            object.__setattr__(self, "library_migrations", {**self.library_migrations, "peers": peers.MIGRATIONS})
            object.__setattr__(self, "routers", (*self.routers, peers_router()))
            object.__setattr__(self, "listeners", (peers.registry_listener, *self.listeners))
        if self.starter is not None:
            from imaging_common.starter.api import starter_router

            object.__setattr__(self, "routers", (*self.routers, starter_router(self.name, self.starter)))

    @property
    def schema(self) -> str:
        return self.name

    async def migrate(self, database_url: str) -> list[str]:
        """Apply this service's migrations (and the library tables it holds); names of those applied."""
        if self.migrations is None:  # filled in by __post_init__: never None here, but typed so
            raise TypeError(f"service {self.name} has no migrations folder")
        return await db.migrate_service(database_url, self.schema, self.migrations, self.library_migrations)

    @property
    def api_prefix(self) -> str:
        return f"/api/{self.prefix}"

    @property
    def ui_prefix(self) -> str:
        return f"/ui/{self.prefix}"


@dataclass
class ServiceContext(Generic[S]):
    """The connections a running service holds; found in routes as `request.app.state.ctx`.

    Generic in the service's settings: a service names it `ServiceContext[Settings]` (or `Ctx[Settings]`
    in a route), so its own settings are read as typed attributes, never through getattr with a default.
    """

    spec: ServiceSpec[S]
    settings: S
    pool: asyncpg.Pool
    redis: aioredis.Redis
    bus: EventBus
    verifier: TokenVerifier
    registry: CollectorRegistry
    extras: dict[str, Any] = field(default_factory=dict)  # what listeners share with routes

    def extra(self, name: str, kind: type[E]) -> E:
        """`extras[name]` as the `kind` its listener put there (typed for the caller; not checked at run time)."""
        return cast(E, self.extras[name])

    async def readiness(self) -> dict[str, str]:
        """Check each dependency at once: "ok" or "unreachable" (the reason is logged, never answered).

        Each result also sets `dependency_up{service, dependency}` (1/0) on the service's /metrics.
        """
        timeout = self.settings.readiness_timeout

        async def pg() -> None:
            async with self.pool.acquire(timeout=timeout) as conn:
                await conn.fetchval("SELECT 1")

        async def rds() -> None:
            await self.redis.ping()

        async def mq() -> None:
            if not self.bus.is_connected:
                raise ConnectionError("not connected")

        async def one(name: str, check: Callable[[], Awaitable[None]]) -> str:
            try:
                await asyncio.wait_for(check(), timeout)
                return "ok"
            except Exception as exc:  # any failure means down: name which; why goes to the log only
                # Exception text names internal hosts, ports and users: never in the answer (issue 18, 8).
                log.warning("readiness: %s unreachable: %s: %s", name, type(exc).__name__, exc)
                return "unreachable"

        checks = {"postgresql": pg, "rabbitmq": mq, "redis": rds}
        states = await asyncio.gather(*(one(name, check) for name, check in checks.items()))
        results = dict(zip(checks, states, strict=True))
        gauge = registered(Gauge, "dependency_up", "1 when the dependency answered the last readiness check, else 0",
                           ["service", "dependency"], self.registry)
        for name, state in results.items():
            gauge.labels(self.spec.name, name).set(1 if state == "ok" else 0)
        return results


class Worker(Protocol):
    """A background loop a listener runs for the app's life (a delivery worker, the screens' hub)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


W = TypeVar("W", bound=Worker)


@contextlib.asynccontextmanager
async def running(ctx: ServiceContext[Any], key: str, worker: W) -> AsyncIterator[W]:
    """The body of a listener: start the worker, share it with routes as `ctx.extras[key]`, stop it last."""
    await worker.start()
    ctx.extras[key] = worker
    try:
        yield worker
    finally:
        await worker.stop()


def request_context(request: Request) -> ServiceContext[Any]:
    """The route dependency every service uses for its context (503 until the service has started)."""
    ctx: ServiceContext[Any] | None = getattr(request.app.state, "ctx", None)
    if ctx is None:
        raise HTTPException(503, "service is starting")
    return ctx


# `ctx: Ctx[Settings]` in a route: the context, its settings typed as the service's own.
Ctx = Annotated[ServiceContext[S], Depends(request_context)]

# The settings of the service whose event handler is running. A handler gets (conn, event data) only;
# one that needs its service's settings reads `handler_settings(Settings)`: those given to create_app,
# never a Settings() of its own (in the all-in-one process, or a test's app, they differ).
_handler_settings: contextvars.ContextVar[CommonSettings] = contextvars.ContextVar("handler_settings")


def handler_settings(cls: type[S]) -> S:
    """The running event handler's service settings, as that service's own class."""
    settings = _handler_settings.get(None)
    if not isinstance(settings, cls):
        raise RuntimeError(f"{cls.__module__}.{cls.__qualname__} asked for outside an event handler of its service")
    return settings


def _with_settings(handler: Callable[..., Awaitable[None]], settings: CommonSettings) -> Callable[..., Awaitable[None]]:
    @functools.wraps(handler)
    async def run(*args: Any, **kwargs: Any) -> None:
        token = _handler_settings.set(settings)
        try:
            await handler(*args, **kwargs)
        finally:
            _handler_settings.reset(token)

    return run


# Without PostgreSQL a pod cannot accept work, so it leaves its Service. Without RabbitMQ it still
# can (events wait in the outbox and are relayed when the broker is back), and without Redis the
# listeners still can (MLLP, DICOM need no Redis; HTTP logins and sessions suffer on every pod alike):
# taking every pod out of its Service for those would turn a broker blip into an outage of the HIS
# feed and the modalities. They make the pod "degraded": still ready, reported, alerted on.
REQUIRED_FOR_WORK = frozenset({"postgresql"})


class Readiness(BaseModel):
    """GET /readyz (200 ready or degraded, 503 not ready or starting); failing/degraded only when some are."""

    status: str
    service: str
    checks: dict[str, str] = {}
    failing: list[str] = []
    degraded: list[str] = []


class SessionOut(BaseModel):
    """GET /session: the caller as the token says."""

    user_id: str
    username: str
    display_name: str
    roles: list[str]
    session_id: str | None
    issuer: str


def _health_router(spec: ServiceSpec) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": spec.name}

    # The JSONResponse is sent as built; the model only documents it.
    @router.get("/readyz", summary="Readiness: PostgreSQL reachable; RabbitMQ or Redis down only degrades",
                response_model=Readiness)
    async def readyz(request: Request) -> JSONResponse:
        ctx: ServiceContext | None = getattr(request.app.state, "ctx", None)
        if ctx is None:
            return JSONResponse({"status": "starting", "service": spec.name}, status_code=503)
        checks = await ctx.readiness()
        down = [name for name, state in checks.items() if state != "ok"]
        failing = [name for name in down if name in REQUIRED_FOR_WORK]
        degraded = [name for name in down if name not in REQUIRED_FOR_WORK]
        status = "not ready" if failing else "degraded" if degraded else "ready"
        body: dict[str, object] = {"status": status, "service": spec.name, "checks": checks}
        if failing:
            body["failing"] = failing
        if degraded:
            body["degraded"] = degraded
        return JSONResponse(body, status_code=503 if failing else 200)

    @router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> PlainTextResponse:
        registry: CollectorRegistry = request.app.state.registry
        ctx: ServiceContext | None = getattr(request.app.state, "ctx", None)
        if ctx is not None:  # queue depth and dependency_up are read now (bounded; never fail the scrape)
            await ctx.bus.refresh_queue_depth()
            await ctx.readiness()
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def _session_router() -> APIRouter:
    """A protected route every service has: who the token says the caller is (any staff role)."""
    router = APIRouter(tags=["auth"])

    @router.get("/session", summary="The authenticated caller (any staff role)")
    async def session(user: Principal = Depends(require_roles())) -> SessionOut:  # noqa: B008
        return SessionOut(**user.public())

    return router


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413 problem+json: at once when Content-Length
    announces it, or as soon as a streamed body passes it (raised inside the app, so the problem
    handlers answer) - never reading more than the limit."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced = dict(scope["headers"]).get(b"content-length", b"")
        if announced.isdigit() and int(announced) > self.limit:
            await problem(413, "Content Too Large", f"request body over {self.limit} bytes")(scope, receive, send)
            return
        received = 0

        async def limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise StarletteHTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


class RequestMetrics:
    """Plain ASGI middleware: a correlation id per request, and request counts and latencies.

    Not `@app.middleware("http")`: Starlette's BaseHTTPMiddleware wraps every response in a
    stream of its own, a measurable cost on every request of a busy terminal or screen.
    """

    def __init__(self, app: Any, *, service: str, registry: CollectorRegistry) -> None:
        self.app = app
        self.service = service
        self.requests = Counter(
            "http_requests_total", "HTTP requests", ["service", "method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        cid = accepted_correlation_id(headers.get(b"x-correlation-id", b"").decode("latin-1"))
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-correlation-id", cid.encode("latin-1"))]
            await send(message)

        try:
            # Scoped, not just bound: an in-process client (tests) runs the app in its own task.
            with correlation_scope(cid):
                await self.app(scope, receive, send_with_id)
        finally:
            # The route template (set in scope by the router) keeps label cardinality low.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(self.service, scope["method"], route, str(status)).inc()
            self.latency.labels(self.service, scope["method"], route).observe(time.perf_counter() - started)


@contextlib.asynccontextmanager
async def service_context(
    spec: ServiceSpec[S], settings: S, registry: CollectorRegistry | None = None
) -> AsyncIterator[ServiceContext[S]]:
    """Connect, migrate and start a service's machinery; undo it all on exit."""
    _check_settings(spec, settings)
    await spec.migrate(settings.database_url)
    pool = await db.create_pool(settings.database_url, spec.schema, max_size=settings.db_pool_max)
    redis_client = aioredis.from_url(settings.redis_url, decode_responses=True)
    registry = registry or CollectorRegistry()
    handlers = {key: _with_settings(handler, settings) for key, handler in spec.event_handlers.items()}
    bus = EventBus(settings=settings, service=spec.name, pool=pool, handlers=handlers, registry=registry)
    try:
        verifier = await TokenVerifier.from_settings(settings, redis_client)
        await bus.start()
        ctx = ServiceContext(spec, settings, pool, redis_client, bus, verifier, registry)
        for hook in spec.on_ready:
            await hook(ctx)
        async with contextlib.AsyncExitStack() as stack:
            for listener in spec.listeners:
                await stack.enter_async_context(listener(ctx))
            yield ctx
    finally:
        await bus.stop()
        await redis_client.aclose()
        await pool.close()


# Swagger UI and ReDoc as the fastapi-offline package ships them (a locked, hashed dependency): a hospital
# network reaches no CDN, and FastAPI's defaults load both (and Google fonts) from one, leaving /docs blank.
DOCS_ASSETS = Path(str(importlib.util.find_spec("fastapi_offline").origin)).parent / "static"  # type: ignore[union-attr]


def _offline_docs(app: FastAPI, spec: ServiceSpec) -> None:
    """/api/<prefix>/docs (Swagger UI) and /redoc, their scripts, styles and icon from docs/assets.

    Plain Starlette routes, as FastAPI's own docs routes are: no API operation, no token (the page is
    a shell; the OpenAPI document and every call it makes go through the API's own guards)."""
    assets = f"{spec.api_prefix}/docs/assets"
    # The pages themselves reach nothing else either: ReDoc's bundle shows a vendor logo from its CDN.
    policy = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
              "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'")
    app.mount(assets, StaticFiles(directory=DOCS_ASSETS), name=f"{spec.name}-docs-assets")
    title = spec.title or spec.name

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js", swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets}/favicon.png",
            # Swagger UI would send the document to validator.swagger.io for its badge.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["content-security-policy"] = policy
        return page

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{assets}/redoc.standalone.js", redoc_favicon_url=f"{root}{assets}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["content-security-policy"] = policy
        return page

    app.add_route(f"{spec.api_prefix}/docs", swagger_ui, include_in_schema=False)
    app.add_route(f"{spec.api_prefix}/redoc", redoc, include_in_schema=False)


def _check_settings(spec: ServiceSpec[S], settings: S) -> None:
    # The settings given are the ones every part of the service reads: never a CommonSettings where the
    # service's own are expected (its fields would be missing), never a Settings() made on the side.
    if not isinstance(settings, spec.settings):
        raise TypeError(f"service {spec.name} runs with {spec.settings.__qualname__}, "
                        f"not {type(settings).__qualname__}")


def create_service_app(spec: ServiceSpec[S], settings: S) -> FastAPI:
    """The FastAPI app of one service, serving /api/<prefix>/... and /ui/<prefix>/..."""
    _check_settings(spec, settings)
    configure_logging(settings)
    registry = CollectorRegistry()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_context(spec, settings, registry) as ctx:
            app.state.ctx = ctx
            log.info("service %s ready", spec.name)
            yield
            app.state.ctx = None

    app = FastAPI(
        title=spec.title or spec.name,
        lifespan=lifespan,
        openapi_url=f"{spec.api_prefix}/openapi.json",
        docs_url=None,  # served by _offline_docs from the image's own files, not a CDN
        redoc_url=None,
    )
    app.state.registry = registry
    app.state.spec = spec
    app.state.settings = settings
    install_problem_handlers(app, spec.problem_texts or NO_TEXTS)
    for exc_class, handler in spec.exception_handlers.items():
        app.add_exception_handler(exc_class, handler)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, service=spec.name, registry=registry)
    app.include_router(_health_router(spec), prefix=spec.api_prefix)
    app.include_router(_session_router(), prefix=spec.api_prefix)
    app.include_router(dead_letters_router(), prefix=spec.api_prefix)
    for router in spec.routers:
        app.include_router(router, prefix=spec.api_prefix)
    for router in spec.ui_routers:
        app.include_router(router, prefix=spec.ui_prefix)
    if spec.entry:
        app.include_router(web.platform_router())
    _offline_docs(app, spec)
    if spec.fhir is not None:
        from imaging_common.fhir.face import mount  # fhir.resources loads only in services that serve FHIR

        mount(app, spec)
    return app


class AppFactory(Protocol[S_contra]):
    """A service's `create_app`: `create_app()` reads its Settings() from the environment."""

    def __call__(self, settings: S_contra | None = None, /) -> FastAPI: ...


def app_factory(spec: ServiceSpec[S]) -> AppFactory[S]:
    """A service's `create_app = app_factory(SERVICE)`: its app with the settings given, or with its
    Settings() read from the environment when none are."""

    def create_app(settings: S | None = None, /) -> FastAPI:
        return create_service_app(spec, settings if settings is not None else spec.settings())

    create_app.__doc__ = f"The {spec.title or spec.name} app (imaging_common.service.app_factory)."
    return create_app
