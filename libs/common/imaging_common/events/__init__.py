"""Events between services: CloudEvents 1.0 over RabbitMQ, with a transactional outbox and inbox.

STUB: interface only; the outbox relay, inbox and dead-letter handling are being written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import asyncpg

EventHandler = Callable[[asyncpg.Connection, Any], Awaitable[None]]


class EventBus:
    def __init__(self, *, settings: Any, service: str, pool: asyncpg.Pool, handlers: dict[str, EventHandler]):
        self.settings = settings
        self.service = service
        self.pool = pool
        self.handlers = handlers
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.settings.amqp_url, timeout=5)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()
