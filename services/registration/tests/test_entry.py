"""Registration run on its own carries the staff's entry (ServiceSpec.entry): the sign-in and home page at
`/` and `/ui/`, the administration page, the shared assets at `/ui/common/` and the icon, which the chart's
gateway routes to it on Kubernetes. Another service run on its own does not answer them."""

from __future__ import annotations

from imaging_testing import asgi_client
from worklist.app import create_app as create_worklist
from worklist.settings import Settings as WorklistSettings


async def test_registration_serves_the_staff_entry(client) -> None:  # type: ignore[no-untyped-def]
    for path in ("/", "/ui/", "/ui/admin/"):
        r = await client.get(path)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"], path
        assert "script-src 'self'" in r.headers["content-security-policy"]  # as every staff page
    assert "/ui/common/shell.js" in (await client.get("/")).text
    for path, target in (("/ui", "/"), ("/ui/admin", "/ui/admin/")):
        r = await client.get(path, follow_redirects=False)
        assert r.status_code == 308 and r.headers["location"] == target
    assert (await client.get("/favicon.ico")).headers["content-type"] == "image/x-icon"
    shell = await client.get("/ui/common/shell.js")
    assert shell.status_code == 200 and "Bearer" in shell.text


async def test_another_service_alone_does_not(settings_for) -> None:  # type: ignore[no-untyped-def]
    async with asgi_client(create_worklist(settings_for(WorklistSettings))) as worklist:
        for path in ("/", "/ui/admin/", "/favicon.ico"):
            assert (await worklist.get(path)).status_code == 404, path
