"""Events between services: CloudEvents 1.0 over RabbitMQ, with a transactional outbox and inbox.

Producer, inside the transaction that makes the change:
    await publish(conn, OrderCreated(...), source="/imaging/registration", subject=accession)
Consumer, in the service's adapters/events.py, given to its ServiceSpec (`event_handlers=HANDLERS`):
    async def on_order_created(conn: asyncpg.Connection, data: OrderCreated, event: CloudEvent) -> None:
        ...
    HANDLERS = {OrderCreated: on_order_created}
Its queue is bound to the types of its HANDLERS' models. Raise to retry; after `event_max_retries`
the message goes to the service's DLQ, where
`python -m imaging_common.events.deadletters list|replay|purge --service <name>` finds it.
"""

from imaging_common.events.bus import EventBus
from imaging_common.events.envelope import (
    CloudEvent,
    EventError,
    InvalidEventData,
    MalformedEvent,
    UnknownEventType,
    parse_data,
)
from imaging_common.events.handlers import EventHandler, Handlers, WrongEventType, data_only, dispatch, parse_as
from imaging_common.events.outbox import publish

__all__ = [
    "CloudEvent",
    "EventBus",
    "EventError",
    "EventHandler",
    "Handlers",
    "InvalidEventData",
    "MalformedEvent",
    "UnknownEventType",
    "WrongEventType",
    "data_only",
    "dispatch",
    "parse_as",
    "parse_data",
    "publish",
]
