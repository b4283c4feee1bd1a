"""Resending what the platform answered 503 + Retry-After: its PostgreSQL was full, not its code wrong.

PostgreSQL here is shared with every suite running on the machine; when they hold all its
connections a request gets the platform's clean 503 (nothing done, retry later). The checks want
the answer of the code under test, so they wait and resend a few times; a 503 that persists is
reported like any other server error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
import httpx

R = TypeVar("R")
PAUSES = (0.5, 1, 2, 4, 8)


def _busy(response: Any) -> bool:
    return bool(response.status_code == 503 and response.headers.get("retry-after"))


async def send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    response = await client.request(method, url, **kwargs)
    for pause in PAUSES:
        if not _busy(response):
            break
        await asyncio.sleep(pause)
        response = await client.request(method, url, **kwargs)
    return response


def send_sync(call: Callable[[], R]) -> R:
    response = call()
    for pause in PAUSES:
        if not _busy(response):
            break
        time.sleep(pause)
        response = call()
    return response



async def connect(database_url: str) -> asyncpg.Connection:
    """A connection of the checks' own, waiting while PostgreSQL has no free connection slot."""
    for pause in (*PAUSES, 0):
        try:
            return await asyncpg.connect(database_url)
        except (asyncpg.TooManyConnectionsError, asyncpg.CannotConnectNowError):
            if not pause:
                raise
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


class Resending(httpx.AsyncBaseTransport):
    """An httpx transport that resends what was answered 503 + Retry-After (see `send`), so a check
    written with a plain client sees the code's own answer when PostgreSQL is briefly full."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        for pause in PAUSES:
            if not _busy(response):
                break
            await response.aclose()
            await asyncio.sleep(pause)
            response = await self.inner.handle_async_request(request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
