"""The CloudEvents envelope and typed data: what goes on the wire and what a bad event looks like."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from imaging_common.events import (
    CloudEvent,
    InvalidEventData,
    MalformedEvent,
    UnknownEventType,
    parse_data,
)
from imaging_common.events.envelope import event_type_of
from imaging_common.events.topology import SUBSCRIPTIONS, check_handlers
from imaging_common.events.types import EventData, FilmPrinted, OrderCancelled
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
        event_type: str = "homemade.happened"

    with pytest.raises(UnknownEventType, match="Homemade"):
        event_type_of(Homemade())
    with pytest.raises(UnknownEventType):
        CloudEvent.from_data(Homemade(), source="/x")


def test_handlers_match_subscriptions_exactly() -> None:
    subscribed = list(SUBSCRIPTIONS["scheduling"])
    check_handlers("scheduling", subscribed)
    with pytest.raises(ValueError, match=r"report.signed.*SUBSCRIPTIONS\['scheduling'\]"):
        check_handlers("scheduling", [*subscribed, "report.signed"])
    with pytest.raises(ValueError, match=r"subscribes to \['order.cancelled'\] but has no handler"):
        check_handlers("scheduling", [t for t in subscribed if t != "order.cancelled"])
    with pytest.raises(ValueError, match="no SUBSCRIPTIONS entry"):
        check_handlers("nonexistent", ["order.created"])
    assert "order.created" in SUBSCRIPTIONS["scheduling"]
