"""The CloudEvents envelope and typed data: what goes on the wire and what a bad event looks like."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import ClassVar

import asyncpg
import pytest
from imaging_common.events import (
    CloudEvent,
    InvalidEventData,
    MalformedEvent,
    UnknownEventType,
    WrongEventType,
    dispatch,
    parse_as,
    parse_data,
)
from imaging_common.events.envelope import event_type_of
from imaging_common.events.handlers import by_type
from imaging_common.events.topology import ENTRY_POINTS, check_handlers, installed_handlers, services, subscriptions
from imaging_common.events.types import EVENT_MODELS, EventData, FilmPrinted, OrderCancelled, OrderChanged, OrderCreated
from imaging_common.observability import bind_correlation_id


def test_envelope_round_trip_keeps_type_data_and_correlation() -> None:
    bind_correlation_id("cid-123")
    try:
        model = FilmPrinted(film_id="F1", calling_ae_title="CT_SCANNER", image_count=12, printed_at=datetime.now(UTC))
        event = CloudEvent.from_data(model, source="/imaging/print_scp", subject="F1")
    finally:
        bind_correlation_id(None)
    wire = json.loads(event.to_json())
    assert wire["specversion"] == "1.0"
    assert wire["type"] == "film.printed"
    assert wire["source"] == "/imaging/print_scp" and wire["subject"] == "F1"
    assert wire["datacontenttype"] == "application/json"
    assert wire["correlationid"] == "cid-123"
    assert "event_type" not in wire["data"]  # the type travels once, in the envelope
    back = CloudEvent.from_json(event.to_json())
    assert back == event
    data = parse_data(back)
    assert isinstance(data, FilmPrinted) and data.image_count == 12


def test_chinese_text_travels_as_utf8() -> None:
    model = OrderCancelled(order_id="O1", accession_number="A1", reason="患者取消检查")
    body = CloudEvent.from_data(model, source="/t").to_json()
    assert "患者取消检查".encode() in body
    assert parse_data(CloudEvent.from_json(body)).reason == "患者取消检查"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"\xff\xfe not utf-8", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a CloudEvents object"),
        (b'{"hello": "world"}', "not a CloudEvents 1.0 envelope"),
        (b'{"specversion": "0.3", "id": "1", "source": "/x", "type": "order.cancelled"}', "specversion"),
        (b'{"specversion": "1.0", "id": "", "source": "/x", "type": "order.cancelled"}', "id"),
    ],
)
def test_malformed_bodies_raise_malformed_event(body: bytes, message: str) -> None:
    with pytest.raises(MalformedEvent, match=message):
        CloudEvent.from_json(body)


def test_unknown_type_and_invalid_data_are_clear_errors() -> None:
    unknown = CloudEvent(id="e1", source="/x", type="order.teleported", data={})
    with pytest.raises(UnknownEventType, match="order.teleported"):
        parse_data(unknown)
    invalid = CloudEvent(id="e2", source="/x", type="order.cancelled", data={"accession_number": "A1"})
    with pytest.raises(InvalidEventData, match="order_id"):
        parse_data(invalid)


def test_unregistered_model_is_refused() -> None:
    class Homemade(EventData):
        type: ClassVar[str] = "homemade.happened"

    with pytest.raises(UnknownEventType, match="Homemade"):
        event_type_of(Homemade())
    with pytest.raises(UnknownEventType):
        CloudEvent.from_data(Homemade(), source="/x")


def test_handlers_match_subscriptions_exactly() -> None:
    subscribed = list(subscriptions()["scheduling"])
    check_handlers("scheduling", subscribed)
    with pytest.raises(ValueError, match=r"report.signed.*HANDLERS in scheduling.adapters.events"):
        check_handlers("scheduling", [*subscribed, "report.signed"])
    with pytest.raises(ValueError, match=r"subscribes to \['order.cancelled'\] but has no handler"):
        check_handlers("scheduling", [t for t in subscribed if t != "order.cancelled"])
    with pytest.raises(ValueError, match="'nonexistent'.*no queue: no 'imaging.services' entry point names it"):
        check_handlers("nonexistent", ["order.created"])
    assert "order.created" in subscriptions()["scheduling"]


# ---- events by model ------------------------------------------------------------------------------


def test_every_model_carries_its_type_which_never_travels_in_the_data() -> None:
    assert len(EVENT_MODELS) == 26  # with device.disconnected and device.reconnected (the dashboard's alerts)
    for event_type, model in EVENT_MODELS.items():
        assert model.type == event_type and event_type_of(model) == event_type
        assert "type" not in model.model_fields and "event_type" not in model.model_fields
    order = OrderCancelled(order_id="O1", accession_number="A1")
    assert "type" not in CloudEvent.from_data(order, source="/t").data  # type: ignore[operator]
    assert OrderChanged.type == "order.changed" and OrderCreated.type == "order.created"  # a subclass has its own


def test_the_queues_are_bound_from_the_installed_services_handlers() -> None:
    """The library names no service: each installed one's queue is bound to its HANDLERS' models, read
    from the events module its SERVICE takes them from, under the name its SERVICE has."""
    eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINTS)}
    assert eps and set(installed_handlers()) == set(eps)
    for name, ep in eps.items():
        spec = ep.load()
        module, handlers = installed_handlers()[name]
        assert spec.name == name and spec.event_handlers is handlers, f"{name}: SERVICE takes {module}.HANDLERS"
        assert subscriptions().get(name, ()) == tuple(m.type for m in handlers)
    assert services() == sorted(name for name, (_, handlers) in installed_handlers().items() if handlers)


def _order_cancelled() -> CloudEvent:
    return CloudEvent.from_data(OrderCancelled(order_id="O1", accession_number="A1", reason="患者取消"), source="/t")


async def test_the_wrapper_hands_the_handler_its_model_checked_and_parsed() -> None:
    got: list[tuple[object, CloudEvent]] = []

    async def on_cancelled(conn: asyncpg.Connection, data: OrderCancelled, event: CloudEvent) -> None:
        got.append((data, event))

    async def on_order(conn: asyncpg.Connection, data: OrderCreated, event: CloudEvent) -> None:
        raise AssertionError("not this one")

    handlers = {OrderCancelled: on_cancelled, OrderCreated: on_order}
    event = _order_cancelled()
    await dispatch(handlers, None, event)  # type: ignore[arg-type]
    [(data, seen)] = got
    assert isinstance(data, OrderCancelled) and data.reason == "患者取消" and seen is event
    assert set(by_type(handlers)) == {"order.cancelled", "order.created"}

    # An event of another type than the model's, or data the model refuses: a clear error, no assert.
    with pytest.raises(WrongEventType, match=r"'order.cancelled'.*OrderCreated"):
        parse_as(event, OrderCreated)
    with pytest.raises(WrongEventType, match=r"'order.cancelled'.*OrderCreated"):
        await by_type({OrderCreated: on_order})["order.created"](None, event)  # type: ignore[arg-type]
    with pytest.raises(WrongEventType, match="no handler takes 'film.printed'"):
        await dispatch(handlers, None, CloudEvent(id="e", source="/t", type="film.printed", data={}))  # type: ignore[arg-type]
    bad = CloudEvent(id="e2", source="/x", type="order.cancelled", data={"accession_number": "A1"})
    with pytest.raises(InvalidEventData, match="order_id"):
        await dispatch(handlers, None, bad)  # type: ignore[arg-type]


def test_handlers_are_keyed_by_registered_models_and_are_async() -> None:
    async def handler(conn: asyncpg.Connection, data: OrderCancelled, event: CloudEvent) -> None:
        return None

    def blocking(conn: asyncpg.Connection, data: OrderCancelled, event: CloudEvent) -> None:
        return None

    class Homemade(EventData):
        type: ClassVar[str] = "homemade.happened"

    with pytest.raises(TypeError, match="keyed by event model"):
        by_type({"order.cancelled": handler})  # type: ignore[dict-item]
    with pytest.raises(UnknownEventType, match="Homemade"):
        by_type({Homemade: handler})
    with pytest.raises(TypeError, match="not an async function"):
        by_type({OrderCancelled: blocking})  # type: ignore[dict-item]
