"""What every staff page shares: one stylesheet, one shell script (navigation bar, sign-in, token renewal,
idle timeout, logout), the icon, and the home page at `/`.

- `assets_router`: `/common/{name}` under a service's UI prefix. Each service's `adapters/ui.py` includes
  it, so a page finds `/ui/<prefix>/common/app.css` wherever the service runs: alone, in the all-in-one
  process or behind the Kubernetes gateway (which routes only `/api/<prefix>` and `/ui/<prefix>` to a
  service). One file, one router; every service serves the same bytes.
- `platform_router()` / `platform_app()`: the platform's own pages (served by the all-in-one process, and on
  Kubernetes by the service whose spec has `entry=True`): `/` and `/ui/` (sign-in and the home page with
  each role's tasks), the administration page `/ui/admin/`, `/favicon.ico` and `/ui/common/...`. The
  administration page spans every service (users in registration, rooms and the catalogue in scheduling,
  queues, templates, the critical-value dictionary, each service's starter part), so it belongs to none of
  them: like the home page it is the platform's, and calls each service's admin API, which checks the
  admin role and audits the change.
- `page(path)`: a page's HTML answered with the headers every staff page carries, among them a
  Content-Security-Policy admitting scripts of this origin only (a page's script is a file beside it, never
  inline): the access token a tab keeps is out of reach of injected script. `staff_page(path, prefix)`: a
  service's page, its file holding only what is its own, the shared head put in front. `pages_router(prefix, path)`
  is a service's UI router serving that page at `/ui/<prefix>/`, the page's own scripts under `static/`
  and the shared assets under `common/`; `add_static(router, folder)` the same `static/` for other routers.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

STATIC = Path(__file__).resolve().parent / "static"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".ico": "image/x-icon"}
# Scripts only from this origin's files, no inline script, nothing from elsewhere; a page's own layout may
# sit in a <style> element; film images are shown from blob: URLs.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
# Pages hold no patient data themselves (it comes through the guarded API), but must never be framed.
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Content-Security-Policy": PAGE_POLICY}
ASSET_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def asset(name: str, folder: Path = STATIC) -> FileResponse:
    """A script, stylesheet or icon of `folder` (never a page, never outside it)."""
    path = (folder / name).resolve()
    if path.parent != folder.resolve() or not path.is_file() or path.suffix not in TYPES or path.suffix == ".html":
        raise HTTPException(404, f"no asset {name}")
    return FileResponse(path, media_type=TYPES[path.suffix], headers=ASSET_HEADERS)


def page(path: Path, headers: dict[str, str] | None = None) -> FileResponse:
    return FileResponse(path, media_type=TYPES[".html"], headers={**PAGE_HEADERS, **(headers or {})})


def staff_head(prefix: str) -> str:
    """What opens the <head> of every staff page of the service at `/ui/<prefix>/`: the character set and
    viewport, then the shared icon, stylesheet and shell script (before the page's own, which build on them)."""
    common = f"/ui/{prefix}/common"
    return "".join((
        '<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f'<link rel="icon" href="{common}/favicon.svg" type="image/svg+xml">\n',
        f'<link rel="stylesheet" href="{common}/app.css">\n',
        f'<script src="{common}/shell.js"></script>\n',
    ))


def staff_page(path: Path, prefix: str) -> HTMLResponse:
    """A service's staff page: its file holds only what is its own (title, stylesheets, layout, body); the
    shared head (`staff_head`) is put first in its <head>, so one place says what every staff page loads."""
    html = path.read_text(encoding="utf-8")
    if "<head>\n" not in html:
        raise RuntimeError(f"{path.name}: a staff page opens its <head> on a line of its own")
    return HTMLResponse(html.replace("<head>\n", "<head>\n" + staff_head(prefix), 1), headers=PAGE_HEADERS)


assets_router = APIRouter(include_in_schema=False)


@assets_router.get("/common/{name}")
async def shared_asset(name: str) -> FileResponse:
    """The shared stylesheet, shell script and icon (GET /ui/<prefix>/common/app.css, shell.js, favicon.svg)."""
    return asset(name)


def add_static(router: APIRouter, folder: Path) -> None:
    """`static/{name}` on a service's UI router: its pages' own scripts and stylesheets from `folder`."""

    @router.get("/static/{name}", include_in_schema=False)
    async def page_asset(name: str) -> FileResponse:
        return asset(name, folder)


def pages_router(prefix: str, index: Path) -> APIRouter:
    """A service's UI router: its page at `/ui/<prefix>/` (`/ui/<prefix>` redirects there), the page's own
    scripts beside it under `static/` and the shared assets under `common/`; a service adds its other pages."""
    router = APIRouter(tags=["pages"], include_in_schema=False)
    router.include_router(assets_router)
    add_static(router, index.parent)

    @router.get("")
    async def page_redirect() -> RedirectResponse:
        return RedirectResponse(f"/ui/{prefix}/")

    @router.get("/")
    async def index_page() -> HTMLResponse:
        return staff_page(index, prefix)

    return router


def platform_router() -> APIRouter:
    """The pages that belong to no one service: `/`, `/ui/`, the administration page, the icon and the shared
    assets at `/ui/common/`. The all-in-one process serves them itself (`platform_app`); on Kubernetes the
    service whose spec says `entry=True` (registration, the staff's identity) carries them and the chart's
    gateway routes these paths to it."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def home() -> FileResponse:
        return page(STATIC / "home.html")

    @router.get("/ui")
    async def ui() -> RedirectResponse:
        return RedirectResponse("/", status_code=308)

    @router.get("/ui/")
    async def ui_home() -> FileResponse:
        return await home()

    @router.get("/favicon.ico")
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.ico", media_type=TYPES[".ico"],
                            headers={"Cache-Control": "max-age=86400"})

    @router.get("/ui/admin")
    async def admin_redirect() -> RedirectResponse:
        return RedirectResponse("/ui/admin/", status_code=308)

    @router.get("/ui/admin/")
    async def admin() -> FileResponse:
        return page(STATIC / "admin.html")

    router.include_router(assets_router, prefix="/ui")
    return router


# The paths `platform_router` answers, for the chart's gateway and the all-in-one dispatcher: exact paths,
# and prefixes (each with what follows a slash).
ENTRY_EXACT = ("/", "/ui", "/ui/", "/favicon.ico")
ENTRY_PREFIXES = ("/ui/admin", "/ui/common")


def platform_app() -> FastAPI:
    """The all-in-one process's pages that belong to no one service (`platform_router`)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(platform_router())
    return app
