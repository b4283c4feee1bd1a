"""Live updates for the worklist page: PostgreSQL's NOTIFY (a trigger on the scheduled steps) reaches every
replica, and each replica tells its open pages to reload, over a text/event-stream.

One LISTEN connection a replica, opened with the service and again on the next subscriber if PostgreSQL
dropped it; a page's stream ends after IMAGING_WORKLIST_STREAM_SECONDS and the page opens another through the
shell, so a revoked or expired session stops being told anything within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
from imaging_common.service import ServiceContext
from imaging_common.waiting import woken

from worklist.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "worklist_changed"
HEARTBEAT_SECONDS = 15.0  # a comment line, so proxies keep the connection and the page sees it alive


class ChangeFeed:
    """Fans a replica's worklist notices out to its open streams (each an Event set on every change)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conn: asyncpg.Connection | None = None
        self._subscribers: set[asyncio.Event] = set()
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            conn = await asyncpg.connect(self.database_url, timeout=5)
            await conn.add_listener(CHANNEL, self._notified)
            self._conn = conn

    def _notified(self, *_: Any) -> None:
        for event in self._subscribers:
            event.set()

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._subscribers.add(event)
        try:
            yield event
        finally:
            self._subscribers.discard(event)

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 5)
            self._conn = None


async def stream(feed: ChangeFeed, *, seconds: float, heartbeat: float = HEARTBEAT_SECONDS) -> AsyncIterator[str]:
    """Server-sent events: `ready` at once, `changed` after each change (changes close together make one)."""
    await feed.connect()
    loop = asyncio.get_running_loop()
    ends = loop.time() + seconds
    with feed.subscribe() as changed:
        yield "event: ready\ndata: {}\n\n"
        while (left := ends - loop.time()) > 0:
            if not await woken(changed, min(heartbeat, left)):
                yield ": alive\n\n"
                continue
            await asyncio.sleep(0.2)  # one reload for a burst (an import, a merge touching many steps)
            changed.clear()
            yield "event: changed\ndata: {}\n\n"


@contextlib.asynccontextmanager
async def change_feed(ctx: ServiceContext[Settings]) -> AsyncIterator[ChangeFeed]:
    """ServiceSpec listener: the replica's feed (`ctx.extras["change_feed"]`)."""
    feed = ChangeFeed(ctx.settings.database_url)
    try:
        await feed.connect()
    except Exception as exc:  # the first page to follow connects it again
        log.warning("worklist change feed not listening yet: %s: %s", type(exc).__name__, exc)
    ctx.extras["change_feed"] = feed
    try:
        yield feed
    finally:
        ctx.extras.pop("change_feed", None)
        await feed.close()
