"""/api/<prefix>/docs and /redoc work in a hospital network that reaches no CDN (issue 22, 4).

Every service's pages name no external URL, and each script, style sheet and icon they name is served
by the service itself (from the fastapi-offline package, locked with hashes). Then Chromium, with every
request that leaves 127.0.0.1 refused, renders Swagger UI's operations and ReDoc's from one service.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest
from imaging_common.allinone import discover_services
from imaging_testing import http_server
from playwright.async_api import async_playwright
from worklist.app import create_app as create_worklist

CHROMIUM = "/usr/bin/chromium"
SERVICES = discover_services()
ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [value for name, value in attrs if name in ("src", "href") and value]


def _refs(html: str) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    return parser.refs


@pytest.mark.parametrize("page", ["docs", "redoc"])
@pytest.mark.parametrize(("spec", "create_app"), SERVICES, ids=[spec.name for spec, _ in SERVICES])
async def test_docs_name_no_external_url_and_their_assets_load(spec, create_app, page: str, test_env) -> None:
    app = create_app()  # no lifespan: the pages need no database
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        r = await client.get(f"{spec.api_prefix}/{page}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text[:300]
        assert not re.findall(r"(?:https?:)?//[\w.-]+", r.text.replace("http://svc", "")), r.text
        # and what the bundled scripts would fetch on their own (ReDoc's vendor logo) the page forbids
        assert "default-src 'self'" in r.headers["content-security-policy"]
        refs = _refs(r.text)
        assert len(refs) >= 2, refs  # a script and an icon at least
        for ref in refs:
            assert ref.startswith(f"{spec.api_prefix}/docs/assets/"), ref
            asset = await client.get(ref)
            kind = ASSET_TYPES[ref[ref.rindex("."):]]
            assert asset.status_code == 200 and kind in asset.headers["content-type"], (ref, asset.status_code)
            assert len(asset.content) > 1000, ref
        assert f"'{spec.api_prefix}/openapi.json'" in r.text or f'"{spec.api_prefix}/openapi.json"' in r.text


async def test_swagger_ui_and_redoc_render_with_no_network_beyond_the_service(test_env) -> None:
    outside: list[str] = []
    async with http_server(create_worklist()) as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, timeout=60_000,
                                           args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = await browser.new_page()

            async def only_the_service(route) -> None:  # noqa: ANN001 (playwright's Route)
                if route.request.url.startswith(url):
                    await route.continue_()
                else:
                    outside.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_the_service)
            await page.goto(f"{url}/api/worklist/docs")
            await page.locator(".opblock").first.wait_for(timeout=30_000)  # an operation, from openapi.json
            assert await page.locator(".opblock").count() > 5
            await page.goto(f"{url}/api/worklist/redoc")
            await page.locator("[data-section-id]").first.wait_for(timeout=30_000)
        finally:
            await browser.close()
    assert outside == [], outside
