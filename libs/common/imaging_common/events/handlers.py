"""A service's event handlers, keyed by event model, and the wrapper that feeds them typed data.

A service's `adapters/events.py` ends with

    HANDLERS = {OrderCreated: on_order, OrderChanged: on_order, OrderCancelled: on_order_cancelled}

each `async def on_order(conn: asyncpg.Connection, data: OrderCreated, event: CloudEvent) -> None`,
run inside the transaction that records the event in the inbox. The handler gets `event.data`
already validated by its model (`parse_as`): the wrapper checks the event is of the model's type
first, so no handler needs an `assert isinstance`. Its queue is bound to exactly the types its models
carry (`topology.subscriptions()`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
from pydantic import ValidationError

from imaging_common.events.envelope import CloudEvent, EventError, InvalidEventData, event_type_of
from imaging_common.events.types import EventData

M = TypeVar("M", bound=EventData)

EventHandler = Callable[[asyncpg.Connection, Any, CloudEvent], Awaitable[None]]
"""`async def handler(conn, data: <Model>, event: CloudEvent) -> None` (data typed by its model)."""

Handlers = Mapping[type[EventData], EventHandler]
"""Event model -> its handler: a service's `HANDLERS`."""

Delivery = Callable[[asyncpg.Connection, CloudEvent], Awaitable[None]]
"""What the consumer calls with an event of one type: the wrapper around that type's handler."""


class WrongEventType(EventError):
    """A handler was given an event of another type than its model's."""


def parse_as(event: CloudEvent, model: type[M]) -> M:
    """`event.data` as `model`, once the event is checked to be of the model's type."""
    if event.type != model.type:
        raise WrongEventType(
            f"event {event.id} is {event.type!r}, but this handler takes {model.__name__} ({model.type!r})")
    try:
        return model.model_validate(event.data or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidEventData(f"{event.type} event {event.id} has invalid data: {problems}") from exc


def typed(model: type[M], handler: Callable[[asyncpg.Connection, M, CloudEvent], Awaitable[None]]) -> Delivery:
    """The wrapper: parse and check the event's data as `model`, then call `handler(conn, data, event)`.

    An event of another type, or data its model refuses, raises an `EventError`: inside the consumer
    that is a handler failure, retried and then dead-lettered like any other."""

    async def deliver(conn: asyncpg.Connection, event: CloudEvent) -> None:
        await handler(conn, parse_as(event, model), event)

    deliver.__name__ = deliver.__qualname__ = getattr(handler, "__name__", "handler")
    return deliver


def data_only(apply: Callable[[asyncpg.Connection, M], Awaitable[Any]]) -> Callable[
        [asyncpg.Connection, M, CloudEvent], Awaitable[None]]:
    """The handler that is one domain function of (conn, data), for a HANDLERS entry such as
    `OrderCancelled: data_only(exams.apply_order_cancelled)`: the envelope is not needed."""

    async def handler(conn: asyncpg.Connection, data: M, event: CloudEvent) -> None:
        await apply(conn, data)

    handler.__name__ = handler.__qualname__ = getattr(apply, "__name__", "handler")
    return handler


def event_types(handlers: Handlers) -> list[str]:
    """The event types the handlers take (what their queue is bound to), checking every key is a
    registered event model and every value an `async def`."""
    types = []
    for model, handler in handlers.items():
        if isinstance(model, str):
            raise TypeError(f"handlers are keyed by event model (e.g. OrderCreated), not by the type {model!r}")
        types.append(event_type_of(model))  # UnknownEventType for anything not in types.EVENT_MODELS
        if not inspect.iscoroutinefunction(handler) and not inspect.iscoroutinefunction(
                getattr(handler, "__call__", None)):  # noqa: B004 - an object with an async __call__ is one too
            raise TypeError(f"the handler of {model.__name__} is not an async function: {handler!r}")
    return types


def by_type(handlers: Handlers) -> dict[str, Delivery]:
    """Event type -> the wrapped handler of its model, for the consumer."""
    event_types(handlers)
    return {model.type: typed(model, handler) for model, handler in handlers.items()}


async def dispatch(handlers: Handlers, conn: asyncpg.Connection, event: CloudEvent) -> None:
    """Hand one event to the handler of its model, as the consumer does (tests call handlers this way)."""
    deliveries = by_type(handlers)
    if event.type not in deliveries:
        raise WrongEventType(f"no handler takes {event.type!r} events (event {event.id})")
    await deliveries[event.type](conn, event)
