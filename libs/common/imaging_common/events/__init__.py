"""Events between services: CloudEvents 1.0 over RabbitMQ, with a transactional outbox and inbox.

Producer, inside the transaction that makes the change:
    await publish(conn, OrderCreated(...), source="/imaging/registration", subject=accession)
Consumer, declared on the ServiceSpec (`event_handlers={"order.created": on_order_created}`):
    async def on_order_created(conn: asyncpg.Connection, event: CloudEvent) -> None:
        order = parse_data(event)  # OrderCreated
Raise to retry; after `event_max_retries` the message goes to the service's DLQ, where
`python -m imaging_common.events.deadletters list|replay|purge --service <name>` finds it.
"""

from imaging_common.events.bus import EventBus
from imaging_common.events.consumer import EventHandler
from imaging_common.events.envelope import (
    CloudEvent,
    EventError,
    InvalidEventData,
    MalformedEvent,
    UnknownEventType,
    parse_data,
)
from imaging_common.events.outbox import publish

__all__ = [
    "CloudEvent",
    "EventBus",
    "EventError",
    "EventHandler",
    "InvalidEventData",
    "MalformedEvent",
    "UnknownEventType",
    "parse_data",
    "publish",
]
