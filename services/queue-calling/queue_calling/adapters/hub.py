"""Live screens: WebSocket clients of this replica, kept in step through Redis pub/sub.

After a change commits, the replica that made it publishes the new room views (with full names,
on the internal channel) and its announcements. Every replica, itself included, receives them and
forwards to its screens what each may show: only the screen's rooms, names masked by the screen's
rule. A room view carries its version (`seq`); screens keep the newest, so a late or duplicated
message never rolls a screen back. A screen that connects (or reconnects) first joins the fan-out,
then gets a full snapshot, so no update falls between the two.

Each socket has a bounded send buffer drained by its own task: a slow screen is dropped (it
reconnects and re-syncs) rather than delaying the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import redis.asyncio as aioredis
from starlette.websockets import WebSocket, WebSocketState

from queue_calling.adapters.events import ROOMS_CHANGED
from queue_calling.domain import configuration, masking, views
from queue_calling.domain.scope import Change

log = logging.getLogger(__name__)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def mask_view(view: dict[str, Any], rule: dict[str, Any]) -> dict[str, Any]:
    def person(p: dict[str, Any]) -> dict[str, Any]:
        return {"ticket": p["ticket"], "name": masking.mask_name(p["name"], rule), "state": p["state"],
                "flags": p["flags"]}

    return {**{k: view[k] for k in ("room_id", "room_name", "seq", "paused", "waiting")},
            "queues": [{"name": q["name"], "paused": q["paused"]} for q in view["queues"]],
            "current": [person(p) for p in view["current"]], "next": [person(p) for p in view["next"]]}


class ScreenClient:
    def __init__(self, ws: WebSocket, screen_id: str, buffer: int) -> None:
        self.ws = ws
        self.screen_id = screen_id
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=buffer)
        self.closed = asyncio.Event()
        self.writer = asyncio.create_task(self._write())

    def offer(self, text: str) -> None:
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("screen %s too slow; dropping its socket so it re-syncs", self.screen_id)
            self.close()

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait(None)

    async def _write(self) -> None:
        try:
            while (text := await self.outbox.get()) is not None:
                # When this socket fell behind (a burst of calls, a busy CPU), what piled up goes as
                # one batch: fewer frames exactly when the server has least time for them.
                backlog = [text]
                while not self.outbox.empty() and len(backlog) < 32:
                    more = self.outbox.get_nowait()
                    if more is None:
                        self.outbox.put_nowait(None)
                        break
                    backlog.append(more)
                if len(backlog) > 1:
                    text = '{"type":"batch","messages":[' + ",".join(backlog) + "]}"
                await self.ws.send_text(text)
        except Exception:  # the peer went away mid-send; the reader notices too
            pass
        finally:
            self.closed.set()
            if self.ws.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await self.ws.close(code=1011)


class ScreenHub:
    def __init__(self, *, pool: asyncpg.Pool, redis: aioredis.Redis, namespace: str, timezone: str,
                 announcement: str, ping_seconds: float, buffer: int, database_url: str) -> None:
        self.pool = pool
        self.database_url = database_url
        self._pg: asyncpg.Connection | None = None
        self.redis = redis
        self.channel = f"{namespace}:queue_calling:screens"
        # Which screens are connected, per replica (expires if the replica dies): central management
        # sees every display's state (smart-imaging standard 6.2.2 (7)).
        self.online_prefix = f"{namespace}:queue_calling:online:"
        self.online_key = self.online_prefix + uuid.uuid4().hex[:12]
        self.tz = ZoneInfo(timezone)
        self.announcement = announcement
        self.ping_seconds = ping_seconds
        self.buffer = buffer
        self.clients: dict[str, set[ScreenClient]] = {}
        self.screens: dict[str, dict[str, Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._ping())]
        await asyncio.wait_for(self._subscribed.wait(), 10)
        # Changes made by event handlers arrive as PostgreSQL notifications (see adapters/events.py).
        await self._listen_pg()

    async def _listen_pg(self) -> None:
        self._pg = await asyncpg.connect(self.database_url, server_settings={"application_name": "queue_calling-hub"})
        await self._pg.add_listener(ROOMS_CHANGED, self._on_rooms_changed)

    def _on_rooms_changed(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        task = asyncio.create_task(self._deliver_rooms(json.loads(payload)))
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _deliver_rooms(self, room_ids: list[str]) -> None:
        async with self.pool.acquire() as conn:
            room_views = await views.room_views(conn, room_ids)
        self.deliver({"type": "update", "views": room_views, "announcements": [], "t": time.time()})

    async def stop(self) -> None:
        if self._pg is not None:
            with contextlib.suppress(Exception):
                await self._pg.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for group in self.clients.values():
            for client in group:
                client.close()

    # ---- publishing (any replica) -------------------------------------------------------
    async def publish(self, change: Change) -> None:
        if not change.views and not change.announcements:
            return
        await self.redis.publish(self.channel, _dumps(
            {"type": "update", "views": change.views, "announcements": change.announcements, "t": time.time()}))

    async def publish_screen_config(self, screen_id: str) -> None:
        await self.redis.publish(self.channel, _dumps({"type": "config", "screen_id": screen_id}))

    # ---- clients ------------------------------------------------------------------------
    async def attach(self, ws: WebSocket, screen: dict[str, Any]) -> ScreenClient:
        client = ScreenClient(ws, screen["screen_id"], self.buffer)
        self.screens[screen["screen_id"]] = screen
        self.clients.setdefault(screen["screen_id"], set()).add(client)
        client.offer(await self.snapshot(screen))
        with contextlib.suppress(Exception):  # the count is informative; the screen works without it
            await self._report_online()
        return client

    async def detach(self, client: ScreenClient) -> None:
        client.close()
        group = self.clients.get(client.screen_id)
        if group is not None:
            group.discard(client)
            if not group:
                self.clients.pop(client.screen_id, None)
        with contextlib.suppress(Exception):
            await self._report_online()

    async def _report_online(self) -> None:
        counts: dict[Any, Any] = {sid: len(group) for sid, group in self.clients.items() if group}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.online_key)
            if counts:
                pipe.hset(self.online_key, mapping=counts)
                pipe.expire(self.online_key, max(5, int(self.ping_seconds * 3)))
            await pipe.execute()

    async def online(self) -> dict[str, int]:
        """Connected sockets per screen, summed over every live replica."""
        total: dict[str, int] = {}
        async for key in self.redis.scan_iter(match=self.online_prefix + "*"):
            for sid, n in (await self.redis.hgetall(key)).items():
                name = sid.decode() if isinstance(sid, bytes) else str(sid)
                total[name] = total.get(name, 0) + int(n)
        return total

    def screen_public(self, screen: dict[str, Any]) -> dict[str, Any]:
        offset = datetime.now(self.tz).utcoffset()
        return {"screen_id": screen["screen_id"], "kind": screen["kind"], "title": screen["title"],
                "room_ids": screen["room_ids"], "layout": screen["layout"], "speech": screen["speech"],
                "on_time": screen["on_time"].strftime("%H:%M") if screen["on_time"] else None,
                "off_time": screen["off_time"].strftime("%H:%M") if screen["off_time"] else None,
                "utc_offset_minutes": int(offset.total_seconds() // 60) if offset else 0}

    async def snapshot(self, screen: dict[str, Any]) -> str:
        async with self.pool.acquire() as conn:
            room_views = await views.room_views(conn, screen["room_ids"])
        order = {rid: i for i, rid in enumerate(screen["room_ids"])}
        room_views.sort(key=lambda v: order.get(v["room_id"], 0))
        return _dumps({"type": "snapshot", "screen": self.screen_public(screen), "server_time": time.time(),
                       "rooms": [mask_view(v, screen["mask_rule"]) for v in room_views]})

    # ---- fan-out (every replica) ---------------------------------------------------------
    def _announcement(self, a: dict[str, Any], rule: dict[str, Any]) -> dict[str, Any]:
        name = masking.mask_name(a["name"], rule)
        return {"ticket": a["ticket"], "name": name, "room_id": a["room_id"], "room_name": a["room_name"],
                "recall": a["recall"],
                "text": self.announcement.format(ticket=a["ticket"], name=name, room=a["room_name"])}

    def deliver(self, message: dict[str, Any]) -> None:
        room_views = {v["room_id"]: v for v in message.get("views", ())}
        announcements: list[dict[str, Any]] = message.get("announcements", [])
        touched = set(room_views) | {a["room_id"] for a in announcements}
        fragments: dict[str, dict[str, str]] = {}  # mask rule -> room -> masked view JSON
        for screen_id, group in list(self.clients.items()):
            screen = self.screens[screen_id]
            rooms = [r for r in screen["room_ids"] if r in touched]
            if not rooms:
                continue
            rule = screen["mask_rule"]
            key = _dumps(rule)
            frag = fragments.setdefault(key, {})
            parts = []
            for rid in rooms:
                if rid in room_views:
                    if rid not in frag:
                        frag[rid] = _dumps(mask_view(room_views[rid], rule))
                    parts.append(frag[rid])
            # Sent even to screens with speech off: they show the call, only silently.
            said = [self._announcement(a, rule) for a in announcements if a["room_id"] in rooms]
            text = ('{"type":"update","t":' + _dumps(message.get("t")) + ',"rooms":[' + ",".join(parts) +
                    '],"announcements":' + _dumps(said) + "}")
            for client in list(group):
                client.offer(text)

    async def _refresh_screen(self, screen_id: str) -> None:
        async with self.pool.acquire() as conn:
            try:
                screen = await configuration.get_screen(conn, screen_id)
            except Exception:
                screen = None
        for client in list(self.clients.get(screen_id, ())):
            if screen is None:
                client.close()
            else:
                client.offer(await self.snapshot(screen))
        if screen is not None and screen_id in self.clients:
            self.screens[screen_id] = screen

    async def resync_all(self) -> None:
        for screen_id in list(self.clients):
            await self._refresh_screen(screen_id)

    async def _listen(self) -> None:
        first = True
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                if not first:  # we may have missed updates while Redis was away
                    await self.resync_all()
                first = False
                async for raw in pubsub.listen():
                    if raw.get("type") != "message":
                        continue
                    message = json.loads(raw["data"])
                    if message.get("type") == "update":
                        self.deliver(message)
                    elif message.get("type") == "config":
                        await self._refresh_screen(message["screen_id"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("screen fan-out lost Redis; resubscribing")
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.ping_seconds)
            if self._pg is not None and self._pg.is_closed():
                # PostgreSQL went away: listen again, and re-sync screens (notifications were lost).
                try:
                    await self._listen_pg()
                    await self.resync_all()
                except Exception:
                    log.warning("screen hub cannot reach PostgreSQL yet; retrying")
            with contextlib.suppress(Exception):
                await self._report_online()  # also refreshes the expiry
            text = _dumps({"type": "ping", "server_time": time.time()})
            for group in list(self.clients.values()):
                for client in list(group):
                    client.offer(text)

    def connected(self) -> Iterable[ScreenClient]:
        for group in self.clients.values():
            yield from group
