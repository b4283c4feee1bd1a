"""RabbitMQ topology: one topic exchange, and per consuming service a queue, a retry queue and a DLQ.

Names are prefixed with the namespace (IMAGING_NAMESPACE, "imaging" by default):
  <ns>.events            topic exchange; routing key = event type
  <ns>.<service>         the service's queue, bound to the types in SUBSCRIPTIONS
  <ns>.<service>.retry   holds a failed message for a delay, then dead-letters it back to the queue
  <ns>.<service>.dlq     messages that failed every retry, kept until replayed or purged
Every publisher declares every queue below, so an event is never lost because its consumer has
not started yet (on Kubernetes, services start in any order).
"""

from __future__ import annotations

from collections.abc import Iterable

import aio_pika
from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange

from imaging_common.events.types import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    CriticalRaised,
    EventData,
    ExamCompleted,
    ExamStarted,
    FilmMatched,
    FilmUnmatched,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    PatientArrived,
    PatientMerged,
    PatientUpdated,
    ReportAmended,
)

# What each service consumes, by event model: every one must have a handler (checked at start), so a
# subscription is never acknowledged unapplied. Queues are bound to the models' type strings.
_SUBSCRIBED_MODELS: dict[str, tuple[type[EventData], ...]] = {
    "registration": (AppointmentBooked, AppointmentRescheduled, ExamStarted, ExamCompleted),  # order status
    "scheduling": (
        OrderCreated, OrderChanged, OrderCancelled, PatientUpdated, PatientMerged, PatientArrived, ExamStarted,
        ExamCompleted,
    ),
    "worklist": (
        OrderCreated, OrderChanged, OrderCancelled, AppointmentBooked, AppointmentRescheduled, AppointmentCancelled,
        PatientUpdated, PatientMerged, PatientArrived,
    ),
    "queue_calling": (
        OrderCreated, OrderChanged, OrderCancelled, AppointmentBooked, AppointmentRescheduled, AppointmentCancelled,
        PatientUpdated, PatientMerged, ExamStarted, ExamCompleted,
    ),
    "print_scp": (  # films match studies: appointments say nothing a film needs
        OrderCreated, OrderChanged, OrderCancelled, PatientUpdated, PatientMerged, ExamStarted, ExamCompleted,
    ),
    "reporting": (OrderCreated, OrderChanged, OrderCancelled, ExamCompleted, PatientUpdated, PatientMerged,
                  FilmMatched, FilmUnmatched),
    "critical_values": (CriticalRaised, OrderCreated, OrderChanged, ReportAmended, PatientUpdated, PatientMerged),
}

SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    service: tuple(model.model_fields["event_type"].default for model in models)
    for service, models in _SUBSCRIBED_MODELS.items()
}
"""Service -> the event types its queue receives."""


def exchange_name(namespace: str) -> str:
    return f"{namespace}.events"


def queue_name(namespace: str, service: str) -> str:
    return f"{namespace}.{service}"


def retry_queue_name(namespace: str, service: str) -> str:
    return f"{namespace}.{service}.retry"


def dead_letter_queue_name(namespace: str, service: str) -> str:
    return f"{namespace}.{service}.dlq"


# Headers the consumer sets on a message it sends to the retry queue or the DLQ.
RETRIES_HEADER = "x-imaging-retries"  # failed attempts so far
ERROR_HEADER = "x-imaging-error"  # "ExceptionType: message" of the last failure
ERROR_KIND_HEADER = "x-imaging-error-kind"  # "handler", "malformed", "invalid-data"
DEAD_LETTERED_AT_HEADER = "x-imaging-dead-lettered-at"  # ISO 8601 UTC
REPLAYS_HEADER = "x-imaging-replays"  # times the message was replayed from the DLQ


def services() -> list[str]:
    """Every service that owns a queue (those in SUBSCRIPTIONS)."""
    return sorted(SUBSCRIPTIONS)


def subscribers_of(event_type: str) -> list[str]:
    """The services whose queue receives `event_type`."""
    return sorted(service for service, types in SUBSCRIPTIONS.items() if event_type in types)


def check_handlers(service: str, handled: Iterable[str]) -> None:
    """A service handles exactly what it subscribes to: a handler for anything else would never be
    called, and a subscription without a handler would acknowledge events unapplied."""
    subscribed = set(SUBSCRIPTIONS.get(service, ()))
    extra = sorted(set(handled) - subscribed)
    if extra:
        known = "" if service in SUBSCRIPTIONS else f" (service {service!r} has no SUBSCRIPTIONS entry)"
        raise ValueError(
            f"service {service!r} has handlers for {extra} but does not subscribe to them{known}; "
            f"add them to SUBSCRIPTIONS[{service!r}] in imaging_common/events/topology.py"
        )
    missing = sorted(subscribed - set(handled))
    if missing:
        raise ValueError(f"service {service!r} subscribes to {missing} but has no handler for them")


async def declare_topology(channel: AbstractChannel, namespace: str) -> AbstractExchange:
    """Declare the exchange and every service's queue, retry queue and DLQ (idempotent).

    Declared by every publisher before it publishes, so a consumer that has not started yet
    still finds its events waiting. Arguments must stay identical across versions: RabbitMQ
    refuses a re-declaration with different arguments.
    """
    exchange = await channel.declare_exchange(exchange_name(namespace), ExchangeType.TOPIC, durable=True)
    for service in services():
        main = queue_name(namespace, service)
        queue = await channel.declare_queue(main, durable=True)
        for event_type in SUBSCRIPTIONS[service]:
            await queue.bind(exchange, routing_key=event_type)
        # A message published here with a per-message expiration waits that long, then the
        # broker dead-letters it through the default exchange straight back to the main queue.
        await channel.declare_queue(
            retry_queue_name(namespace, service),
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": main},
        )
        await channel.declare_queue(dead_letter_queue_name(namespace, service), durable=True)
    return exchange


async def delete_namespace(amqp_url: str, namespace: str) -> None:
    """Delete the exchange and all queues of a namespace (test sessions clean up with this)."""
    connection = await aio_pika.connect(amqp_url, timeout=5)
    try:
        channel = await connection.channel()
        underlay = await channel.get_underlay_channel()
        for service in services():
            for name in (
                queue_name(namespace, service),
                retry_queue_name(namespace, service),
                dead_letter_queue_name(namespace, service),
            ):
                await underlay.queue_delete(name)
        await underlay.exchange_delete(exchange_name(namespace))
    finally:
        await connection.close()
