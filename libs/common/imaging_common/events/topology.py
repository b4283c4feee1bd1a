"""RabbitMQ topology: one topic exchange, and per consuming service a queue, a retry queue and a DLQ.

Names are prefixed with the namespace (IMAGING_NAMESPACE, "imaging" by default):
  <ns>.events                    topic exchange; routing key = event type
  <ns>.<service>.quorum          the service's queue, bound to the types its HANDLERS take (subscriptions())
  <ns>.<service>.quorum.retry    holds a failed message for a delay, then dead-letters it back to the queue
  <ns>.<service>.quorum.dlq      messages that failed every retry, kept until replayed or purged
Those are quorum queues (replicated, IMAGING_EVENT_QUEUE_TYPE=quorum, the default). With
IMAGING_EVENT_QUEUE_TYPE=classic (a single-node development broker) the queues are classic and
named without `.quorum` (`<ns>.<service>`, `.retry`, `.dlq`), as every version before quorum
queues named them. A queue's type and arguments cannot change once declared (RabbitMQ answers
PRECONDITION_FAILED), hence a name per type; `events.queue_migration` moves an existing installation
from one type's queues to the other's without losing a message.
Every publisher declares every queue below, so an event is never lost because its consumer has
not started yet (on Kubernetes, services start in any order).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

import aio_pika
from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from imaging_common.events.handlers import Handlers, event_types

ENTRY_POINTS = "imaging.services"  # each service's pyproject: <name> = "<package>.app:SERVICE"


@functools.cache
def installed_handlers() -> dict[str, tuple[str, Handlers]]:
    """Service -> (its events module, its HANDLERS), for every installed service, in a stable order.

    Services are found as the all-in-one runner finds them (the `imaging.services` entry points: the
    entry point's name is the service's, hence its queue's); the library names none. Their handlers are
    read from `<package>/adapters/events.py`, where the service template puts them and the service's
    SERVICE takes them from: only those modules are imported, not every service's app. A service that
    cannot be read raises: a queue left undeclared would lose the events published before it starts.
    """
    found: dict[str, tuple[str, Handlers]] = {}
    for ep in sorted(entry_points(group=ENTRY_POINTS), key=lambda e: e.name):
        module = f"{ep.module.partition('.')[0]}.adapters.events"
        handlers = getattr(importlib.import_module(module), "HANDLERS", None)
        if handlers is None:
            raise RuntimeError(f"service {ep.name!r}: {module} has no HANDLERS (docs/service-template.md, Events)")
        found[ep.name] = (module, handlers)
    return found


@functools.cache
def subscriptions() -> dict[str, tuple[str, ...]]:
    """Service -> the event types its queue receives: the types of the models its HANDLERS take.

    Only services with handlers own a queue. Every one must handle each type it is bound to (checked
    at start), so a subscription is never acknowledged unapplied."""
    return {service: tuple(event_types(handlers))
            for service, (_, handlers) in installed_handlers().items() if handlers}


def exchange_name(namespace: str) -> str:
    return f"{namespace}.events"


QueueType = Literal["quorum", "classic"]
QUEUE_TYPES: tuple[QueueType, ...] = ("quorum", "classic")
Role = Literal["main", "retry", "dlq"]

# Quorum queues count deliveries. A message requeued this many times (each time PostgreSQL was away
# while it was handled, or a consumer died holding it) is dead-lettered to the DLQ, never dropped;
# RabbitMQ 4 would otherwise apply its default of 20, a few minutes of a database outage. At the
# consumer's 10 s outage pause this is hours.
QUORUM_DELIVERY_LIMIT = 1000


def queue_name(namespace: str, service: str, queue_type: QueueType = "quorum") -> str:
    return f"{namespace}.{service}.quorum" if queue_type == "quorum" else f"{namespace}.{service}"


def retry_queue_name(namespace: str, service: str, queue_type: QueueType = "quorum") -> str:
    return f"{queue_name(namespace, service, queue_type)}.retry"


def dead_letter_queue_name(namespace: str, service: str, queue_type: QueueType = "quorum") -> str:
    return f"{queue_name(namespace, service, queue_type)}.dlq"


@dataclass(frozen=True)
class ServiceQueues:
    """One service's three queues of one type: their names and the arguments they are declared with.

    Every declaration goes through `declare` (publishers, the consumer, the dead-letter tools): a
    queue re-declared with other arguments is refused by the broker and closes the channel."""

    namespace: str
    service: str
    queue_type: QueueType = "quorum"

    @property
    def main(self) -> str:
        return queue_name(self.namespace, self.service, self.queue_type)

    @property
    def retry(self) -> str:
        return retry_queue_name(self.namespace, self.service, self.queue_type)

    @property
    def dlq(self) -> str:
        return dead_letter_queue_name(self.namespace, self.service, self.queue_type)

    def name(self, role: Role) -> str:
        return {"main": self.main, "retry": self.retry, "dlq": self.dlq}[role]

    def arguments(self, role: Role) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        if role == "retry":
            # A message published here with a per-message expiration waits that long, then the
            # broker dead-letters it through the default exchange straight back to the main queue.
            arguments = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.main}
        if self.queue_type == "classic":
            return arguments
        arguments["x-queue-type"] = "quorum"
        if role == "main":
            # Past the delivery limit a message goes to the DLQ (replayable), not into the void.
            arguments.update({"x-delivery-limit": QUORUM_DELIVERY_LIMIT, "x-dead-letter-exchange": "",
                              "x-dead-letter-routing-key": self.dlq})
        if role in ("main", "retry"):
            # The broker keeps a dead-lettered message until its target queue confirmed it (3.10+;
            # the default, at-most-once, may drop it when the target is briefly unavailable).
            arguments.update({"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
        return arguments

    async def declare(self, channel: AbstractChannel, role: Role) -> AbstractQueue:
        return await channel.declare_queue(self.name(role), durable=True, arguments=self.arguments(role) or None)


# Headers the consumer sets on a message it sends to the retry queue or the DLQ.
RETRIES_HEADER = "x-imaging-retries"  # failed attempts so far
ERROR_HEADER = "x-imaging-error"  # "ExceptionType: message" of the last failure
ERROR_KIND_HEADER = "x-imaging-error-kind"  # "handler", "malformed", "invalid-data"
DEAD_LETTERED_AT_HEADER = "x-imaging-dead-lettered-at"  # ISO 8601 UTC
REPLAYS_HEADER = "x-imaging-replays"  # times the message was replayed from the DLQ


def services() -> list[str]:
    """Every service that owns a queue (an installed service with handlers)."""
    return sorted(subscriptions())


def subscribers_of(event_type: str) -> list[str]:
    """The services whose queue receives `event_type`."""
    return sorted(service for service, types in subscriptions().items() if event_type in types)


def check_handlers(service: str, handled: Iterable[str]) -> None:
    """The handlers a bus starts with take exactly the types every publisher binds to its queue (those
    of the installed service's HANDLERS): a handler for anything else would never be called, and a
    bound type without a handler would acknowledge events unapplied."""
    installed = installed_handlers().get(service)
    if service not in subscriptions():
        why = ("its HANDLERS are empty" if installed else
               f"no {ENTRY_POINTS!r} entry point names it, so no publisher declares its queue")
        raise ValueError(f"service {service!r} has handlers for {sorted(set(handled))} but no queue: {why}")
    subscribed = set(subscriptions()[service])
    extra = sorted(set(handled) - subscribed)
    if extra:
        raise ValueError(
            f"service {service!r} has handlers for {extra} but its queue is not bound to them; "
            f"add their models to HANDLERS in {installed[0] if installed else 'its adapters/events.py'}"
        )
    missing = sorted(subscribed - set(handled))
    if missing:
        raise ValueError(f"service {service!r} subscribes to {missing} but has no handler for them")


async def declare_topology(
    channel: AbstractChannel, namespace: str, queue_type: QueueType = "quorum"
) -> AbstractExchange:
    """Declare the exchange and every service's queue, retry queue and DLQ of `queue_type` (idempotent).

    Declared by every publisher before it publishes, so a consumer that has not started yet
    still finds its events waiting. The DLQ and the retry queue come before the main queue, whose
    dead-letter target they are. Arguments must stay identical across versions: RabbitMQ refuses a
    re-declaration with different arguments (a change of type is a migration: `queue_migration`).
    """
    exchange = await channel.declare_exchange(exchange_name(namespace), ExchangeType.TOPIC, durable=True)
    for service in services():
        queues = ServiceQueues(namespace, service, queue_type)
        await queues.declare(channel, "dlq")
        await queues.declare(channel, "retry")
        queue = await queues.declare(channel, "main")
        for event_type in subscriptions()[service]:
            await queue.bind(exchange, routing_key=event_type)
    return exchange


async def delete_namespace(amqp_url: str, namespace: str) -> None:
    """Delete the exchange and all queues of a namespace, of both types (test sessions clean up with this)."""
    connection = await aio_pika.connect(amqp_url, timeout=5)
    try:
        channel = await connection.channel()
        underlay = await channel.get_underlay_channel()
        for service in services():
            for queue_type in QUEUE_TYPES:
                queues = ServiceQueues(namespace, service, queue_type)
                for name in (queues.main, queues.retry, queues.dlq):
                    await underlay.queue_delete(name)
        await underlay.exchange_delete(exchange_name(namespace))
    finally:
        await connection.close()
